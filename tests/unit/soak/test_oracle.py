"""The soak's oracle: for each guarantee, a history that breaks it is reported and one that keeps it is not."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bench.soak.ground_truth import Exit, Fault, Outage, PersonAction, Record, RssSample, StatusSample, StoreStep, load
from bench.soak.intervals import measure_within, subtract, union
from bench.soak.oracle import Settings, judge

T0 = 1_800_000_000.0
S = Settings(rss_min_life_s=100, rss_warmup_s=20)


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def version(name: str, at: float, rv: int, *, event: str = "MODIFIED", phase: str = "Open", held: bool = False,
            resolution: str = "", message: str = "", invariant: str = "low_disk_space", store: str = "1",
            cluster: str = "c01", resolved_at: float | None = None, labels_in_step: bool = True) -> dict[str, Any]:
    return {
        "received": T0 + at, "event": event, "name": name, "rv": rv, "created": stamp(T0 + at),
        "cluster": cluster, "invariant": invariant, "store": store, "held": held, "phase": phase,
        "severity": "warning", "resolution": resolution, "resolution_message": message,
        "resolved_at": stamp(T0 + resolved_at) if resolved_at is not None else "", "reopened": 0, "silences": 0,
        "label_phase": phase.lower() if labels_in_step else "open",
        "label_held": str(held).lower() if labels_in_step else "false", "recorded": "",
    }


def record(faults: list[Fault] | None = None, **extra: Any) -> Record:
    r = Record(seed=1, clusters={"c01": "status-address", "c02": "pod-name"}, stores={"c01": 3, "c02": 3},
               started=T0, ended=T0 + 300, alertmanager={"open": [], "alerts": []})
    r.faults = faults or []
    for key, value in extra.items():
        setattr(r, key, value)
    return r


def disk(on: float, off: float | None, store: int = 1, fault_id: int = 1) -> Fault:
    return Fault(fault_id, "disk", "c01", store, T0 + on, None if off is None else T0 + off, {"percent": 78})


def violations(r: Record, versions: list[dict[str, Any]], guarantee: str) -> list[str]:
    return [v.detail for v in judge(r, versions, S).violations if v.guarantee == guarantee]


# --- the interval helpers -------------------------------------------------------------------------


def test_intervals_merge_subtract_and_measure():
    assert union([(5, 7), (1, 3), (2, 4), (9, 9)]) == [(1, 4), (5, 7)]
    assert subtract((0, 10), [(2, 3), (5, 12)]) == [(0, 2), (3, 5)]
    assert measure_within((0, 10), [(8, 20), (-5, 1)]) == 3


# --- G1 -------------------------------------------------------------------------------------------


def test_two_open_tickets_of_one_identity_are_reported():
    versions = [version("c01-low-disk-space-s1-1", 10, 1, event="ADDED"),
                version("c01-low-disk-space-s1-2", 11, 2, event="ADDED")]
    r = record([disk(5, 60)])
    assert violations(r, versions, "one_open_per_identity")


def test_a_new_ticket_after_the_previous_one_resolved_is_fine():
    versions = [version("c01-low-disk-space-s1-1", 10, 1, event="ADDED"),
                version("c01-low-disk-space-s1-1", 20, 2, phase="Resolved", resolution="manual"),
                version("c01-low-disk-space-s1-2", 21, 3, event="ADDED")]
    assert not violations(record([disk(5, 60)]), versions, "one_open_per_identity")


# --- G2 -------------------------------------------------------------------------------------------


def test_an_auto_resolve_while_the_fault_is_on_is_reported():
    versions = [version("t-1", 10, 1, event="ADDED"),
                version("t-1", 40, 2, phase="Resolved", resolution="auto", resolved_at=40)]
    assert violations(record([disk(5, 60)]), versions, "no_auto_resolve_while_present")


def test_an_auto_resolve_after_the_fault_ended_is_fine_and_so_is_a_tombstone_after_a_scale_in():
    versions = [version("t-1", 10, 1, event="ADDED"),
                version("t-1", 62, 2, phase="Resolved", resolution="auto", resolved_at=62)]
    assert not violations(record([disk(5, 60)]), versions, "no_auto_resolve_while_present")
    scale_in = Fault(2, "scale-in", "c01", 1, T0 + 30, T0 + 34)
    tomb = [version("t-1", 10, 1, event="ADDED"),
            version("t-1", 40, 2, phase="Resolved", resolution="auto", resolved_at=40,
                    message="store 1 is Tombstone: removed from the cluster")]
    assert not violations(record([disk(5, None), scale_in]), tomb, "no_auto_resolve_while_present")


def test_an_auto_resolve_the_check_could_have_read_before_the_fault_showed_or_after_it_ended_is_not_blamed():
    # The fault began 1 s before the check that resolved: its data may not have shown it yet.
    versions = [version("t-1", 10, 1, event="ADDED"),
                version("t-1", 20, 2, phase="Resolved", resolution="auto", resolved_at=20)]
    assert not violations(record([disk(19, 60, fault_id=2)]), versions, "no_auto_resolve_while_present")
    assert violations(record([disk(17, 60, fault_id=2)]), versions, "no_auto_resolve_while_present")
    # resolvedAt is the check's start; its reads come later (a hanging PD answers when it stops hanging): a
    # clear asked for before the watch saw the resolve may be what the check read.
    cleared = disk(5, 40.6)
    cleared.clearing = T0 + 40.5
    late = [version("t-1", 10, 1, event="ADDED"),
            version("t-1", 41, 2, phase="Resolved", resolution="auto", resolved_at=38)]
    assert not violations(record([cleared]), late, "no_auto_resolve_while_present")


# --- G3 -------------------------------------------------------------------------------------------


def test_a_long_readable_fault_without_a_ticket_is_reported():
    assert violations(record([disk(10, 60)]), [], "every_fault_detected")


def test_a_detected_fault_is_fine_and_its_latency_is_measured():
    versions = [version("t-1", 13, 1, event="ADDED"),
                version("t-1", 63, 2, phase="Resolved", resolution="auto", resolved_at=63)]
    verdict = judge(record([disk(10, 60)]), versions, S)
    assert not [v for v in verdict.violations if v.guarantee == "every_fault_detected"]
    assert verdict.detection_s["disk"] == [pytest.approx(3.0)]


def test_a_fault_shorter_than_its_grace_or_unreadable_throughout_need_not_open_a_ticket():
    stop = Fault(1, "stop-store", "c01", 2, T0 + 10, T0 + 14)  # 4 s: under store_down's 6 s grace
    prometheus = Fault(2, "prometheus-down", None, None, T0 + 100, T0 + 160)
    late_disk = disk(110, 150, fault_id=3)  # Prometheus paused the whole time: not readable
    r = record([stop, prometheus, late_disk])
    found = violations(r, [], "every_fault_detected")
    assert not [d for d in found if "stop-store" in d or "disk" in d]
    assert len([d for d in found if "prometheus-down" in d]) == 2  # one per cluster: neither got a ticket


def test_a_prometheus_crash_is_judged_as_prometheus_down_and_no_pauses_resume_ends_it():
    crash = Fault(9, "prometheus-down", None, None, T0 + 100, T0 + 200, {"cause": "crashed"})
    pause = Fault(2, "prometheus-down", None, None, T0 + 90, T0 + 120)  # its SIGCONT does not restart a crash
    late_disk = disk(130, 190, fault_id=3)  # Prometheus was gone throughout: not readable, need not open
    found = violations(record([crash, pause, late_disk]), [], "every_fault_detected")
    assert not [d for d in found if "disk" in d]
    tickets = [version(f"{c}-prometheus-unreachable-1", 108, 1, event="ADDED", invariant="prometheus_unreachable",
                       store="", cluster=c) for c in ("c01", "c02")]
    assert not violations(record([crash, pause, late_disk]), tickets, "every_fault_detected")
    # The tickets the crash explains, opened 80 s after the pause ended, are no unexplained ones.
    late = [version(f"{c}-prometheus-unreachable-1", 190, 1, event="ADDED", invariant="prometheus_unreachable",
                    store="", cluster=c) for c in ("c01", "c02")]
    assert not violations(record([crash, pause]), late, "no_unexplained_ticket")


def test_an_operator_outage_inside_a_fault_extends_what_it_must_last():
    outage = [Outage("operator-sigkill", T0 + 12, T0 + 30)]
    short = record([disk(10, 45)], outages=outage)  # 35 s: < 18 s outage + 2 x grace-free budget + refresh
    assert violations(record([disk(10, 45)]), [], "every_fault_detected")
    assert not violations(short, [], "every_fault_detected")


# --- G4 -------------------------------------------------------------------------------------------


def hold(rv: int, at: float, ok: bool = True) -> PersonAction:
    return PersonAction(1, "hold", "t-1", T0 + at - 0.2, T0 + at, ok, rv, "Open", "Open", True)


def test_a_hold_the_operator_clears_or_resolves_through_is_reported():
    base = [version("t-1", 10, 1, event="ADDED"), version("t-1", 20, 5, held=True)]
    cleared = [*base, version("t-1", 30, 6, held=False)]
    resolved = [*base, version("t-1", 30, 6, held=True, phase="Resolved", resolution="auto", resolved_at=30)]
    r = record([disk(5, 25)], actions=[hold(5, 20)])
    assert violations(r, cleared, "people_reflected")
    assert violations(r, resolved, "people_reflected")


def test_a_hold_that_stays_and_is_labelled_is_fine_and_one_never_labelled_is_reported():
    kept = [version("t-1", 10, 1, event="ADDED"), version("t-1", 20, 5, held=True),
            version("t-1", 200, 9, held=True)]
    r = record([disk(5, 25)], actions=[hold(5, 20)])
    assert not violations(r, kept, "people_reflected")
    unlabelled = [version("t-1", 10, 1, event="ADDED"), version("t-1", 20, 5, held=True, labels_in_step=False)]
    assert violations(r, unlabelled, "people_reflected")


def test_an_ack_turned_back_to_open_is_reported_and_one_auto_resolved_later_is_fine():
    ack = PersonAction(1, "ack", "t-1", T0 + 19, T0 + 20, True, 5, "Open", "Acknowledged", False)
    base = [version("t-1", 10, 1, event="ADDED"), version("t-1", 20, 5, phase="Acknowledged")]
    reverted = [*base, version("t-1", 25, 6, phase="Open")]
    resolved = [*base, version("t-1", 30, 6, phase="Resolved", resolution="auto", resolved_at=30)]
    r = record([disk(5, 28)], actions=[ack])
    assert violations(r, reverted, "people_reflected")
    assert not violations(r, resolved, "people_reflected")


def test_a_manual_resolve_must_stay_resolved_and_be_recorded_manual():
    resolve = PersonAction(1, "resolve", "t-1", T0 + 19, T0 + 20, True, 5, "Open", "Resolved", False)
    base = [version("t-1", 10, 1, event="ADDED"), version("t-1", 20, 5, phase="Resolved", labels_in_step=False)]
    recorded = [*base, version("t-1", 21, 6, phase="Resolved", resolution="manual")]
    reopened = [*base, version("t-1", 21, 6, phase="Resolved", resolution="manual"), version("t-1", 30, 7)]
    as_auto = [*base, version("t-1", 21, 6, phase="Resolved", resolution="auto")]
    r = record([disk(5, 200)], actions=[resolve])
    assert not violations(r, recorded, "people_reflected")
    assert violations(r, reopened, "people_reflected")
    assert violations(r, as_auto, "people_reflected")
    assert violations(r, base, "people_reflected")  # never recorded manual


def test_an_edit_that_landed_on_a_ticket_just_resolved_is_not_judged():
    late = PersonAction(1, "hold", "t-1", T0 + 19, T0 + 20, True, 5, "Open", "Resolved", True)
    versions = [version("t-1", 10, 1, event="ADDED"),
                version("t-1", 19, 4, phase="Resolved", resolution="auto", resolved_at=19),
                version("t-1", 20, 5, phase="Resolved", resolution="auto", held=True, resolved_at=19),
                version("t-1", 21, 6, phase="Resolved", resolution="auto", held=False, resolved_at=19)]
    verdict = judge(record([disk(5, 17)], actions=[late]), versions, S)
    assert not [v for v in verdict.violations if v.guarantee == "people_reflected"]
    assert verdict.notes


# --- G5 -------------------------------------------------------------------------------------------


def test_a_ticket_without_a_cause_is_reported_and_named_when_a_routine_operation_ran():
    rolling = Fault(1, "rolling-restart", "c01", None, T0 + 10, T0 + 25)
    versions = [version("c01-store-down-s2-1", 20, 1, event="ADDED", invariant="store_down", store="2")]
    found = violations(record([rolling]), versions, "no_unexplained_ticket")
    assert found
    assert "during rolling-restart" in found[0]


def test_tickets_with_a_cause_are_fine_store_restarted_after_two_restarts_included():
    steps = [StoreStep("c01", 2, T0 + 10, "stop", "stop-store"), StoreStep("c01", 2, T0 + 15, "start", "stop-store"),
             StoreStep("c01", 2, T0 + 30, "stop", "rolling-restart"),
             StoreStep("c01", 2, T0 + 33, "start", "rolling-restart")]
    versions = [version("c01-low-disk-space-s1-1", 12, 1, event="ADDED"),
                version("c01-store-restarted-s2-1", 36, 2, event="ADDED", invariant="store_restarted", store="2")]
    r = record([disk(10, 60)], steps=steps)
    assert not violations(r, versions, "no_unexplained_ticket")
    one_restart = record([disk(10, 60)], steps=steps[2:])
    assert violations(one_restart, versions, "no_unexplained_ticket")


def test_a_ticket_long_after_its_fault_ended_is_reported():
    versions = [version("t-1", 100, 1, event="ADDED")]
    assert violations(record([disk(10, 20)]), versions, "no_unexplained_ticket")


# --- G6 and G7 ------------------------------------------------------------------------------------


def test_alertmanager_must_hold_exactly_the_open_tickets():
    fine = record(alertmanager={"open": ["a", "b"], "alerts": ["a", "b"]})
    missing = record(alertmanager={"open": ["a", "b"], "alerts": ["a", "a", "c"]})
    assert not violations(fine, [], "alertmanager_matches")
    found = violations(missing, [], "alertmanager_matches")
    assert len(found) == 3  # b has no alert, c has no ticket, a has two


def test_memory_that_keeps_growing_is_reported_and_flat_memory_is_not():
    def samples(growth_kib_per_s: float) -> list[RssSample]:
        return [RssSample(1, T0 + at, int(80_000 + growth_kib_per_s * at), True) for at in range(0, 300, 5)]

    flat = record(rss=samples(1), replicas={1: [T0, T0 + 300]})
    leaking = record(rss=samples(200), replicas={1: [T0, T0 + 300]})
    assert not violations(flat, [], "memory_bounded")
    assert violations(leaking, [], "memory_bounded")


# --- hostile tenants: G1-G7 judge the well-behaved clusters only ------------------------------------


def test_a_hostile_tenants_tickets_are_not_judged_by_the_well_behaved_guarantees():
    # Two open tickets of one identity, an unexplained opening and an alert never delivered: all the tenant's.
    tickets = [version("hostile-am-timeout-low-disk-space-s1-1", 10, 1, cluster="hostile-am-timeout"),
               version("hostile-am-timeout-low-disk-space-s1-2", 11, 2, cluster="hostile-am-timeout")]
    r = record(hostile={"hostile-am-timeout": "am-timeout"},
               alertmanager={"open": [t["name"] for t in tickets], "alerts": []})
    verdict = judge(r, tickets, S)
    assert [v for v in verdict.violations if v.guarantee != "hostile_contained"] == []
    # The same history of a well-behaved cluster breaks three guarantees.
    mine = [dict(t, cluster="c01", name=t["name"].replace("hostile-am-timeout", "c01")) for t in tickets]
    r = record(alertmanager={"open": [t["name"] for t in mine], "alerts": []})
    broken = {v.guarantee for v in judge(r, mine, S).violations}
    assert {"one_open_per_identity", "no_unexplained_ticket", "alertmanager_matches"} <= broken


def test_a_persons_action_on_a_hostile_tenants_ticket_is_not_judged():
    tickets = [version("hostile-slow-query-x-1", 10, 1, cluster="hostile-slow-query"),
               version("hostile-slow-query-x-1", 12, 3, cluster="hostile-slow-query", held=False)]
    hold = PersonAction(1, "hold", "hostile-slow-query-x-1", T0 + 11, T0 + 11.5, True, resource_version=2,
                        phase_after="Open", held_after=True)
    r = record(hostile={"hostile-slow-query": "slow-query"}, actions=[hold])
    assert violations(r, tickets, "people_reflected") == []
    assert judge(r, tickets, S).checks["people_reflected"] == 0


# --- G8 operator_never_crashed --------------------------------------------------------------------


def test_a_replica_that_exits_on_its_own_or_uncleanly_at_the_end_is_a_crash():
    replicas = {1: [T0, T0 + 100], 2: [T0, T0 + 300], 3: [T0 + 110, T0 + 300]}
    fine = [Exit(1, T0 + 100, None, "operator-sigkill"), Exit(2, T0 + 300, 0, "teardown"),
            Exit(3, T0 + 300, 0, "teardown")]
    r = record(replicas=replicas, exits=fine)
    assert violations(r, [], "operator_never_crashed") == []
    assert judge(r, [], S).checks["operator_never_crashed"] == 3
    r = record(replicas=replicas, exits=[*fine[:2], Exit(3, T0 + 200, 1, "unexpected")])
    assert violations(r, [], "operator_never_crashed") == [
        f"replica 3 exited 1 at {T0 + 200:.1f} though nobody stopped it"]
    r = record(replicas=replicas, exits=[*fine[:2], Exit(3, T0 + 300, None, "teardown")])
    assert violations(r, [], "operator_never_crashed") == ["replica 3, stopped at the end, exited None"]


# --- G9 memory_under_limit ------------------------------------------------------------------------


def test_memory_at_the_charts_limit_is_a_violation_even_when_only_the_high_water_mark_saw_it():
    below = [RssSample(1, T0 + i, 100 * 1024, True, 120 * 1024) for i in range(5)]
    assert violations(record(rss=below), [], "memory_under_limit") == []
    assert judge(record(rss=below), [], S).checks["memory_under_limit"] == 5
    spike = [*below, RssSample(1, T0 + 6, 100 * 1024, True, 256 * 1024), RssSample(1, T0 + 7, 300 * 1024, True)]
    assert violations(record(rss=spike), [], "memory_under_limit") == [
        f"replica 1: RSS 256.0 MiB at {T0 + 6:.1f}, at or over the chart's limit of 256 MiB"]


# --- G10 hostile_contained ------------------------------------------------------------------------


def look(cluster: str, at: float, health: str = "Unknown", last_check: float | None = None) -> StatusSample:
    return StatusSample(cluster, T0 + at, health, stamp(T0 + (at if last_check is None else last_check)))


def test_a_hostile_tenant_must_be_checked_to_the_end_and_a_hostile_pd_never_called_healthy():
    hostile = {"hostile-huge-pd": "huge-pd", "hostile-slow-query": "slow-query"}
    kept = [look("hostile-huge-pd", at, "Degraded") for at in (5, 10, 200)]
    kept += [look("hostile-slow-query", at, "Healthy") for at in (5, 10, 200)]  # a shared PD: Healthy is fine
    r = record(hostile=hostile, statuses=kept)
    assert violations(r, [], "hostile_contained") == []
    assert judge(r, [], S).checks["hostile_contained"] == 8

    stuck = [*kept[:2], look("hostile-huge-pd", 200, "Unknown", last_check=100), *kept[3:]]
    assert violations(record(hostile=hostile, statuses=stuck), [], "hostile_contained") == [
        f"hostile-huge-pd (huge-pd) was last checked at {T0 + 100:.0f}, 100 s before the last look at it"]
    healthy = [look("hostile-huge-pd", 5, "Healthy"), *kept[1:]]
    assert violations(record(hostile=hostile, statuses=healthy), [], "hostile_contained") == [
        f"hostile-huge-pd (huge-pd) was called Healthy 1 times, first at {T0 + 5:.1f}"]
    never = kept[3:]
    assert violations(record(hostile=hostile, statuses=never), [], "hostile_contained") == [
        "hostile-huge-pd (huge-pd) was never checked"]


def test_a_record_keeps_the_hostile_tenants_their_looks_and_the_exits_through_json(tmp_path):
    r = record(hostile={"hostile-nan-pd": "nan-pd"}, statuses=[look("hostile-nan-pd", 5)],
               exits=[Exit(1, T0 + 9, 0, "teardown")], rss=[RssSample(1, T0, 1024, True, 2048)])
    r.save(tmp_path / "record.json", [])
    again, _ = load(tmp_path / "record.json")
    assert (again.hostile, again.statuses, again.exits, again.rss) == (r.hostile, r.statuses, r.exits, r.rss)
    # A record from before the hostile tenants: no field of theirs, RSS samples without a peak.
    data = r.to_json()
    for key in ("hostile", "statuses", "exits"):
        data.pop(key)
    data["rss"] = [{"process": 1, "at": T0, "rss_kib": 1024, "leader": True}]
    old = Record.from_json(data)
    assert (old.hostile, old.statuses, old.exits, old.rss[0].peak_kib) == ({}, [], [], 0)
