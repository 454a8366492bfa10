"""One ticket model: the status is written and read through OperatorTicketStatus, phases are one enum, and
the `tickets` commands' decisions are core rules without words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tikv_operator.model.ticket_resource import OperatorTicketStatus
from tikv_operator.model.vocabulary import PHASES, Phase, phase_label, phase_of_label
from tikv_operator.tickets.core.commands import Effect, decide_ack, decide_hold, decide_resolve, decide_unhold
from tikv_operator.tickets.core.ticket import TicketView, manual_resolve

NOW = datetime(2026, 11, 25, 3, 55, 7, tzinfo=UTC)


def test_phases_are_the_enum_values_and_labels_their_lower_case() -> None:
    assert PHASES == ("Open", "Acknowledged", "Diagnosed", "Resolved")
    assert [phase_label(p) for p in Phase] == ["open", "acknowledged", "diagnosed", "resolved"]
    assert phase_of_label(" RESOLVED ") is Phase.RESOLVED
    assert phase_of_label("closed") is None


def test_a_merge_patch_carries_the_fields_given_and_null_for_those_given_none() -> None:
    status = OperatorTicketStatus(phase=Phase.OPEN, last_seen="2026-11-25T03:55:07Z", resolved_at=None)
    patch = status.merge_patch()
    assert patch == {"phase": "Open", "lastSeen": "2026-11-25T03:55:07Z", "resolvedAt": None}
    assert type(patch["phase"]) is str  # plain JSON, whatever serialises it
    assert status.merge_patch(exclude={"phase"}) == {"lastSeen": "2026-11-25T03:55:07Z", "resolvedAt": None}


def test_free_form_evidence_is_sent_as_built_with_non_finite_numbers_spelled() -> None:
    # The API server refuses NaN and Infinity in JSON: they are sent as Prometheus spells them.
    evidence = {"value": float("inf"), "queries": ("up",), "count": 3, "nested": {"v": [float("nan"), 0.5]}}
    assert OperatorTicketStatus(evidence=evidence).merge_patch()["evidence"] == {
        "value": "+Inf", "queries": ["up"], "count": 3, "nested": {"v": ["NaN", 0.5]}}


def test_reading_keeps_a_value_this_version_does_not_know() -> None:
    status = OperatorTicketStatus.read({"phase": "Escalated", "severity": "critical", "occurrences": 3,
                                        "futureField": 1})
    assert (status.phase, status.severity, status.occurrences) == ("Escalated", "critical", 3)
    assert OperatorTicketStatus.read(None) == OperatorTicketStatus()


def view(phase: str | None = "Open", held: bool = False) -> TicketView:
    return TicketView(name="t-1", cluster="c", invariant="store_down", store="1", phase=phase, held=held)


def test_a_ticket_without_status_is_open_to_a_person() -> None:
    assert view(None).current_phase == Phase.OPEN
    assert view("Diagnosed").current_phase == Phase.DIAGNOSED


def test_the_cli_resolves_by_the_operators_manual_resolve_rule() -> None:
    decision = decide_resolve(view(held=True), NOW)
    rule = manual_resolve(None, NOW)
    assert decision.effect is Effect.CHANGED
    assert decision.status_patch == {"status": rule.status.merge_patch()}
    assert decision.object_patch == {"metadata": {"labels": dict(rule.labels)}, "spec": dict(rule.spec)}


@pytest.mark.parametrize(("decide", "ticket", "effect"), [
    (lambda t: decide_resolve(t, NOW), view("Resolved"), Effect.ALREADY),
    (decide_hold, view("Resolved"), Effect.REFUSED),
    (decide_hold, view(held=True), Effect.ALREADY),
    (decide_hold, view(), Effect.CHANGED),
    (decide_unhold, view(), Effect.ALREADY),
    (decide_unhold, view("Resolved", held=True), Effect.CHANGED),
    (decide_ack, view("Resolved"), Effect.REFUSED),
    (decide_ack, view("Diagnosed"), Effect.ALREADY),
    (decide_ack, view(None), Effect.CHANGED),
])
def test_each_command_changes_finds_it_already_so_or_is_refused(decide, ticket, effect) -> None:  # type: ignore[no-untyped-def]
    decision = decide(ticket)
    assert decision.effect is effect
    assert (decision.status_patch is None and decision.object_patch is None) == (effect is not Effect.CHANGED)
