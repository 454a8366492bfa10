"""The `tikv-operator tickets` commands without I/O: what a ticket looks like to a person, which ticket an ID
names, what each command decides, the words it prints and the merge patches it sends.

The shell (tickets_cli + adapters.ticket_api) only fetches objects, sends the patches and prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tikv_operator.core.tickets import TicketView, manual_resolve, state_labels
from tikv_operator.core.timestamps import from_rfc3339
from tikv_operator.core.vocabulary import PHASES, Phase

# A command that changed nothing, or reported what was already true, succeeds; a refusal or an ID that
# names no (or more than one) ticket is the user's error. Exit 2 is kept for Kubernetes failures.
EXIT_OK = 0
EXIT_USER_ERROR = 1


@dataclass(frozen=True)
class Ticket:
    """The fields of an OperatorTicket object that the commands read, taken from its JSON form."""

    name: str
    namespace: str
    cluster: str
    invariant: str
    store: str
    held: bool
    phase: str
    severity: str | None
    occurrences: int | None
    first_seen: str | None
    last_seen: str | None
    message: str | None
    resolution: str | None
    resolved_at: str | None
    batch: str | None
    flapping: bool | None
    evidence: Mapping[str, Any] | None
    created: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    resolution_message: str | None = None
    reopened_at: tuple[str, ...] = ()

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Ticket:
        # What the ticket is and where it stands is read by the one parser the operator uses too
        # (TicketView); the rest is shown as stored, not through the pydantic models, so a listing still
        # shows a ticket that a newer operator wrote with a value this version does not know.
        view = TicketView.from_resource(obj)
        metadata = obj.get("metadata") or {}
        status = obj.get("status") or {}
        return cls(
            name=view.name,
            namespace=view.namespace,
            cluster=view.cluster,
            invariant=view.invariant,
            store=view.store,
            held=view.held,
            # The operator creates a ticket and then writes its status (the API server ignores status on
            # create), so a ticket without a phase yet is an open one.
            phase=view.phase or "Open",
            severity=status.get("severity"),
            occurrences=status.get("occurrences"),
            first_seen=status.get("firstSeen"),
            last_seen=status.get("lastSeen"),
            message=status.get("message"),
            resolution=status.get("resolution"),
            resolved_at=status.get("resolvedAt"),
            batch=status.get("batch"),
            flapping=status.get("flapping"),
            evidence=status.get("evidence"),
            created=metadata.get("creationTimestamp"),
            labels=dict(view.labels),
            resolution_message=status.get("resolutionMessage"),
            reopened_at=tuple(status.get("reopenedAt") or ()),
        )

    @property
    def resolved(self) -> bool:
        return self.phase == Phase.RESOLVED

    def to_json(self) -> dict[str, Any]:
        """The `tickets list --json` form of one ticket (camelCase, as `kubectl get -o json` spells fields)."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "cluster": self.cluster,
            "invariant": self.invariant,
            "store": self.store,
            "held": self.held,
            "phase": self.phase,
            "severity": self.severity,
            "occurrences": self.occurrences,
            "firstSeen": self.first_seen,
            "lastSeen": self.last_seen,
            "message": self.message,
            "resolution": self.resolution,
            "resolvedAt": self.resolved_at,
            "resolutionMessage": self.resolution_message,
            "batch": self.batch,
            "flapping": self.flapping,
            "reopenedAt": list(self.reopened_at),
            "evidence": self.evidence,
            "createdAt": self.created,
        }


# ---------------------------------------------------------------------------------------------- list

TABLE_COLUMNS: tuple[str, ...] = ("ID", "Status", "Invariant", "Store", "Count", "First Seen", "Held")
HELD_MARK = "HELD"
EMPTY_CELL = "-"
NO_TICKETS = "No tickets found."


def normalise_phase(text: str) -> str:
    """`open`, `OPEN` or `Open` -> "Open"; anything else is refused with the accepted values."""
    for phase in PHASES:
        if phase.lower() == text.strip().lower():
            return phase
    raise ValueError(f"unknown status {text!r}; use one of: {', '.join(p.lower() for p in PHASES)}")


def select_tickets(
    objects: Iterable[Mapping[str, Any]], phase: str | None = None, cluster: str | None = None
) -> list[Ticket]:
    """The tickets to show, oldest first within each namespace.

    Filters read spec and status, not the labels: the labels are copies kept in step by the operator,
    and they lag (or are missing) while no operator runs.
    """
    wanted = normalise_phase(phase) if phase is not None else None
    tickets = [Ticket.from_object(obj) for obj in objects]
    chosen = [
        t for t in tickets
        if (wanted is None or t.phase == wanted) and (cluster is None or t.cluster == cluster)
    ]
    return sorted(chosen, key=lambda t: (t.namespace, t.first_seen or t.created or "", t.name))


def table_columns(all_namespaces: bool) -> tuple[str, ...]:
    return ("Namespace", *TABLE_COLUMNS) if all_namespaces else TABLE_COLUMNS


def table_row(ticket: Ticket, all_namespaces: bool) -> tuple[str, ...]:
    """One table row as plain text; the Held cell is HELD_MARK for a held ticket (the shell colours it)."""
    cells = (
        ticket.name,
        ticket.phase,
        ticket.invariant,
        ticket.store or EMPTY_CELL,  # empty store: a cluster-wide invariant
        EMPTY_CELL if ticket.occurrences is None else str(ticket.occurrences),
        format_time(ticket.first_seen),
        HELD_MARK if ticket.held else EMPTY_CELL,
    )
    return (ticket.namespace, *cells) if all_namespaces else cells


def format_time(stamp: str | None) -> str:
    """"2026-11-25T03:55:00Z" -> "2026-11-25 03:55:00" (UTC, as stored); unreadable values are shown as is."""
    if not stamp:
        return EMPTY_CELL
    moment = from_rfc3339(stamp)
    return stamp if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------------------------------ find by ID


class TicketLookupError(Exception):
    """The ID names no ticket, or more than one; the message is what the person reads."""


# A DNS subdomain, which is what Kubernetes accepts as an object name.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def is_ticket_name(text: str) -> bool:
    """Whether `text` can be an object name, hence be looked up directly (a bad one would change the URL)."""
    return len(text) <= 253 and bool(_NAME.fullmatch(text))


def not_found_message(ticket_id: str) -> str:
    return f"Ticket {ticket_id} not found"


def resolve_id(ticket_id: str, names: Iterable[str]) -> str:
    """The ticket name that `ticket_id` stands for: the name itself, or the only name it is a prefix of.

    An exact name always wins, so "c-store-down-s1-1" still names its ticket when "c-store-down-s1-10" exists.
    """
    known = set(names)
    if ticket_id in known:
        return ticket_id
    candidates = sorted(n for n in known if ticket_id and n.startswith(ticket_id))
    if not candidates:
        raise TicketLookupError(not_found_message(ticket_id))
    if len(candidates) > 1:
        raise TicketLookupError(
            f"Ticket ID {ticket_id} is ambiguous; it matches {len(candidates)} tickets: {', '.join(candidates)}"
        )
    return candidates[0]


# ------------------------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Outcome:
    """What one command decided: the line to print, the exit code and the merge patches to send.

    `status_patch` goes to the status subresource, `object_patch` (metadata and spec) to the object;
    neither carries a resourceVersion, so they apply to whatever the object is by then, like `kubectl patch`.
    """

    message: str
    exit_code: int = EXIT_OK
    status_patch: dict[str, Any] | None = None
    object_patch: dict[str, Any] | None = None

    @property
    def is_error(self) -> bool:
        return self.exit_code != EXIT_OK


def _labels_patch(phase: str, held: bool) -> dict[str, Any]:
    return {"metadata": {"labels": state_labels(phase, held)}}


def plan_resolve(ticket: Ticket, now: datetime) -> Outcome:
    if ticket.resolved:
        return Outcome(f"Ticket {ticket.name} is already resolved")
    # The status is patched first: it is what counts, and a running operator brings the labels and
    # `held` in step with it even if the second patch never lands.
    rule = manual_resolve(None, now)
    return Outcome(
        f"Resolved ticket {ticket.name}",
        status_patch={"status": rule.status.merge_patch()},
        object_patch={"metadata": {"labels": dict(rule.labels)}, "spec": dict(rule.spec)},
    )


def plan_hold(ticket: Ticket) -> Outcome:
    if ticket.resolved:
        return Outcome(
            f"Ticket {ticket.name} is resolved and cannot be held; a new ticket opens if the condition returns",
            exit_code=EXIT_USER_ERROR,
        )
    if ticket.held:
        return Outcome(f"Ticket {ticket.name} is already held")
    return Outcome(
        f"Holding ticket {ticket.name} - will not auto-resolve",
        object_patch={**_labels_patch(ticket.phase, True), "spec": {"held": True}},
    )


def plan_unhold(ticket: Ticket) -> Outcome:
    if not ticket.held:
        return Outcome(f"Ticket {ticket.name} is not held")
    return Outcome(
        f"Ticket {ticket.name} unheld - will auto-resolve when the condition clears",
        object_patch={**_labels_patch(ticket.phase, False), "spec": {"held": False}},
    )


def plan_ack(ticket: Ticket) -> Outcome:
    if ticket.resolved:
        return Outcome(f"Ticket {ticket.name} is resolved and cannot be acknowledged", exit_code=EXIT_USER_ERROR)
    if ticket.phase != "Open":
        # Acknowledged, or already further along (Diagnosed): acknowledging must not move it back.
        return Outcome(f"Ticket {ticket.name} is already {ticket.phase.lower()}")
    return Outcome(
        f"Acknowledged ticket {ticket.name}",
        status_patch={"status": {"phase": "Acknowledged"}},
        object_patch=_labels_patch("Acknowledged", ticket.held),
    )
