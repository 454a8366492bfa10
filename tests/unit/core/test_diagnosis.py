"""Correlated diagnosis (design.md rules 26 and 27): the catalogue, correlate, the amended plan, the summary, the
hold-back of a symptom's page and the Diagnosed phase that never silences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tikv_operator.alerts.core.delivery import (
    AlertContext,
    AlertPolicy,
    held_back,
    silence_ops,
    silenced,
    ticket_alert,
)
from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.settings import configure
from tikv_operator.diagnosis.core.amend import amend_plan
from tikv_operator.diagnosis.core.causes import CAUSES, LINKS, LINKS_BY_RULE
from tikv_operator.diagnosis.core.correlate import correlate, diagnose, explain, same_diagnosis
from tikv_operator.model.cluster_resource import PendingViolation, TiKVClusterSpec
from tikv_operator.model.ticket_resource import OperatorTicketStatus, TicketCause, TicketDiagnosis
from tikv_operator.model.timestamps import to_rfc3339
from tikv_operator.tickets.core.commands import Effect, decide_ack
from tikv_operator.tickets.core.lifecycle import CreateTicket, LifecyclePolicy, PatchTicket, plan_check
from tikv_operator.tickets.core.ticket import TicketView

T0 = datetime(2026, 11, 25, 2, 10, tzinfo=UTC)
SPEC = TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"}})
CONFIGS = configure(SPEC)
POLICY = LifecyclePolicy.from_spec(SPEC)


def ticket(invariant: str, store: str = "", n: int = 1, phase: str | None = "Open", first_seen: datetime = T0,
           **kw: Any) -> TicketView:
    name = f"basic-{invariant.replace('_', '-')}" + (f"-s{store}" if store else "") + f"-{n}"
    recorded = {"labels": {"tikvops.io/phase": (phase or "Open").lower(), "tikvops.io/held": "false"},
                "annotations": {"tikvops.io/recorded": f"{phase or 'Open'}/unheld"}}  # as the operator left it
    recorded |= {k: kw.pop(k) for k in ("labels", "annotations") if k in kw}
    return TicketView(name=name, cluster="basic", invariant=invariant, store=store, phase=phase, **recorded,
                      severity=kw.pop("severity", "critical"), first_seen=first_seen, last_seen=first_seen,
                      created=first_seen, resource_version="1", **kw)


def down(store: str = "4", **kw: Any) -> TicketView:
    evidence = {"stateName": "Disconnected", "lastHeartbeat": to_rfc3339(T0), "secondsSinceHeartbeat": 60.0}
    return ticket("store_down", store, evidence=kw.pop("evidence", evidence), **kw)


def cause_of(tickets: list[TicketView], name: str) -> tuple[str, str] | None:
    found = correlate(tickets).get(name)
    return None if found is None else (found.cause.name, found.link.rule)


# -- the catalogue -------------------------------------------------------------------------------------------------

def test_the_catalogue_has_no_cycle_so_following_causes_ends() -> None:
    explained_by = {(link.cause, s) for link in LINKS for s in link.symptoms}
    def reaches(a: str, b: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(x == a and (y == b or (y not in seen and reaches(y, b, seen | {y}))) for x, y in explained_by)
    assert not [c for c in CAUSES if reaches(c, c)]


def test_the_catalogue_covers_the_causes_the_design_names() -> None:
    assert {"store_down", "low_disk_space", "pd_leader_flapping", "store_restarted"} <= CAUSES
    assert LINKS_BY_RULE["store-down-regions"].symptoms == {"region_down_peer", "region_miss_peer",
                                                            "region_pending_peer"}


# -- correlate, one test per rule ------------------------------------------------------------------------------------

def test_store_down_explains_the_region_tickets() -> None:
    tickets = [down(), ticket("region_down_peer", first_seen=T0 + timedelta(minutes=10)),
               ticket("region_pending_peer"), ticket("region_miss_peer")]
    for t in tickets[1:]:
        assert cause_of(tickets, t.name) == ("basic-store-down-s4-1", "store-down-regions")


def test_store_down_explains_its_own_metric_tickets_but_not_its_disk() -> None:
    tickets = [down(), ticket("raft_log_lag", "4"), ticket("store_leader_lost", "4"), ticket("low_disk_space", "4")]
    assert cause_of(tickets, "basic-raft-log-lag-s4-1") == ("basic-store-down-s4-1", "store-down-own-metrics")
    assert cause_of(tickets, "basic-store-leader-lost-s4-1") == ("basic-store-down-s4-1", "store-down-own-metrics")
    assert cause_of(tickets, "basic-low-disk-space-s4-1") is None


def test_store_down_explains_latency_on_the_other_stores() -> None:
    tickets = [down(), ticket("high_latency", "1"), ticket("high_latency", "2"), ticket("raft_log_lag", "1")]
    assert cause_of(tickets, "basic-high-latency-s1-1") == ("basic-store-down-s4-1", "store-down-others-latency")
    assert cause_of(tickets, "basic-high-latency-s2-1") == ("basic-store-down-s4-1", "store-down-others-latency")
    assert cause_of(tickets, "basic-raft-log-lag-s1-1") is None  # only its own store's


def test_a_full_disk_explains_that_stores_stall_raft_and_latency_only() -> None:
    tickets = [ticket("low_disk_space", "2"), ticket("write_stall", "2"), ticket("raft_append_slow", "2"),
               ticket("raft_apply_slow", "2"), ticket("high_latency", "2"), ticket("write_stall", "3")]
    for name in ("write-stall-s2", "raft-append-slow-s2", "raft-apply-slow-s2", "high-latency-s2"):
        assert cause_of(tickets, f"basic-{name}-1") == ("basic-low-disk-space-s2-1", "disk-full")
    assert cause_of(tickets, "basic-write-stall-s3-1") is None


def test_pd_leader_flapping_explains_pd_unreachable_and_the_region_gauges() -> None:
    tickets = [ticket("pd_leader_flapping"), ticket("pd_unreachable"), ticket("region_pending_peer")]
    assert cause_of(tickets, "basic-pd-unreachable-1") == ("basic-pd-leader-flapping-1", "pd-leader-flapping")
    assert cause_of(tickets, "basic-region-pending-peer-1") == ("basic-pd-leader-flapping-1", "pd-leader-flapping")


def test_a_crash_loop_explains_the_same_stores_down_and_the_chain_goes_on() -> None:
    tickets = [ticket("store_restarted", "3"), down("3"), down("1", n=1), ticket("region_down_peer")]
    assert cause_of(tickets, "basic-store-down-s3-1") == ("basic-store-restarted-s3-1", "crash-loop")
    assert cause_of(tickets, "basic-store-down-s1-1") is None
    # The region ticket names the store_down first seen (then by name): s1 and s3 tie, s1 sorts first.
    assert cause_of(tickets, "basic-region-down-peer-1") == ("basic-store-down-s1-1", "store-down-regions")


def test_a_symptom_there_long_before_its_cause_is_not_explained_by_it() -> None:
    tickets = [down(first_seen=T0), ticket("region_down_peer", first_seen=T0 - timedelta(minutes=11))]
    assert cause_of(tickets, "basic-region-down-peer-1") is None
    tickets = [down(first_seen=T0), ticket("region_down_peer", first_seen=T0 - timedelta(minutes=9))]
    assert cause_of(tickets, "basic-region-down-peer-1") == ("basic-store-down-s4-1", "store-down-regions")


def test_a_resolved_cause_explains_nothing() -> None:
    tickets = [down(phase="Resolved"), ticket("region_down_peer")]
    assert correlate(tickets) == {}
    assert explain(tickets[1], tickets) is None


# -- the summary -----------------------------------------------------------------------------------------------------

def test_the_summary_says_state_since_time_left_and_what_it_explains() -> None:
    cause = down()
    tickets = [cause, ticket("region_down_peer", evidence={"regions": 60}), ticket("high_latency", "1"),
               ticket("high_latency", "2")]
    explained = sorted(correlate(tickets).values(), key=lambda e: e.symptom.name)
    diagnosis = diagnose(cause, explained, cause.evidence, T0 + timedelta(minutes=9))
    assert diagnosis.summary == (
        "store 4 is Disconnected since 02:10 UTC (21m left of PD's default max-store-down-time 30m): it "
        "explains 3 tickets: high_latency on stores 1 and 2, region_down_peer (60 regions)")
    assert diagnosis.pd == {"stateName": "Disconnected", "lastHeartbeat": to_rfc3339(T0),
                            "secondsSinceHeartbeat": 60.0, "maxStoreDownTimeLeft": "21m",
                            "maxStoreDownTime": "30m (PD's default)", "regions": {"region_down_peer": 60}}
    assert [e.ticket for e in diagnosis.explains] == ["basic-high-latency-s1-1", "basic-high-latency-s2-1",
                                                      "basic-region-down-peer-1"]
    assert diagnosis.rules == ["store-down-others-latency", "store-down-regions"]
    assert diagnosis.runbook == "docs/runbooks/store_down.md"


def test_a_down_store_has_no_time_left_and_other_causes_say_their_message() -> None:
    cause = down(evidence={"stateName": "Down", "lastHeartbeat": to_rfc3339(T0)})
    assert diagnose(cause, [], cause.evidence, T0).summary == (
        "store 4 is Down since 02:10 UTC: it explains no other open ticket")
    disk = ticket("low_disk_space", "2", message="store 2: disk 93% used")
    (explained,) = correlate([disk, ticket("write_stall", "2")]).values()
    assert diagnose(disk, [explained], {}, T0).summary == (
        "store 2: disk 93% used: it explains 1 ticket: write_stall on store 2")


def test_a_diagnosis_is_not_rewritten_for_the_seconds_that_pass() -> None:
    cause = down()
    first = diagnose(cause, [], cause.evidence, T0)
    later = diagnose(cause, [], {**cause.evidence, "secondsSinceHeartbeat": 120.0}, T0 + timedelta(minutes=1))
    assert same_diagnosis(first, later)
    assert not same_diagnosis(first, diagnose(cause, [], {**cause.evidence, "stateName": "Down"}, T0))
    assert not same_diagnosis(None, first)


# -- the amended plan -----------------------------------------------------------------------------------------------

def violated(invariant: str, store: str = "", grace: timedelta | None = None, **evidence: Any) -> Finding:
    return Finding(invariant, store, "violated", "critical", f"{invariant} {store}", evidence,
                   grace_period=grace)


def amended(findings: list[Finding], tickets: list[TicketView], pending: list[PendingViolation] = (),  # type: ignore[assignment]
            now: datetime = T0) -> Any:
    plan = plan_check(cluster="basic", now=now, batch="b1", findings=findings, configs=CONFIGS, tickets=tickets,
                      pending=pending, unwritten={}, policy=POLICY)
    return amend_plan(plan, tickets, findings, now)


def test_a_symptom_opening_with_its_cause_names_it_and_is_written_after_it() -> None:
    since = to_rfc3339(T0 - timedelta(minutes=2))
    pending = [PendingViolation(invariant="region_down_peer", store="", first_seen=since)]
    plan = amended([violated("region_down_peer", regions=60), violated("store_down", "4", grace=timedelta(0))], [],
                   pending)
    creates = [op for op in plan.operations if isinstance(op, CreateTicket)]
    assert [op.name for op in creates] == ["basic-store-down-s4-1", "basic-region-down-peer-1"]
    assert creates[1].status["cause"] == {"ticket": "basic-store-down-s4-1", "invariant": "store_down",
                                          "store": "4", "rule": "store-down-regions", "since": to_rfc3339(T0)}
    assert "cause" not in creates[0].status


def test_a_symptom_waits_while_its_cause_is_in_grace_and_opens_when_it_does_not_come() -> None:
    since = to_rfc3339(T0 - timedelta(minutes=2))
    pending = [PendingViolation(invariant="high_latency", store="1", first_seen=since),
               PendingViolation(invariant="store_down", store="4", first_seen=to_rfc3339(T0))]
    plan = amended([violated("high_latency", "1"), violated("store_down", "4")], [], pending)
    assert plan.operations == ()
    assert {(p.invariant, p.store, p.first_seen) for p in plan.pending} == {
        ("high_latency", "1", since), ("store_down", "4", to_rfc3339(T0))}
    assert plan.open_tickets == 0
    # The store came back within its grace: the latency opens at once, its own grace served.
    plan = amended([violated("high_latency", "1")], [], plan.pending, T0 + timedelta(seconds=30))
    (op,) = plan.operations
    assert isinstance(op, CreateTicket)
    assert op.name == "basic-high-latency-s1-1"
    assert "cause" not in op.status


def test_an_open_cause_becomes_diagnosed_and_its_symptom_names_it() -> None:
    cause, symptom = down(), ticket("region_down_peer", evidence={"regions": 60})
    plan = amended([violated("store_down", "4", stateName="Disconnected"), violated("region_down_peer")],
                   [cause, symptom], now=T0 + timedelta(seconds=10))
    ops = {op.name: op for op in plan.operations}
    diagnosed = ops["basic-store-down-s4-1"]
    assert isinstance(diagnosed, PatchTicket)
    assert diagnosed.status is not None
    assert diagnosed.status["phase"] == "Diagnosed"
    assert diagnosed.status["diagnosis"]["explains"] == [{"ticket": "basic-region-down-peer-1",
                                                          "invariant": "region_down_peer", "store": "",
                                                          "rule": "store-down-regions"}]
    assert diagnosed.labels == {"tikvops.io/phase": "diagnosed", "tikvops.io/held": "false"}
    assert diagnosed.annotations == {"tikvops.io/recorded": "Diagnosed/unheld"}
    assert diagnosed.event is not None
    assert diagnosed.event.reason == "TicketDiagnosed"
    assert diagnosed.resource_version == "1"
    assert ops["basic-region-down-peer-1"].status["cause"]["ticket"] == "basic-store-down-s4-1"  # type: ignore[index]
    # Written once: the next check, with the same picture, writes nothing of it.
    status = OperatorTicketStatus.read(diagnosed.status)
    cause = TicketView(**{**cause.__dict__, "phase": "Diagnosed", "diagnosis": status.diagnosis,
                          "labels": diagnosed.labels, "annotations": diagnosed.annotations})
    symptom = TicketView(**{**symptom.__dict__, "cause": TicketCause.model_validate(
        ops["basic-region-down-peer-1"].status["cause"])})  # type: ignore[index]
    again = amended([violated("store_down", "4", stateName="Disconnected"), violated("region_down_peer")],
                    [cause, symptom], now=T0 + timedelta(seconds=20))
    assert again.operations == ()


def test_a_persons_diagnosed_and_acknowledged_are_kept() -> None:
    symptom = ticket("region_down_peer")
    person = down(phase="Diagnosed")
    plan = amended([violated("store_down", "4"), violated("region_down_peer")], [person, symptom])
    assert [op.name for op in plan.operations] == [symptom.name]  # the symptom names it; that is all
    acked = down(phase="Acknowledged")
    (_, cause_op) = sorted(amended([violated("store_down", "4"), violated("region_down_peer")],
                                   [acked, symptom]).operations, key=lambda op: op.name)
    assert "phase" not in cause_op.status
    assert "diagnosis" in cause_op.status


def test_a_resolved_cause_stays_named_and_a_deleted_one_is_cleared() -> None:
    symptom = ticket("high_latency", "1", cause=TicketCause(ticket="basic-store-down-s4-1", invariant="store_down",
                                                            store="4", rule="store-down-others-latency"))
    plan = amended([violated("high_latency", "1")], [down(phase="Resolved", resolved_at=T0), symptom])
    assert [op for op in plan.operations if op.name == symptom.name] == []
    plan = amended([violated("high_latency", "1")], [symptom])  # past its retention: deleted
    (op,) = [op for op in plan.operations if op.name == symptom.name]
    assert op.status == {"cause": None}  # type: ignore[union-attr]


# -- delivery: the hold-back (rule 26) and silences (rule 27) -------------------------------------------------------

CONTEXT = AlertContext(namespace="ns", cluster="basic")


def test_a_symptom_is_held_back_while_its_cause_is_open_and_pages_once_a_check_judged_it_after() -> None:
    cause = down()
    symptom = ticket("high_latency", "1", cause=TicketCause(ticket=cause.name, invariant="store_down", store="4",
                                                            rule="store-down-others-latency"))
    settle = timedelta(seconds=20)
    assert held_back(symptom, {cause.name: cause, symptom.name: symptom}, T0, settle)
    assert held_back(symptom, {cause.name: down(phase="Acknowledged")}, T0, settle)
    # The cause resolved: a check may still resolve the symptom within `settle`; after it, the symptom pages.
    gone = down(phase="Resolved", resolved_at=T0)
    assert held_back(symptom, {cause.name: gone}, T0 + timedelta(seconds=19), settle)
    assert not held_back(symptom, {cause.name: gone}, T0 + timedelta(seconds=20), settle)
    assert not held_back(symptom, {cause.name: gone}, T0)  # no settle: at once
    assert not held_back(symptom, {}, T0, settle)  # a cause that is gone holds nothing
    assert not held_back(ticket("high_latency", "1"), {cause.name: cause}, T0, settle)
    # A region gauge clears at the leaders' next region heartbeat: a minute more.
    regions = ticket("region_down_peer", cause=TicketCause(ticket=cause.name, invariant="store_down", store="4",
                                                           rule="store-down-regions"))
    assert held_back(regions, {cause.name: gone}, T0 + timedelta(seconds=79), settle)
    assert not held_back(regions, {cause.name: gone}, T0 + timedelta(seconds=80), settle)
    alert = ticket_alert(symptom, CONTEXT, T0, AlertPolicy(), {cause.name: gone})
    assert alert is not None
    assert alert.annotations["cause"] == (f"{cause.name} (store-down-others-latency), resolved at "
                                          f"{to_rfc3339(T0)}: this ticket outlived its cause")
    alert = ticket_alert(symptom, CONTEXT, T0, AlertPolicy())
    assert alert is not None
    assert alert.annotations["cause"] == f"{cause.name} (store-down-others-latency)"


def test_the_causes_alert_carries_its_diagnosis() -> None:
    diagnosis = TicketDiagnosis(summary="store 4 is Down since 02:10 UTC: it explains 1 ticket: region_down_peer",
                                explains=[{"ticket": "basic-region-down-peer-1", "invariant": "region_down_peer",
                                           "rule": "store-down-regions"}], runbook="docs/runbooks/store_down.md")
    alert = ticket_alert(down(phase="Diagnosed", diagnosis=diagnosis), CONTEXT, T0, AlertPolicy())
    assert alert is not None
    assert alert.firing
    assert alert.annotations["diagnosis"] == diagnosis.summary
    assert alert.annotations["explains"] == "basic-region-down-peer-1"
    assert alert.annotations["diagnosis_runbook"] == "docs/runbooks/store_down.md"


@pytest.mark.parametrize(("phase", "diagnosis", "silent"), [
    ("Open", None, False), ("Acknowledged", None, True), ("Acknowledged", "x", True),
    ("Diagnosed", None, True),  # a person's Diagnosed, as before
    ("Diagnosed", "x", False),  # the operator's: a diagnosis alone never silences
    ("Resolved", None, False)])
def test_only_a_person_silences(phase: str, diagnosis: str | None, silent: bool) -> None:
    view = down(phase=phase, diagnosis=TicketDiagnosis(summary=diagnosis) if diagnosis else None)
    assert silenced(view) is silent
    assert [op.action for op in silence_ops(view, ["http://am"])] == (["create"] if silent else [])


def test_acknowledging_the_operators_diagnosed_silences_it_and_a_persons_is_already() -> None:
    operators = down(phase="Diagnosed", diagnosis=TicketDiagnosis(summary="s"))
    decision = decide_ack(operators)
    assert decision.effect == Effect.CHANGED
    assert decision.status_patch == {"status": {"phase": "Acknowledged"}}
    assert decide_ack(down(phase="Diagnosed")).effect == Effect.ALREADY


def test_the_text_chart_draws_a_held_series_and_says_plainly_when_there_is_none() -> None:
    from tikv_operator.cli.tickets_output import _chart

    series = [[1764000000, 10], [1764000060, 80], [1764000120, 24]]
    assert _chart({"series": series}) == ["▁█▂  10 .. 80  (16:00:00 to 16:02:00 UTC)"]
    assert _chart({"query": "up"}) == ["no series available: the ticket keeps the values judged at detection, not "
                                       "their history; its query, for Prometheus' graph: up"]


def test_docs_diagnosis_md_lists_the_catalogue_as_it_is() -> None:
    from pathlib import Path

    where = {"same-store": "the same store", "other-stores": "the other stores", "cluster": "the cluster"}
    rows = [f"| `{link.rule}` | `{link.cause}` | {', '.join(f'`{s}`' for s in sorted(link.symptoms))} | "
            f"{where[link.where]} |" for link in LINKS]
    text = (Path(__file__).parents[3] / "docs" / "diagnosis.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("| `") and line.count("|") == 5]
    assert table == rows


def test_the_operators_own_diagnosed_seen_before_its_record_is_no_persons_edit() -> None:
    from tikv_operator.tickets.core.lifecycle import react_to_edit

    mid_write = down(phase="Diagnosed", diagnosis=TicketDiagnosis(summary="s"),
                     annotations={"tikvops.io/recorded": "Open/unheld"})
    op = react_to_edit(mid_write, T0)
    assert op is not None
    assert op.event is None
    assert op.annotations == {"tikvops.io/recorded": "Diagnosed/unheld"}
    persons = down(phase="Diagnosed", annotations={"tikvops.io/recorded": "Open/unheld"})
    op = react_to_edit(persons, T0)
    assert op is not None
    assert op.event is not None
    assert op.event.reason == "TicketDiagnosed"
