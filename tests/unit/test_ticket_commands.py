"""The pure half of `tikv-operator tickets`: reading tickets, filters, table rows, JSON, IDs, decisions, patches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tikv_operator.cli.tickets import StatusChoice
from tikv_operator.cli.tickets_output import (
    EXIT_OK,
    EXIT_USER_ERROR,
    NO_TICKETS,
    TABLE_COLUMNS,
    Ticket,
    TicketLookupError,
    format_time,
    is_ticket_name,
    plan_ack,
    plan_hold,
    plan_resolve,
    plan_unhold,
    resolve_id,
    select_tickets,
    table_columns,
    table_row,
)
from tikv_operator.model.vocabulary import PHASES
from tikv_operator.tickets.core.commands import normalise_phase

NOW = datetime(2026, 11, 25, 3, 55, 7, 123456, tzinfo=UTC)


def ticket_object(
    name: str = "prod-store-down-s1-1",
    *,
    namespace: str = "tidb",
    cluster: str = "prod",
    invariant: str = "store_down",
    store: str | None = "1",
    held: bool | None = None,
    status: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    created: str = "2026-11-25T03:00:00Z",
) -> dict[str, Any]:
    """An OperatorTicket as the API server returns it (status omitted when None)."""
    spec: dict[str, Any] = {"cluster": cluster, "invariant": invariant}
    if store is not None:
        spec["store"] = store
    if held is not None:
        spec["held"] = held
    obj: dict[str, Any] = {
        "apiVersion": "tikvops.io/v1alpha1",
        "kind": "OperatorTicket",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created, "labels": labels or {}},
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


FULL_STATUS = {
    "phase": "Open",
    "severity": "critical",
    "message": "store 1 is Disconnected",
    "firstSeen": "2026-11-25T03:01:02Z",
    "lastSeen": "2026-11-25T03:50:00Z",
    "occurrences": 42,
    "batch": "b-7",
    "flapping": False,
    "evidence": {"state_name": "Disconnected"},
}


def ticket(**kwargs: Any) -> Ticket:
    return Ticket.from_object(ticket_object(**kwargs))


# ------------------------------------------------------------------------------------------ reading


def test_a_ticket_is_read_from_its_json_form() -> None:
    read = ticket(held=True, status=FULL_STATUS, labels={"tikvops.io/phase": "open"})

    assert (read.name, read.namespace, read.cluster, read.invariant, read.store) == (
        "prod-store-down-s1-1", "tidb", "prod", "store_down", "1")
    assert read.held is True
    assert (read.phase, read.severity, read.occurrences) == ("Open", "critical", 42)
    assert (read.first_seen, read.last_seen) == ("2026-11-25T03:01:02Z", "2026-11-25T03:50:00Z")
    assert read.evidence == {"state_name": "Disconnected"}
    assert read.labels == {"tikvops.io/phase": "open"}
    assert not read.resolved


def test_a_ticket_without_status_is_open_and_a_missing_held_or_store_are_the_defaults() -> None:
    read = ticket(invariant="pd_unreachable", store=None, status=None)

    assert read.phase == "Open"
    assert read.held is False
    assert read.store == ""
    assert read.occurrences is None
    assert read.first_seen is None


def test_json_form_has_every_field_under_its_wire_name_and_round_trips() -> None:
    read = ticket(held=True, status={**FULL_STATUS, "phase": "Resolved", "resolution": "auto",
                                     "resolvedAt": "2026-11-25T04:00:00Z", "resolutionMessage": "store 1 is Up",
                                     "reopenedAt": ["2026-11-25T03:30:00Z"]})

    shown = json.loads(json.dumps(read.to_json()))

    assert shown == {
        "name": "prod-store-down-s1-1", "namespace": "tidb", "cluster": "prod", "invariant": "store_down",
        "store": "1", "held": True, "phase": "Resolved", "severity": "critical", "occurrences": 42,
        "firstSeen": "2026-11-25T03:01:02Z", "lastSeen": "2026-11-25T03:50:00Z",
        "message": "store 1 is Disconnected", "resolution": "auto", "resolvedAt": "2026-11-25T04:00:00Z",
        "resolutionMessage": "store 1 is Up", "batch": "b-7", "flapping": False,
        "reopenedAt": ["2026-11-25T03:30:00Z"], "evidence": {"state_name": "Disconnected"},
        "createdAt": "2026-11-25T03:00:00Z",
    }


# ------------------------------------------------------------------------------------------ filters


@pytest.mark.parametrize(("given", "phase"), [("open", "Open"), ("OPEN", "Open"), ("Acknowledged", "Acknowledged"),
                                               (" diagnosed ", "Diagnosed"), ("resolved", "Resolved")])
def test_status_names_are_case_insensitive(given: str, phase: str) -> None:
    assert normalise_phase(given) == phase


def test_the_status_option_offers_every_phase() -> None:
    assert [choice.value for choice in StatusChoice] == [phase.lower() for phase in PHASES]


def test_an_unknown_status_lists_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="open, acknowledged, diagnosed, resolved"):
        normalise_phase("closed")


def test_status_filter_reads_the_phase_not_the_lagging_label() -> None:
    # Resolved by a kubectl status patch while no operator ran: the label still says open.
    stale = ticket_object("a-1", status={"phase": "Resolved"}, labels={"tikvops.io/phase": "open"})
    fresh = ticket_object("b-1", status={"phase": "Open"}, labels={"tikvops.io/phase": "resolved"})

    assert [t.name for t in select_tickets([stale, fresh], phase="open")] == ["b-1"]
    assert [t.name for t in select_tickets([stale, fresh], phase="Resolved")] == ["a-1"]


def test_a_ticket_without_status_counts_as_open() -> None:
    assert [t.name for t in select_tickets([ticket_object("new-1")], phase="open")] == ["new-1"]
    assert select_tickets([ticket_object("new-1")], phase="acknowledged") == []


def test_cluster_filter_reads_the_spec() -> None:
    objects = [ticket_object("prod-1", cluster="prod"), ticket_object("stage-1", cluster="stage")]

    assert [t.name for t in select_tickets(objects, cluster="stage")] == ["stage-1"]
    assert select_tickets(objects, cluster="nope") == []


def test_filters_combine() -> None:
    objects = [
        ticket_object("prod-1", cluster="prod", status={"phase": "Open"}),
        ticket_object("prod-2", cluster="prod", status={"phase": "Resolved"}),
        ticket_object("stage-1", cluster="stage", status={"phase": "Open"}),
    ]

    assert [t.name for t in select_tickets(objects, phase="open", cluster="prod")] == ["prod-1"]


def test_tickets_are_ordered_by_namespace_then_first_seen_then_name() -> None:
    objects = [
        ticket_object("late", namespace="a", status={"firstSeen": "2026-11-25T05:00:00Z"}),
        ticket_object("other-ns", namespace="b", status={"firstSeen": "2026-11-25T01:00:00Z"}),
        ticket_object("early", namespace="a", status={"firstSeen": "2026-11-25T02:00:00Z"}),
        # Not written by the operator yet: its creation time stands in for firstSeen.
        ticket_object("no-status", namespace="a", created="2026-11-25T03:00:00Z"),
    ]

    assert [t.name for t in select_tickets(objects)] == ["early", "no-status", "late", "other-ns"]


# -------------------------------------------------------------------------------------------- table


def test_table_has_the_original_columns_and_namespace_first_for_all_namespaces() -> None:
    assert TABLE_COLUMNS == ("ID", "Status", "Invariant", "Store", "Count", "First Seen", "Held")
    assert table_columns(all_namespaces=False) == TABLE_COLUMNS
    assert table_columns(all_namespaces=True) == ("Namespace", *TABLE_COLUMNS)
    assert NO_TICKETS == "No tickets found."


def test_table_row_of_a_held_store_ticket() -> None:
    row = table_row(ticket(held=True, status=FULL_STATUS), all_namespaces=False)

    assert row == ("prod-store-down-s1-1", "Open", "store_down", "1", "42", "2026-11-25 03:01:02", "HELD")


def test_table_row_of_a_fresh_cluster_wide_ticket_in_all_namespaces() -> None:
    row = table_row(ticket(invariant="pd_unreachable", store="", status=None), all_namespaces=True)

    assert row == ("tidb", "prod-store-down-s1-1", "Open", "pd_unreachable", "-", "-", "-", "-")
    assert len(row) == len(table_columns(all_namespaces=True))


@pytest.mark.parametrize(("stamp", "shown"), [
    ("2026-11-25T03:55:00Z", "2026-11-25 03:55:00"),
    ("2026-11-25T05:55:00+02:00", "2026-11-25 03:55:00"),
    ("2026-11-25T03:55:00.123456Z", "2026-11-25 03:55:00"),
    ("yesterday", "yesterday"),
    (None, "-"),
    ("", "-"),
])
def test_times_are_shown_in_utc(stamp: str | None, shown: str) -> None:
    assert format_time(stamp) == shown


# ---------------------------------------------------------------------------------------------- IDs

NAMES = ["prod-store-down-s1-1", "prod-store-down-s1-10", "prod-low-disk-space-s2-1", "stage-pd-unreachable-1"]


def test_an_exact_name_wins_even_when_it_prefixes_another() -> None:
    assert resolve_id("prod-store-down-s1-1", NAMES) == "prod-store-down-s1-1"


def test_a_unique_prefix_names_its_ticket() -> None:
    assert resolve_id("prod-low", NAMES) == "prod-low-disk-space-s2-1"
    assert resolve_id("s", NAMES) == "stage-pd-unreachable-1"


def test_an_ambiguous_prefix_lists_the_candidates() -> None:
    with pytest.raises(TicketLookupError) as caught:
        resolve_id("prod-store", NAMES)

    assert str(caught.value) == (
        "Ticket ID prod-store is ambiguous; it matches 2 tickets: prod-store-down-s1-1, prod-store-down-s1-10"
    )


@pytest.mark.parametrize("ticket_id", ["nope", "store-down", "", "prod-store-down-s1-100"])
def test_an_id_that_names_nothing_is_not_found(ticket_id: str) -> None:
    with pytest.raises(TicketLookupError, match=f"^Ticket {ticket_id} not found$"):
        resolve_id(ticket_id, NAMES)


@pytest.mark.parametrize(("text", "valid"), [
    ("prod-store-down-s1-1", True), ("a", True), ("a.b-c", True),
    ("", False), ("Prod", False), ("a/b", False), ("-a", False), ("a-", False), ("a\n", False), ("x" * 254, False),
])
def test_only_object_names_are_fetched_directly(text: str, valid: bool) -> None:
    assert is_ticket_name(text) is valid


# ----------------------------------------------------------------------------------------- commands


def test_resolve_patches_the_status_then_releases_the_hold_and_updates_the_labels() -> None:
    outcome = plan_resolve(ticket(held=True, status=FULL_STATUS), NOW)

    assert outcome.message == "Resolved ticket prod-store-down-s1-1"
    assert outcome.exit_code == EXIT_OK
    assert outcome.status_patch == {
        "status": {"phase": "Resolved", "resolution": "manual", "resolvedAt": "2026-11-25T03:55:07Z"}
    }
    assert outcome.object_patch == {
        "metadata": {"labels": {"tikvops.io/phase": "resolved", "tikvops.io/held": "false"}},
        "spec": {"held": False},
    }
    # Merge patches apply to whatever version is current, as `kubectl patch` does.
    assert "resourceVersion" not in json.dumps([outcome.status_patch, outcome.object_patch])


def test_resolve_of_a_ticket_the_operator_has_not_written_yet() -> None:
    outcome = plan_resolve(ticket(status=None), NOW)

    assert outcome.message == "Resolved ticket prod-store-down-s1-1"
    assert outcome.status_patch is not None


def test_resolve_of_a_resolved_ticket_changes_nothing() -> None:
    outcome = plan_resolve(ticket(status={"phase": "Resolved", "resolution": "auto"}), NOW)

    assert outcome.message == "Ticket prod-store-down-s1-1 is already resolved"
    assert outcome.exit_code == EXIT_OK
    assert outcome.status_patch is None
    assert outcome.object_patch is None


def test_resolved_at_is_utc_whole_seconds_with_z() -> None:
    elsewhere = datetime(2026, 11, 25, 5, 55, 7, 999999, tzinfo=timezone(timedelta(hours=2)))

    assert plan_resolve(ticket(), elsewhere).status_patch == {
        "status": {"phase": "Resolved", "resolution": "manual", "resolvedAt": "2026-11-25T03:55:07Z"}}


def test_hold_sets_spec_and_label() -> None:
    outcome = plan_hold(ticket(status=FULL_STATUS))

    assert outcome.message == "Holding ticket prod-store-down-s1-1 - will not auto-resolve"
    assert outcome.exit_code == EXIT_OK
    assert outcome.status_patch is None
    assert outcome.object_patch == {"metadata": {"labels": {"tikvops.io/phase": "open", "tikvops.io/held": "true"}},
                                    "spec": {"held": True}}


def test_hold_of_a_held_ticket_changes_nothing() -> None:
    outcome = plan_hold(ticket(held=True, status=FULL_STATUS))

    assert outcome.message == "Ticket prod-store-down-s1-1 is already held"
    assert (outcome.exit_code, outcome.status_patch, outcome.object_patch) == (EXIT_OK, None, None)


def test_hold_of_a_resolved_ticket_is_refused() -> None:
    outcome = plan_hold(ticket(status={"phase": "Resolved"}))

    assert outcome.is_error
    assert outcome.exit_code == EXIT_USER_ERROR
    assert outcome.message.startswith("Ticket prod-store-down-s1-1 is resolved and cannot be held")
    assert (outcome.status_patch, outcome.object_patch) == (None, None)


def test_unhold_clears_spec_and_label() -> None:
    outcome = plan_unhold(ticket(held=True, status=FULL_STATUS))

    assert outcome.message == "Ticket prod-store-down-s1-1 unheld - will auto-resolve when the condition clears"
    assert outcome.exit_code == EXIT_OK
    assert outcome.status_patch is None
    assert outcome.object_patch == {"metadata": {"labels": {"tikvops.io/phase": "open", "tikvops.io/held": "false"}},
                                    "spec": {"held": False}}


def test_unhold_of_a_ticket_that_is_not_held_changes_nothing() -> None:
    outcome = plan_unhold(ticket(held=False, status=FULL_STATUS))

    assert outcome.message == "Ticket prod-store-down-s1-1 is not held"
    assert (outcome.exit_code, outcome.status_patch, outcome.object_patch) == (EXIT_OK, None, None)


@pytest.mark.parametrize("status", [FULL_STATUS, None], ids=["open", "no-status-yet"])
def test_ack_moves_an_open_ticket_to_acknowledged(status: dict[str, Any] | None) -> None:
    outcome = plan_ack(ticket(status=status))

    assert outcome.message == "Acknowledged ticket prod-store-down-s1-1"
    assert outcome.exit_code == EXIT_OK
    assert outcome.status_patch == {"status": {"phase": "Acknowledged"}}
    assert outcome.object_patch == {
        "metadata": {"labels": {"tikvops.io/phase": "acknowledged", "tikvops.io/held": "false"}}}


@pytest.mark.parametrize(("phase", "word"), [("Acknowledged", "acknowledged"), ("Diagnosed", "diagnosed")])
def test_ack_never_moves_a_ticket_back(phase: str, word: str) -> None:
    outcome = plan_ack(ticket(status={"phase": phase}))

    assert outcome.message == f"Ticket prod-store-down-s1-1 is already {word}"
    assert (outcome.exit_code, outcome.status_patch, outcome.object_patch) == (EXIT_OK, None, None)


def test_ack_of_a_resolved_ticket_is_refused() -> None:
    outcome = plan_ack(ticket(status={"phase": "Resolved"}))

    assert outcome.exit_code == EXIT_USER_ERROR
    assert outcome.message == "Ticket prod-store-down-s1-1 is resolved and cannot be acknowledged"
    assert (outcome.status_patch, outcome.object_patch) == (None, None)
