"""The ticket lifecycle rules (design.md rules 1-11) as pure planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tikv_operator.checks.core.findings import Finding, Verdict
from tikv_operator.checks.core.settings import configure
from tikv_operator.model.cluster_resource import PendingViolation, TiKVClusterSpec
from tikv_operator.model.timestamps import to_rfc3339
from tikv_operator.tickets.core.lifecycle import (
    CreateTicket,
    DeleteTicket,
    LifecyclePolicy,
    PatchTicket,
    Plan,
    carried_pending,
    open_tickets_written,
    plan_check,
    react_to_edit,
)
from tikv_operator.tickets.core.ticket import TicketView

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
SPEC = TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"}})
CONFIGS = configure(SPEC)
POLICY = LifecyclePolicy.from_spec(SPEC)


def finding(verdict: Verdict, invariant: str = "store_down", store: str = "4", severity: str = "critical",
            grace: timedelta | None = None, clears: bool = True) -> Finding:
    """store_down findings default to a Down store's: no grace period of their own."""
    if grace is None and invariant == "store_down":
        grace = timedelta(0)
    return Finding(invariant, store, verdict, severity, f"{invariant} {store} {verdict}", {"v": 1},  # type: ignore[arg-type]
                   grace_period=grace, clears=clears)


def ticket(name: str = "basic-store-down-s4-1", phase: str | None = "Open", **kw: Any) -> TicketView:
    fields: dict[str, Any] = {"cluster": "basic", "invariant": "store_down", "store": "4", "severity": "critical",
                              "occurrences": 1, "last_seen": T0, "created": T0, "first_seen": T0,
                              "labels": {"tikvops.io/phase": (phase or "open").lower(),
                                         "tikvops.io/held": "true" if kw.get("held") else "false"}}
    fields.update(kw)
    return TicketView(name=name, phase=phase, **fields)


def plan(findings: list[Finding], tickets: list[TicketView] = (), now: datetime = T0,  # type: ignore[assignment]
         pending: list[PendingViolation] = (), unwritten: dict[str, int] | None = None,  # type: ignore[assignment]
         policy: LifecyclePolicy = POLICY) -> Plan:
    return plan_check(cluster="basic", now=now, batch="b1", findings=findings, configs=CONFIGS, tickets=tickets,
                      pending=pending, unwritten=unwritten or {}, policy=policy)


def test_violation_without_grace_opens_a_ticket_with_deterministic_name_and_labels() -> None:
    (op,) = plan([finding("violated")]).operations
    assert isinstance(op, CreateTicket)
    assert op.name == "basic-store-down-s4-1"
    assert op.labels == {"tikvops.io/cluster": "basic", "tikvops.io/invariant": "store_down",
                         "tikvops.io/store": "4", "tikvops.io/phase": "open", "tikvops.io/severity": "critical",
                         "tikvops.io/held": "false"}
    assert op.status["phase"] == "Open"
    assert op.status["occurrences"] == 1
    assert op.status["evidence"] == {"v": 1}
    assert op.event.reason == "TicketOpened"


def test_cluster_wide_ticket_name_has_no_store() -> None:
    (op,) = plan([finding("violated", "pd_unreachable", "")],
                 pending=[PendingViolation(invariant="pd_unreachable", store="", first_seen=to_rfc3339(T0))],
                 now=T0 + timedelta(seconds=61)).operations
    assert isinstance(op, CreateTicket)
    assert op.name == "basic-pd-unreachable-1"
    assert op.status["firstSeen"] == to_rfc3339(T0)  # from the pending entry, not from now


def test_rule1_an_active_ticket_is_never_duplicated_and_numbers_follow_history() -> None:
    result = plan([finding("violated")], [ticket()], now=T0 + timedelta(seconds=10))
    assert not any(isinstance(op, CreateTicket) for op in result.operations)
    resolved = ticket("basic-store-down-s4-2", "Resolved", resolution="auto", resolved_at=T0)
    (op,) = plan([finding("violated")], [ticket("basic-store-down-s4-1", "Resolved", resolved_at=T0), resolved],
                 now=T0 + timedelta(minutes=11)).operations
    assert isinstance(op, CreateTicket)
    assert op.name == "basic-store-down-s4-3"


def test_rule2_grace_period_pending_then_ticket_from_first_seen() -> None:
    latency = finding("violated", "high_latency", "1", "warning")
    first = plan([latency])
    assert first.operations == ()
    assert first.pending == (PendingViolation(invariant="high_latency", store="1", first_seen=to_rfc3339(T0)),)
    second = plan([latency], pending=list(first.pending), now=T0 + timedelta(seconds=59))
    assert second.operations == ()
    assert second.pending == first.pending
    (op,) = plan([latency], pending=list(first.pending), now=T0 + timedelta(seconds=60)).operations
    assert isinstance(op, CreateTicket)
    assert op.status["firstSeen"] == to_rfc3339(T0)


def test_rule2_ok_clears_pending_and_unknown_keeps_it() -> None:
    pending = [PendingViolation(invariant="high_latency", store="1", first_seen=to_rfc3339(T0))]
    assert plan([finding("ok", "high_latency", "1")], pending=pending).pending == ()
    assert plan([finding("unknown", "high_latency", "1")], pending=pending).pending == tuple(pending)
    assert plan([], pending=pending).pending == tuple(pending)  # nobody judged it: unknown


def test_rule2_a_grace_clock_is_carried_only_over_checks_that_went_on() -> None:
    # Defaults: a 1m refresh interval (the status' lastCheckTime may be that old) and 30s checks.
    pending = [PendingViolation(invariant="pd_unreachable", first_seen=to_rfc3339(T0))]
    interval = timedelta(seconds=30)
    later = T0 + timedelta(minutes=5)
    assert carried_pending(pending, None, later, interval, POLICY) == tuple(pending)  # no check time: kept
    assert carried_pending(pending, later - timedelta(minutes=2), later, interval, POLICY) == tuple(pending)
    # Nobody checked for longer (a handover, an operator down): the violation may have cleared and come
    # back meanwhile, so its grace starts again at the next check that sees it.
    assert carried_pending(pending, later - timedelta(minutes=2, seconds=1), later, interval, POLICY) == ()
    fresh = plan([finding("violated", "pd_unreachable", "", "critical")],
                 pending=list(carried_pending(pending, T0, later, interval, POLICY)), now=later)
    assert fresh.operations == ()
    assert fresh.pending == (PendingViolation(invariant="pd_unreachable", first_seen=to_rfc3339(later)),)


def test_rule3_counters_are_coalesced_to_one_write_per_refresh_interval() -> None:
    t = ticket(occurrences=5, last_seen=T0)
    quiet = plan([finding("violated")], [t], now=T0 + timedelta(seconds=30))
    assert quiet.operations == ()
    assert quiet.unwritten == {t.name: 1}
    again = plan([finding("violated")], [t], now=T0 + timedelta(seconds=45), unwritten=dict(quiet.unwritten))
    assert again.unwritten == {t.name: 2}
    (op,) = plan([finding("violated")], [t], now=T0 + timedelta(seconds=60), unwritten=dict(again.unwritten)).operations
    assert isinstance(op, PatchTicket)
    assert op.status == {"occurrences": 8, "lastSeen": to_rfc3339(T0 + timedelta(seconds=60)),
                         "message": "store_down 4 violated"}
    assert op.event is None


def test_rule3_severity_change_is_written_at_once() -> None:
    (op,) = plan([finding("violated", severity="emergency")], [ticket()], now=T0 + timedelta(seconds=5)).operations
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert op.status["severity"] == "emergency"
    assert op.labels == {"tikvops.io/severity": "emergency", "tikvops.io/phase": "open", "tikvops.io/held": "false"}
    assert op.event is not None
    assert op.event.reason == "SeverityChanged"


def test_rule4_auto_resolve_flushes_unwritten_counts() -> None:
    (op,) = plan([finding("ok")], [ticket(occurrences=3)], now=T0 + timedelta(seconds=30),
                 unwritten={"basic-store-down-s4-1": 2}).operations
    assert isinstance(op, PatchTicket)
    at = to_rfc3339(T0 + timedelta(seconds=30))
    assert op.status == {"phase": "Resolved", "resolution": "auto", "resolvedAt": at, "occurrences": 5,
                         "resolutionMessage": "store_down 4 ok"}
    assert op.labels == {"tikvops.io/phase": "resolved", "tikvops.io/held": "false"}
    assert op.event is not None
    assert op.event.reason == "TicketResolved"


def test_rule4_held_ticket_stays_open() -> None:
    assert plan([finding("ok")], [ticket(held=True)], now=T0 + timedelta(seconds=30)).operations == ()


def test_rule5_unknown_or_unjudged_leaves_the_ticket_alone() -> None:
    assert plan([finding("unknown")], [ticket()], now=T0 + timedelta(seconds=30)).operations == ()
    result = plan([], [ticket()], now=T0 + timedelta(seconds=30))
    assert result.operations == ()
    assert result.open_tickets == 1


def test_rule6_after_a_manual_resolve_a_still_present_condition_opens_a_new_ticket_without_grace() -> None:
    done = ticket("basic-high-latency-s1-1", "Resolved", invariant="high_latency", store="1", severity="warning",
                  resolution="manual", resolved_at=T0)
    (op,) = plan([finding("violated", "high_latency", "1", "warning")], [done],
                 now=T0 + timedelta(seconds=5)).operations
    assert isinstance(op, CreateTicket)
    assert op.name == "basic-high-latency-s1-2"


def test_rule7_tickets_opened_in_one_check_share_a_batch() -> None:
    ops = plan([finding("violated", store="1"), finding("violated", store="4")]).operations
    assert [op.status["batch"] for op in ops if isinstance(op, CreateTicket)] == ["b1", "b1"]


def test_rule8_flapping_after_count_openings_in_window() -> None:
    earlier = [ticket(f"basic-store-down-s4-{n}", "Resolved", resolution="manual", resolved_at=T0,
                      created=T0 - timedelta(minutes=m)) for n, m in ((1, 20), (2, 5), (3, 2))]
    (op,) = plan([finding("violated")], earlier).operations
    assert isinstance(op, CreateTicket)
    assert op.name == "basic-store-down-s4-4"
    assert op.status["flapping"] is True  # tickets 2 and 3 are within 10m; this one makes three
    assert op.event.message.endswith("(flapping: 3 tickets within 10m)")
    (op,) = plan([finding("violated")], earlier[:2]).operations
    assert isinstance(op, CreateTicket)
    assert op.status["flapping"] is False


def test_rule13_a_violation_back_within_the_window_after_an_auto_resolve_reopens_its_ticket() -> None:
    done = ticket("basic-store-down-s4-1", "Resolved", resolution="auto", resolved_at=T0 - timedelta(minutes=3),
                  created=T0 - timedelta(minutes=30), occurrences=7, first_seen=T0 - timedelta(minutes=30))
    (op,) = plan([finding("violated")], [done]).operations
    assert isinstance(op, PatchTicket)
    assert op.name == "basic-store-down-s4-1"
    assert op.status is not None
    assert op.status["phase"] == "Open"
    assert op.status["occurrences"] == 8
    assert op.status["reopenedAt"] == [to_rfc3339(T0)]
    assert (op.status["resolvedAt"], op.status["resolution"], op.status["resolutionMessage"]) == (None, None, None)
    assert "firstSeen" not in op.status  # the incident began when it was first seen
    assert op.status["flapping"] is False  # created 30 min ago: this is the window's second opening
    assert op.labels == {"tikvops.io/phase": "open", "tikvops.io/severity": "critical", "tikvops.io/held": "false"}
    assert op.annotations == {"tikvops.io/recorded": "Open/unheld"}
    assert op.event is not None
    assert op.event.reason == "TicketReopened"
    assert plan([finding("violated")], [done]).open_tickets == 1
    # A third opening within the window marks it flapping (count 3).
    again = ticket("basic-store-down-s4-1", "Resolved", resolution="auto", resolved_at=T0 - timedelta(minutes=1),
                   created=T0 - timedelta(minutes=30), reopened_at=(T0 - timedelta(minutes=4),))
    (op,) = plan([finding("violated")], [again]).operations
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert op.status["flapping"] is False  # created long ago; two reopenings in the window
    three = ticket("basic-store-down-s4-1", "Resolved", resolution="auto", resolved_at=T0 - timedelta(minutes=1),
                   created=T0 - timedelta(minutes=8), reopened_at=(T0 - timedelta(minutes=4),))
    (op,) = plan([finding("violated")], [three]).operations
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert op.status["flapping"] is True


def test_rule13_past_the_window_or_after_a_manual_resolve_a_new_ticket_opens() -> None:
    old = ticket("basic-store-down-s4-1", "Resolved", resolution="auto", resolved_at=T0 - timedelta(minutes=11))
    (op,) = plan([finding("violated")], [old]).operations
    assert isinstance(op, CreateTicket)
    assert op.name == "basic-store-down-s4-2"
    manual = ticket("basic-store-down-s4-1", "Resolved", resolution="manual", resolved_at=T0 - timedelta(minutes=1))
    (op,) = plan([finding("violated")], [manual]).operations
    assert isinstance(op, CreateTicket)
    assert op.name == "basic-store-down-s4-2"


def test_rule13_a_reopened_ticket_is_not_deleted_by_retention_in_the_same_check() -> None:
    short = LifecyclePolicy(refresh_interval=timedelta(minutes=1), resolved_retention=timedelta(seconds=5),
                            flapping_window=timedelta(minutes=10), flapping_count=3)
    done = ticket("basic-store-down-s4-1", "Resolved", resolution="auto", resolved_at=T0 - timedelta(seconds=30))
    (op,) = plan([finding("violated")], [done], policy=short).operations
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert op.status["phase"] == "Open"


def test_rule13_a_value_hovering_at_the_threshold_opens_one_ticket_in_ten_minutes_of_checks() -> None:
    """30 s checks for 10 minutes of a disk swinging 60 % <-> 80 % every other check, and one hovering
    69 % <-> 71 %: the clear margin holds the second, reopening holds the first."""
    for low_clears in (True, False):  # 60 % is below the clear margin; 69 % is inside it
        tickets: dict[str, TicketView] = {}
        created = 0
        for step in range(20):
            now = T0 + timedelta(seconds=30 * step)
            high = step % 2 == 0
            f = finding("violated" if high else "ok", "low_disk_space", "2", "warning", clears=low_clears or high)
            for op in plan([f], list(tickets.values()), now=now).operations:
                if isinstance(op, CreateTicket):
                    created += 1
                    tickets[op.name] = ticket(op.name, "Open", invariant="low_disk_space", store="2",
                                              severity="warning", created=now, last_seen=now)
                elif isinstance(op, PatchTicket) and op.status is not None and "phase" in op.status:
                    old = tickets[op.name]
                    resolved = op.status["phase"] == "Resolved"
                    tickets[op.name] = TicketView(
                        **{**old.__dict__, "phase": op.status["phase"],
                           "resolution": "auto" if resolved else None, "resolved_at": now if resolved else None,
                           "reopened_at": old.reopened_at + (() if resolved else (now,))})
        assert created == 1
        assert len(tickets) == 1


def test_rule3_severity_only_rises_within_a_ticket() -> None:
    disconnected = ticket(severity="warning")
    (op,) = plan([finding("violated", severity="critical")], [disconnected],
                 now=T0 + timedelta(seconds=5)).operations
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert op.status["severity"] == "critical"
    # Back to warning: the ticket keeps the severity it paged with, only counters are refreshed.
    (op,) = plan([finding("violated", severity="warning")], [ticket(severity="critical", last_seen=T0)],
                 now=T0 + timedelta(minutes=2)).operations
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert "severity" not in op.status
    assert op.labels is None


def test_a_findings_own_grace_period_overrides_the_invariants() -> None:
    disconnected = finding("violated", severity="warning", grace=None)
    disconnected = Finding(**{**disconnected.__dict__, "grace_period": None})
    first = plan([disconnected])
    assert first.operations == ()  # store_down's catalogue grace: 1m
    down = finding("violated")  # grace 0
    (op,) = plan([down], pending=list(first.pending), now=T0 + timedelta(seconds=5)).operations
    assert isinstance(op, CreateTicket)
    assert op.status["firstSeen"] == to_rfc3339(T0)  # the incident began when it was first Disconnected


def test_ok_inside_the_clear_margin_keeps_the_ticket_and_drops_the_grace_clock() -> None:
    margin = finding("ok", clears=False)
    assert plan([margin], [ticket()], now=T0 + timedelta(seconds=30)).operations == ()
    pending = [PendingViolation(invariant="store_down", store="4", first_seen=to_rfc3339(T0))]
    assert plan([margin], pending=pending).pending == ()


def test_rule11_resolved_tickets_are_deleted_after_retention() -> None:
    old = ticket("basic-store-down-s4-1", "Resolved", resolution="auto", resolved_at=T0 - timedelta(hours=168))
    young = ticket("basic-store-down-s4-2", "Resolved", resolution="auto", resolved_at=T0 - timedelta(hours=1))
    ops = plan([finding("ok")], [old, young]).operations
    assert [op.name for op in ops if isinstance(op, DeleteTicket)] == ["basic-store-down-s4-1"]


def test_a_ticket_whose_status_was_never_written_gets_it_on_the_next_check() -> None:
    half = ticket(phase=None, occurrences=0, last_seen=None, severity=None)
    (op,) = plan([finding("violated")], [half], now=T0 + timedelta(seconds=10)).operations
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert op.status["phase"] == "Open"
    (op,) = plan([finding("ok")], [half], now=T0 + timedelta(seconds=10)).operations
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert op.status["phase"] == "Resolved"


def test_tickets_of_other_clusters_are_ignored() -> None:
    other = ticket("other-store-down-s4-1", cluster="other")
    (op,) = plan([finding("violated")], [other]).operations
    assert isinstance(op, CreateTicket)


def edited(recorded: str, phase: str = "Open", held: bool = False, **kw: Any) -> TicketView:
    """A ticket a person just changed: the operator last recorded `recorded`; labels as a CLI would set them."""
    labels = {"tikvops.io/phase": phase.lower(), "tikvops.io/held": "true" if held else "false"}
    return ticket(phase=phase, held=held, labels=kw.pop("labels", labels),
                  annotations={"tikvops.io/recorded": recorded}, **kw)


def test_edit_manual_resolve_wins_over_hold() -> None:
    op = react_to_edit(edited("Open/held", "Resolved", held=True, labels={"tikvops.io/phase": "open",
                                                                          "tikvops.io/held": "true"}), T0)
    assert op is not None
    assert op.status == {"resolution": "manual", "resolvedAt": to_rfc3339(T0)}
    assert op.spec == {"held": False}
    assert op.labels == {"tikvops.io/phase": "resolved", "tikvops.io/held": "false"}
    assert op.annotations == {"tikvops.io/recorded": "Resolved/unheld"}
    assert op.event is not None
    assert op.event.reason == "TicketResolvedManually"


def test_edit_by_the_cli_which_already_set_labels_still_posts_the_event() -> None:
    op = react_to_edit(edited("Open/unheld", "Resolved", resolution="manual", resolved_at=T0), T0)
    assert op is not None
    assert op.status == {"resolution": "manual", "resolvedAt": to_rfc3339(T0)}  # kept as the person wrote it
    assert op.labels is None
    assert op.event is not None
    assert op.event.reason == "TicketResolvedManually"


def test_edit_hold_and_unhold_post_an_event() -> None:
    held = react_to_edit(edited("Open/unheld", held=True, labels={"tikvops.io/phase": "open",
                                                                  "tikvops.io/held": "false"}), T0)
    assert held is not None
    assert held.labels == {"tikvops.io/held": "true"}
    assert held.annotations == {"tikvops.io/recorded": "Open/held"}
    assert held.event is not None
    assert held.event.reason == "TicketHeld"
    unheld = react_to_edit(edited("Open/held", held=False), T0)
    assert unheld is not None
    assert unheld.event is not None
    assert unheld.event.reason == "TicketUnheld"


def test_edit_acknowledge_and_in_step_ticket() -> None:
    ack = react_to_edit(edited("Open/unheld", "Acknowledged"), T0)
    assert ack is not None
    assert ack.annotations == {"tikvops.io/recorded": "Acknowledged/unheld"}
    assert ack.event is not None
    assert ack.event.reason == "TicketAcknowledged"
    assert react_to_edit(edited("Open/unheld"), T0) is None
    # The operator's own auto-resolve (status written before labels) only gets its record caught up.
    auto = react_to_edit(edited("Open/unheld", "Resolved", resolution="auto"), T0)
    assert auto is not None
    assert auto.event is None
    assert auto.status is None


def test_a_ticket_from_before_the_record_annotation_falls_back_to_its_labels() -> None:
    old = ticket(held=True, labels={"tikvops.io/phase": "open", "tikvops.io/held": "false"})
    op = react_to_edit(old, T0)
    assert op is not None
    assert op.event is not None
    assert op.event.reason == "TicketHeld"


def test_a_check_records_an_edit_the_edit_handler_missed() -> None:
    # A person resolved a held ticket by hand; the API blipped while the edit handler recorded it.
    missed = edited("Open/held", "Resolved", held=True, resource_version="41",
                    labels={"tikvops.io/phase": "open", "tikvops.io/held": "true"})
    result = plan([finding("violated", severity="critical")], [missed], now=T0 + timedelta(seconds=30))
    record = next(op for op in result.operations if isinstance(op, PatchTicket) and op.name == missed.name)
    assert record.event is not None
    assert record.event.reason == "TicketResolvedManually"
    assert record.spec == {"held": False}
    assert record.labels == {"tikvops.io/phase": "resolved", "tikvops.io/held": "false"}
    assert record.annotations == {"tikvops.io/recorded": "Resolved/unheld"}
    assert record.resource_version == "41"
    # Rule 6 still holds in the same check: the condition is there, so a new ticket opens at once.
    assert [op.name for op in result.operations if isinstance(op, CreateTicket)] == ["basic-store-down-s4-2"]


def test_a_recorded_edit_is_not_recorded_again_by_the_check() -> None:
    done = edited("Resolved/unheld", "Resolved", resolution="manual", resolved_at=T0)
    assert plan([finding("ok")], [done], now=T0 + timedelta(seconds=30)).operations == ()


def test_patches_apply_only_to_the_version_they_were_planned_on() -> None:
    open_ticket = ticket(resource_version="7")
    (resolve,) = plan([finding("ok")], [open_ticket], now=T0 + timedelta(seconds=30)).operations
    assert isinstance(resolve, PatchTicket)
    assert resolve.resource_version == "7"
    (refresh,) = plan([finding("violated")], [open_ticket], now=T0 + timedelta(minutes=10)).operations
    assert isinstance(refresh, PatchTicket)
    assert refresh.resource_version == "7"
    old = ticket("basic-store-down-s4-1", "Resolved", resolution="auto", resolved_at=T0, resource_version="9")
    (delete,) = plan([], [old], now=T0 + timedelta(days=30)).operations
    assert isinstance(delete, DeleteTicket)
    assert delete.resource_version == "9"


def test_a_ticket_created_by_a_process_killed_before_its_status_gets_its_opened_event() -> None:
    half = ticket(phase=None, occurrences=0, last_seen=None, severity=None)
    (op,) = plan([finding("violated")], [half], now=T0 + timedelta(seconds=10)).operations
    assert isinstance(op, PatchTicket)
    assert op.event is not None
    assert op.event.reason == "TicketOpened"


def test_open_tickets_counts_only_what_was_written() -> None:
    result = plan([finding("violated"), finding("ok", store="5")], [ticket("basic-store-down-s5-1", store="5")],
                  now=T0 + timedelta(seconds=30))
    assert result.open_tickets == 1  # one created, one resolved
    assert open_tickets_written(result, set()) == 1
    assert open_tickets_written(result, {"basic-store-down-s4-1"}) == 0  # the create failed (a 422)
    assert open_tickets_written(result, {"basic-store-down-s5-1"}) == 2  # the resolve failed: still open


def test_keep_firing_for_holds_a_ticket_open_after_the_condition_clears() -> None:
    spec = TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"},
                                           "invariants": {"store_down": {"keepFiringFor": "2m"}}})
    configs = configure(spec)
    open_ticket = ticket(last_seen=T0 - timedelta(minutes=5))  # counters written long ago (coalesced)

    def run(now: datetime, verdict: Verdict, last: dict[str, datetime]) -> Plan:
        return plan_check(cluster="basic", now=now, batch="b", findings=[finding(verdict)], configs=configs,
                          tickets=[open_ticket], pending=[], unwritten={}, policy=POLICY, last_violated=last)

    seen = run(T0, "violated", {})
    assert seen.last_violated == {open_ticket.name: T0}  # remembered between coalesced writes
    # Cleared 1 minute after it was last seen: still firing, nothing written.
    assert run(T0 + timedelta(minutes=1), "ok", dict(seen.last_violated)).operations == ()
    # 2 minutes after: resolved.
    (resolve,) = run(T0 + timedelta(minutes=2), "ok", dict(seen.last_violated)).operations
    assert isinstance(resolve, PatchTicket)
    assert (resolve.status or {}).get("phase") == "Resolved"
    # After an operator restart (no memory) the ticket's own lastSeen is the fallback.
    (late,) = run(T0, "ok", {}).operations
    assert (late.status or {}).get("phase") == "Resolved"
    without = plan([finding("ok")], [ticket()], now=T0 + timedelta(seconds=1))
    assert (without.operations[0].status or {}).get("phase") == "Resolved"  # default: no keep-firing


def _spec_with(**extra: Any) -> TiKVClusterSpec:
    return TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"},
                                           **extra})


def _plan_with(configs: Any, tickets: list[TicketView], findings: list[Finding] = (),  # type: ignore[assignment]
               unwritten: dict[str, int] | None = None) -> Plan:
    return plan_check(cluster="basic", now=T0 + timedelta(minutes=1), batch="b", findings=findings, configs=configs,
                      tickets=tickets, pending=[], unwritten=unwritten or {}, policy=POLICY)


LATENCY_TICKET = {"name": "basic-high-latency-s1-1", "invariant": "high_latency", "store": "1",
                  "severity": "warning"}


def test_rule22_a_disabled_invariant_resolves_its_open_tickets_and_says_why() -> None:
    configs = configure(_spec_with(invariants={"high_latency": {"enabled": False}}))
    open_ticket = ticket(**LATENCY_TICKET)
    acked = ticket("basic-high-latency-s2-1", "Acknowledged", invariant="high_latency", store="2")
    result = _plan_with(configs, [open_ticket, acked, ticket()], unwritten={open_ticket.name: 2})
    by_name = {op.name: op for op in result.operations}
    assert set(by_name) == {open_ticket.name, acked.name}  # store_down's ticket is untouched (PD said nothing)
    op = by_name[open_ticket.name]
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert op.status["phase"] == "Resolved"
    assert op.status["resolution"] == "auto"
    assert op.status["resolvedAt"] == to_rfc3339(T0 + timedelta(minutes=1))
    assert op.status["resolutionMessage"] == ("invariant high_latency was disabled "
                                              "(spec.invariants.high_latency.enabled: false)")
    assert op.status["occurrences"] == 3  # the counts carried in memory are written with it (rule 3)
    assert op.labels is not None
    assert op.labels["tikvops.io/phase"] == "resolved"
    assert op.event is not None
    assert op.event.reason == "TicketResolved"
    assert "disabled" in op.event.message
    assert result.open_tickets == 1
    assert open_ticket.name not in result.unwritten


def test_rule22_a_removed_or_disabled_custom_invariant_resolves_its_tickets() -> None:
    custom = {"name": "raft_lag", "expr": "x > 1", "scope": "store", "severity": "warning"}
    mine = ticket("basic-raft-lag-s1-1", invariant="raft_lag", store="1", severity="warning")
    kept = _plan_with(configure(_spec_with(customInvariants=[custom])), [mine])
    assert kept.operations == ()  # still declared, nobody judged it this check: unknown (rule 5)
    (removed,) = _plan_with(configure(_spec_with()), [mine]).operations
    assert isinstance(removed, PatchTicket)
    assert removed.status is not None
    assert removed.status["phase"] == "Resolved"
    assert removed.status["resolutionMessage"] == "custom invariant raft_lag was removed from spec.customInvariants"
    (disabled,) = _plan_with(configure(_spec_with(customInvariants=[{**custom, "enabled": False}])), [mine]).operations
    assert isinstance(disabled, PatchTicket)
    assert disabled.status is not None
    assert disabled.status["resolutionMessage"] == ("custom invariant raft_lag was disabled "
                                                    "(spec.customInvariants[raft_lag].enabled: false)")


def test_rule22_a_disable_wins_over_hold() -> None:
    configs = configure(_spec_with(invariants={"high_latency": {"enabled": False}}))
    held = ticket(**LATENCY_TICKET, held=True)
    (op,) = _plan_with(configs, [held]).operations
    assert isinstance(op, PatchTicket)
    assert op.status is not None
    assert op.status["phase"] == "Resolved"
    assert op.spec == {"held": False}
    assert op.labels is not None
    assert op.labels["tikvops.io/held"] == "false"
    assert op.event is not None
    assert "hold" in op.event.message


def test_rule22_an_enabled_invariant_without_findings_stays_unknown_not_resolved() -> None:
    # PD or Prometheus unknown: no finding for the identity at all. That is rule 5, not a disable.
    assert _plan_with(CONFIGS, [ticket(**LATENCY_TICKET)]).operations == ()
    resolved = ticket(**LATENCY_TICKET, phase="Resolved", resolution="auto", resolved_at=T0)
    configs = configure(_spec_with(invariants={"high_latency": {"enabled": False}}))
    assert _plan_with(configs, [resolved]).operations == ()  # already resolved: nothing to do
