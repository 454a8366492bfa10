"""What a person meets in `tikv-operator tickets`: which ticket an ID names, which tickets a listing shows,
the table and the JSON they are shown as, and the line and exit code of each command's decision.

Nothing here does I/O (cli.tickets does); the decisions themselves are the core's (tickets.core.commands).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tikv_operator.model.ticket_resource import OperatorTicketStatus
from tikv_operator.model.timestamps import from_rfc3339
from tikv_operator.model.vocabulary import phase_label
from tikv_operator.tickets.core.commands import (
    Decision,
    Effect,
    decide_ack,
    decide_hold,
    decide_resolve,
    decide_unhold,
    normalise_phase,
)
from tikv_operator.tickets.core.ticket import TicketView

# A command that changed nothing, or reported what was already true, succeeds; a refusal or an ID that
# names no (or more than one) ticket is the user's error. Exit 2 is kept for Kubernetes failures.
EXIT_OK = 0
EXIT_USER_ERROR = 1


# The status fields `tickets list --json` shows, in its order (silences and diagnosis are the operator's).
_STATUS_SHOWN = ("severity", "occurrences", "first_seen", "last_seen", "message", "resolution", "resolved_at",
                 "resolution_message", "batch", "flapping")


def _wire_name(field: str) -> str:
    return OperatorTicketStatus.model_fields[field].alias or field


@dataclass(frozen=True)
class Ticket:
    """One OperatorTicket as the commands show it: the operator's reading of it (TicketView) and its status
    as stored (OperatorTicketStatus, read leniently: a value a newer operator wrote is shown as it is)."""

    view: TicketView
    status: OperatorTicketStatus
    created: str | None = None

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Ticket:
        status = OperatorTicketStatus.read(obj.get("status"))
        created = (obj.get("metadata") or {}).get("creationTimestamp")
        return cls(TicketView.of(obj, status), status, created)

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def namespace(self) -> str:
        return self.view.namespace

    @property
    def cluster(self) -> str:
        return self.view.cluster

    @property
    def invariant(self) -> str:
        return self.view.invariant

    @property
    def store(self) -> str:
        return self.view.store

    @property
    def held(self) -> bool:
        return self.view.held

    @property
    def labels(self) -> Mapping[str, str]:
        return self.view.labels

    @property
    def phase(self) -> str:
        return self.view.current_phase

    @property
    def resolved(self) -> bool:
        return not self.view.active

    @property
    def severity(self) -> str | None:
        return self.status.severity

    @property
    def occurrences(self) -> int | None:
        return self.status.occurrences

    @property
    def first_seen(self) -> str | None:
        return self.status.first_seen

    @property
    def last_seen(self) -> str | None:
        return self.status.last_seen

    @property
    def evidence(self) -> Mapping[str, Any] | None:
        return self.status.evidence

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
            # As stored, by attribute: dumping the model would warn about a value a newer operator wrote.
            **{_wire_name(field): getattr(self.status, field) for field in _STATUS_SHOWN},
            "reopenedAt": list(self.status.reopened_at or ()),
            "evidence": self.evidence,
            "createdAt": self.created,
        }


# ---------------------------------------------------------------------------------------------- list

TABLE_COLUMNS: tuple[str, ...] = ("ID", "Status", "Invariant", "Store", "Count", "First Seen", "Held")
HELD_MARK = "HELD"
EMPTY_CELL = "-"
NO_TICKETS = "No tickets found."


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
    """A decision as the person gets it: the line to print, the exit code, and the decision's merge patches."""

    message: str
    exit_code: int = EXIT_OK
    status_patch: dict[str, Any] | None = None
    object_patch: dict[str, Any] | None = None

    @property
    def is_error(self) -> bool:
        return self.exit_code != EXIT_OK


def _worded(decision: Decision, changed: str, already: str, refused: str = "") -> Outcome:
    if decision.effect == Effect.REFUSED:
        return Outcome(refused, exit_code=EXIT_USER_ERROR)
    message = changed if decision.effect == Effect.CHANGED else already
    return Outcome(message, status_patch=decision.status_patch, object_patch=decision.object_patch)


def plan_resolve(ticket: Ticket, now: datetime) -> Outcome:
    view = ticket.view
    return _worded(decide_resolve(view, now), f"Resolved ticket {view.name}",
                   f"Ticket {view.name} is already resolved")


def plan_hold(ticket: Ticket) -> Outcome:
    view = ticket.view
    return _worded(
        decide_hold(view), f"Holding ticket {view.name} - will not auto-resolve",
        f"Ticket {view.name} is already held",
        f"Ticket {view.name} is resolved and cannot be held; a new ticket opens if the condition returns",
    )


def plan_unhold(ticket: Ticket) -> Outcome:
    view = ticket.view
    return _worded(decide_unhold(view), f"Ticket {view.name} unheld - will auto-resolve when the condition clears",
                   f"Ticket {view.name} is not held")


def plan_ack(ticket: Ticket) -> Outcome:
    view = ticket.view
    return _worded(decide_ack(view), f"Acknowledged ticket {view.name}",
                   f"Ticket {view.name} is already {phase_label(view.current_phase)}",
                   f"Ticket {view.name} is resolved and cannot be acknowledged")


# ------------------------------------------------------------------------------------------ show one ticket

# Evidence that is not a measured value (the query is shown on its own line).
_NOT_VALUES = frozenset({"query", "series", "key", "source", "url"})


def _values(evidence: Mapping[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in evidence.items()
             if k not in _NOT_VALUES and isinstance(v, str | int | float | bool)]
    return ", ".join(parts) or EMPTY_CELL


def _history(ticket: Ticket) -> list[tuple[str, str]]:
    """(time, what) from the status fields, oldest first: what the ticket itself remembers."""
    status = ticket.status
    events: list[tuple[str, str]] = []
    if status.first_seen:
        events.append((status.first_seen, "first seen"))
    if ticket.created:
        events.append((ticket.created, "opened"))
    events.extend((stamp, "reopened") for stamp in status.reopened_at or [])
    if ticket.status.cause is not None and ticket.status.cause.since:
        events.append((ticket.status.cause.since, f"explained by {ticket.status.cause.ticket}"))
    if status.diagnosis is not None and status.diagnosis.diagnosed_at:
        events.append((status.diagnosis.diagnosed_at, "diagnosis written"))
    if status.last_seen:
        events.append((status.last_seen, f"last seen ({status.occurrences or 0} checks saw it)"))
    if status.resolved_at:
        note = f": {status.resolution_message}" if status.resolution_message else ""
        events.append((status.resolved_at, f"resolved ({status.resolution or 'manual'}){note}"))
    return sorted(events, key=lambda e: (from_rfc3339(e[0]) or datetime.min.replace(tzinfo=UTC), e[1]))


def _chart(evidence: Mapping[str, Any]) -> list[str]:
    """A text chart of the violated metric when the ticket holds a series ([[unix seconds, value], ...]); said
    plainly when it does not (the operator keeps the values it judged at detection, not their history)."""
    series = evidence.get("series")
    points = [(float(p[0]), float(p[1])) for p in series if isinstance(p, list | tuple) and len(p) == 2
              and all(isinstance(x, int | float) for x in p)] if isinstance(series, list) else []
    if len(points) < 2:
        query = evidence.get("query")
        where = f"; its query, for Prometheus' graph: {query}" if isinstance(query, str) and query else ""
        return [f"no series available: the ticket keeps the values judged at detection, not their history{where}"]
    bars = "▁▂▃▄▅▆▇█"
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = high - low or 1.0
    line = "".join(bars[round((v - low) / span * (len(bars) - 1))] for _, v in points)
    start = datetime.fromtimestamp(points[0][0], UTC).strftime("%H:%M:%S")
    end = datetime.fromtimestamp(points[-1][0], UTC).strftime("%H:%M:%S")
    return [f"{line}  {low:g} .. {high:g}  ({start} to {end} UTC)"]


def show_lines(ticket: Ticket, cause: Ticket | None = None) -> list[str]:
    """`tikv-operator tickets show`: one ticket with its cause or diagnosis, its history and its evidence.
    `cause`: the ticket its status.cause names, as read now (None: none named, or it is gone)."""
    view, status = ticket.view, ticket.status
    where = f"store {view.store}" if view.store else "cluster-wide"
    lines = [f"Ticket:     {view.name}",
             f"Invariant:  {view.invariant} ({where}) of TiKVCluster {view.cluster}",
             f"Phase:      {view.current_phase}, severity {status.severity or EMPTY_CELL}"
             + (", held" if view.held else "") + (", flapping" if status.flapping else ""),
             f"Message:    {status.message or EMPTY_CELL}"]
    if status.cause is not None:
        state = ("gone" if cause is None else "open" if cause.view.active
                 else f"resolved {format_time(cause.status.resolved_at)}: this ticket pages on its own")
        lines.append(f"Cause:      {status.cause.ticket} ({status.cause.invariant}"
                     + (f", store {status.cause.store}" if status.cause.store else "")
                     + f"; rule {status.cause.rule}), {state}")
    if status.diagnosis is not None:
        diagnosis = status.diagnosis
        lines.append(f"Diagnosis:  {diagnosis.summary}")
        for explained in diagnosis.explains:
            lines.append(f"  explains  {explained.ticket} (rule {explained.rule})")
        if diagnosis.pd:
            lines.append(f"  PD        {_values(diagnosis.pd)}")
        if diagnosis.kubernetes:
            lines.append(f"  Kubernetes {_values(diagnosis.kubernetes)}")
        if diagnosis.runbook:
            lines.append(f"  runbook   {diagnosis.runbook}")
    elif view.invariant:
        lines.append(f"Runbook:    docs/runbooks/{view.invariant}.md")
    lines.append("History:")
    lines.extend(f"  {format_time(stamp)}  {what}" for stamp, what in _history(ticket))
    evidence = status.evidence or {}
    lines.append(f"Evidence:   {_values(evidence)}")
    lines.append(f"Chart:      {_chart(evidence)[0]}")
    lines.append(f"Events:     kubectl describe operatorticket {view.name}")
    return lines
