"""The ticket lifecycle as pure planning: findings + the cluster's tickets + now -> ticket operations.

Every rule of design.md's "Ticket lifecycle" that is decided per check lives here; the Kubernetes
adapter only carries the operations out. Rules decided when a person edits a ticket live in
`react_to_edit` at the bottom.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.invariants import InvariantConfig
from tikv_operator.model.cluster_resource import PendingViolation, TiKVClusterSpec
from tikv_operator.model.durations import format_duration, parse_duration
from tikv_operator.model.ticket_resource import OperatorTicketStatus
from tikv_operator.model.timestamps import from_rfc3339, to_rfc3339
from tikv_operator.model.vocabulary import SEVERITIES, Phase
from tikv_operator.tickets.core.ticket import (
    ANNOTATION_RECORDED,
    TicketView,
    manual_resolve,
    next_ticket_name,
    record_of,
    state_labels,
    ticket_labels,
    ticket_number,
    ticket_prefix,
)

Identity = tuple[str, str]
# Reopen times kept on a ticket (enough for any flapping.count in the window).
MAX_REOPENINGS_KEPT = 100
# Rule 11's deletions per check (each a DELETE and an Event): a bounded cost, whatever expires at once.
MAX_DELETIONS_PER_CHECK = 20


@dataclass(frozen=True)
class TicketEvent:
    """A Kubernetes Event, posted on the ticket and on its TiKVCluster."""

    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclass(frozen=True)
class CreateTicket:
    """`status` is the wire form of an OperatorTicketStatus (`merge_patch`), as it is sent."""

    name: str
    invariant: str
    store: str
    labels: Mapping[str, str]
    status: Mapping[str, Any]
    event: TicketEvent
    annotations: Mapping[str, str] = field(default_factory=lambda: {ANNOTATION_RECORDED: record_of(Phase.OPEN, False)})


@dataclass(frozen=True)
class PatchTicket:
    """Merge patches: `status` (an OperatorTicketStatus's `merge_patch`) goes to the status subresource,
    `spec`/`labels`/`annotations` to the object.

    `resource_version` is the version of the ticket the plan was made from: the patch applies only to that
    version (a 409 says someone changed the ticket meanwhile, and the next plan starts from their change)."""

    name: str
    status: Mapping[str, Any] | None = None
    spec: Mapping[str, Any] | None = None
    labels: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None
    event: TicketEvent | None = None
    resource_version: str = ""


@dataclass(frozen=True)
class DeleteTicket:
    name: str
    event: TicketEvent
    resource_version: str = ""


Operation = CreateTicket | PatchTicket | DeleteTicket


@dataclass(frozen=True)
class LifecyclePolicy:
    refresh_interval: timedelta
    resolved_retention: timedelta
    flapping_window: timedelta
    flapping_count: int

    @classmethod
    def from_spec(cls, spec: TiKVClusterSpec) -> LifecyclePolicy:
        return cls(
            refresh_interval=parse_duration(spec.tickets.refresh_interval),
            resolved_retention=parse_duration(spec.tickets.resolved_retention),
            flapping_window=parse_duration(spec.flapping.window),
            flapping_count=spec.flapping.count,
        )


@dataclass(frozen=True)
class Plan:
    operations: tuple[Operation, ...]
    pending: tuple[PendingViolation, ...]
    # Checks that saw a violation since its ticket's counters were last written (rule 3's coalescing).
    unwritten: Mapping[str, int] = field(default_factory=dict)
    open_tickets: int = 0
    # Open tickets -> the last check that saw their violation (keepFiringFor counts from there).
    last_violated: Mapping[str, datetime] = field(default_factory=dict)


def carried_pending(pending: Iterable[PendingViolation], carried_at: datetime | None, now: datetime,
                    interval: timedelta, policy: LifecyclePolicy) -> tuple[PendingViolation, ...]:
    """The grace clocks a check may go on from (rule 2), given when the last check that carried them ran.

    Rule 2 keeps a first-seen time across a restart or a leader handover, but a grace period measures how
    long a violation was watched: when no check ran for longer than the refresh interval (how old the
    status' lastCheckTime may be) plus two check intervals, nobody watched, the violation may have cleared
    and come back meanwhile, and its grace starts again. A check that judged it unknown still counts as
    watching (rule 5 keeps the clock then). Without a time (an older status), the clocks are kept.
    """
    if carried_at is not None and now - carried_at > policy.refresh_interval + 2 * interval:
        return ()
    return tuple(pending)


def plan_check(
    *,
    cluster: str,
    now: datetime,
    batch: str,
    findings: Iterable[Finding],
    configs: Mapping[str, InvariantConfig],
    tickets: Iterable[TicketView],
    pending: Iterable[PendingViolation],
    unwritten: Mapping[str, int],
    policy: LifecyclePolicy,
    last_violated: Mapping[str, datetime] | None = None,
) -> Plan:
    history = _history(cluster, tickets)
    active = {ident: _active(ts) for ident, ts in history.items() if _active(ts) is not None}
    waiting = {(p.invariant, p.store): p for p in pending}
    # An edit the edit handler did not get to record (an API blip, a restart) is recorded by the check:
    # the `recorded` annotation, not the handler's memory, says what is still to do.
    ops: list[Operation] = [op for ts in history.values() for t in ts if (op := react_to_edit(t, now)) is not None]
    still_pending: dict[Identity, PendingViolation] = {}
    still_unwritten: dict[str, int] = {}
    violated_at = dict(last_violated or {})
    seen: set[Identity] = set()

    for finding in findings:
        ident = finding.identity
        seen.add(ident)
        ticket = active.get(ident)
        if finding.verdict == "violated":
            if ticket is not None:
                violated_at[ticket.name] = now
                op, count = _refresh(ticket, finding, now, unwritten.get(ticket.name, 0), policy, batch)
                ops.extend(op)
                if count:
                    still_unwritten[ticket.name] = count
                continue
            first_seen = from_rfc3339(waiting[ident].first_seen) if ident in waiting else None
            first_seen = first_seen or now
            grace = configs[finding.invariant].grace_period if finding.grace_period is None else finding.grace_period
            if now - first_seen < grace and not _resolved_by_hand_within(history.get(ident, []), now, grace):
                still_pending[ident] = PendingViolation(invariant=finding.invariant, store=finding.store,
                                                        first_seen=to_rfc3339(first_seen))
                continue
            earlier = history.get(ident, [])
            recent = _recently_auto_resolved(earlier, now, policy)
            if recent is not None:
                ops.append(_reopen(recent, finding, now, batch, policy))
            else:
                ops.append(_create(cluster, finding, first_seen, now, batch, earlier, policy))
        elif finding.verdict == "ok":
            kept = ticket is not None and _keeps_firing(ticket, configs[finding.invariant], now, violated_at)
            if ticket is not None and not ticket.held and finding.clears and not kept:
                ops.append(_resolve(ticket, finding, now, unwritten.get(ticket.name, 0)))
            elif ticket is not None:
                ops.extend(_repair(ticket, finding, now, batch))
                if unwritten.get(ticket.name):
                    still_unwritten[ticket.name] = unwritten[ticket.name]
        else:
            # Rule 5: unknown is not resolved. The ticket and the grace clock stay as they are.
            if ident in waiting:
                still_pending[ident] = waiting[ident]
            if ticket is not None:
                ops.extend(_repair(ticket, finding, now, batch))
                if unwritten.get(ticket.name):
                    still_unwritten[ticket.name] = unwritten[ticket.name]

    # Identities nobody judged this time (PD did not list the store, PD down): unknown as well.
    for ident, entry in waiting.items():
        if ident not in seen and configs.get(ident[0]) is not None and configs[ident[0]].enabled:
            still_pending[ident] = entry
    switched_off = _switched_off(active, seen, configs, now, unwritten)
    ops.extend(switched_off)
    closed = {op.name for op in switched_off}
    for ident, ticket in active.items():
        if ident not in seen and unwritten.get(ticket.name) and ticket.name not in closed:
            still_unwritten[ticket.name] = unwritten[ticket.name]

    reopened = {op.name for op in ops if _phase_written(op) == Phase.OPEN}
    ops.extend(op for op in _expired(history, now, policy) if op.name not in reopened)
    opened = sum(isinstance(op, CreateTicket) for op in ops) + len(reopened)
    resolving = {op.name for op in ops if _phase_written(op) == Phase.RESOLVED}
    resolved = sum(_phase_written(op) == Phase.RESOLVED for op in ops)
    return Plan(
        operations=tuple(ops),
        pending=tuple(sorted(still_pending.values(), key=lambda p: (p.invariant, p.store))),
        unwritten=still_unwritten,
        open_tickets=len(active) + opened - resolved,
        last_violated={name: at for name, at in violated_at.items()
                       if name not in resolving and name in {t.name for t in active.values()}},
    )


def _phase_written(op: Operation) -> str | None:
    """The phase a patch sets; None when it leaves the phase alone (and for creates and deletes)."""
    if isinstance(op, PatchTicket) and op.status:
        phase = op.status.get("phase")  # the wire form: merge_patch spells status.phase "phase"
        return None if phase is None else str(phase)
    return None


def _keeps_firing(ticket: TicketView, config: InvariantConfig, now: datetime, violated_at: Mapping[str, datetime]
                  ) -> bool:
    """keepFiringFor: a ticket stays open that long after its violation was last seen, so a condition that
    comes back within it is the same ticket (PrometheusRule's keep_firing_for)."""
    if config.keep_firing_for <= timedelta(0):
        return False
    last = violated_at.get(ticket.name) or ticket.last_seen
    return last is not None and now - last < config.keep_firing_for


def _history(cluster: str, tickets: Iterable[TicketView]) -> dict[Identity, list[TicketView]]:
    """The cluster's tickets per identity, oldest first by their number."""
    history: dict[Identity, list[TicketView]] = {}
    for t in tickets:
        if t.cluster == cluster:
            history.setdefault(t.identity, []).append(t)
    for ident, ts in history.items():
        prefix = ticket_prefix(cluster, *ident)
        ts.sort(key=lambda t: (ticket_number(t.name, prefix) or 0, t.name))
    return history


def _active(tickets: Sequence[TicketView]) -> TicketView | None:
    # Rule 1 makes two active tickets per identity impossible through the operator; if a person made
    # one anyway, the oldest is the one that is kept up to date.
    return next((t for t in tickets if t.active), None)


def _resolved_by_hand_within(tickets: Sequence[TicketView], now: datetime, grace: timedelta) -> bool:
    """Rule 6: after a manual resolve of a condition that is still there, a new ticket opens at once;
    the violation already served its grace period."""
    if not tickets:
        return False
    latest = tickets[-1]
    return (latest.phase == Phase.RESOLVED and latest.resolution != "auto" and latest.resolved_at is not None
            and now - latest.resolved_at < grace)


def _open_status(finding: Finding, first_seen: datetime, now: datetime, occurrences: int, batch: str,
                 flapping: bool) -> OperatorTicketStatus:
    return OperatorTicketStatus(
        phase=Phase.OPEN, severity=finding.severity, message=finding.message, first_seen=to_rfc3339(first_seen),
        last_seen=to_rfc3339(now), occurrences=occurrences, batch=batch, flapping=flapping,
        evidence=dict(finding.evidence),
    )


def _openings_within(tickets: Iterable[TicketView], now: datetime, window: timedelta) -> int:
    """Rule 8 counts openings: tickets created, and tickets reopened, within the flapping window."""
    moments = [m for t in tickets for m in (t.created, *t.reopened_at) if m is not None]
    return sum(1 for m in moments if now - m <= window)


def _recently_auto_resolved(tickets: Sequence[TicketView], now: datetime,
                            policy: LifecyclePolicy) -> TicketView | None:
    """Rule 13: a violation back within the flapping window after its ticket auto-resolved reopens that
    ticket, so a flapping store or a value hovering at its threshold opens at most one ticket per window.
    A manual resolve is a person's decision: what comes after it is a new ticket (rule 6)."""
    if not tickets:
        return None
    latest = tickets[-1]
    if (latest.phase == Phase.RESOLVED and latest.resolution == "auto" and latest.resolved_at is not None
            and now - latest.resolved_at < policy.flapping_window):
        return latest
    return None


def _reopen(ticket: TicketView, finding: Finding, now: datetime, batch: str, policy: LifecyclePolicy) -> PatchTicket:
    openings = _openings_within([ticket], now, policy.flapping_window) + 1
    reopened = [*(to_rfc3339(m) for m in ticket.reopened_at), to_rfc3339(now)][-MAX_REOPENINGS_KEPT:]
    status = OperatorTicketStatus(
        phase=Phase.OPEN, severity=finding.severity, message=finding.message, last_seen=to_rfc3339(now),
        occurrences=ticket.occurrences + 1, batch=batch, flapping=openings >= policy.flapping_count,
        evidence=dict(finding.evidence), reopened_at=reopened,
        # Given as None, so the merge patch carries null: that removes the fields of the resolution.
        resolved_at=None, resolution=None, resolution_message=None,
    )
    return PatchTicket(
        ticket.name, status=status.merge_patch(),
        labels=state_labels(Phase.OPEN, False, finding.severity),
        annotations={ANNOTATION_RECORDED: record_of(Phase.OPEN, False)}, resource_version=ticket.resource_version,
        event=TicketEvent("TicketReopened", f"{ticket.name}: back within {format_duration(policy.flapping_window)} of "
                          f"resolving, reopened ({openings} openings in the window): {finding.message}", "Warning"),
    )


def _create(cluster: str, finding: Finding, first_seen: datetime, now: datetime, batch: str,
            earlier: Sequence[TicketView], policy: LifecyclePolicy) -> CreateTicket:
    recent = _openings_within(earlier, now, policy.flapping_window)
    flapping = recent + 1 >= policy.flapping_count
    name = next_ticket_name(cluster, finding.invariant, finding.store, (t.name for t in earlier))
    note = f" (flapping: {recent + 1} tickets within {format_duration(policy.flapping_window)})" if flapping else ""
    return CreateTicket(
        name=name,
        invariant=finding.invariant,
        store=finding.store,
        labels=ticket_labels(cluster, finding.invariant, finding.store, Phase.OPEN, finding.severity, held=False),
        status=_open_status(finding, first_seen, now, 1, batch, flapping).merge_patch(),
        event=TicketEvent("TicketOpened", f"{name}: {finding.message}{note}", "Warning"),
    )


def _refresh(ticket: TicketView, finding: Finding, now: datetime, unwritten: int, policy: LifecyclePolicy,
             batch: str) -> tuple[list[Operation], int]:
    """Rule 3: counters are written at most once per refresh interval; a severity change at once."""
    if ticket.phase is None:
        return _repair(ticket, finding, now, batch), 0
    occurrences = ticket.occurrences + unwritten + 1
    counters = OperatorTicketStatus(occurrences=occurrences, last_seen=to_rfc3339(now), message=finding.message)
    if _more_urgent(finding.severity, ticket.severity):
        event = TicketEvent("SeverityChanged", f"{ticket.name}: severity {ticket.severity} -> {finding.severity}",
                            "Warning")
        severity = counters.model_copy(update={"severity": finding.severity})
        return [PatchTicket(ticket.name, status=severity.merge_patch(),
                            labels=state_labels(ticket.phase, ticket.held, finding.severity), event=event,
                            resource_version=ticket.resource_version)], 0
    if ticket.last_seen is None or now - ticket.last_seen >= policy.refresh_interval:
        return [PatchTicket(ticket.name, status=counters.merge_patch(), resource_version=ticket.resource_version)], 0
    return [], unwritten + 1


def _more_urgent(severity: str, than: str | None) -> bool:
    """Severity only rises within a ticket (Disconnected -> Down escalates; the page already went out)."""
    if than not in SEVERITIES:
        return severity != than
    return severity in SEVERITIES and SEVERITIES.index(severity) < SEVERITIES.index(than)


def _resolve(ticket: TicketView, finding: Finding, now: datetime, unwritten: int) -> PatchTicket:
    status = OperatorTicketStatus(phase=Phase.RESOLVED, resolution="auto", resolved_at=to_rfc3339(now),
                                  resolution_message=finding.message)
    if unwritten:
        status = status.model_copy(update={"occurrences": ticket.occurrences + unwritten})
    if ticket.phase is None:  # never initialised: give it the fields a reader expects
        status = status.model_copy(update={
            "severity": finding.severity, "message": finding.message, "occurrences": max(1, ticket.occurrences),
            "first_seen": to_rfc3339(ticket.created or now), "last_seen": to_rfc3339(now)})
    return PatchTicket(
        ticket.name, status=status.merge_patch(), labels=state_labels(Phase.RESOLVED, False),
        annotations={ANNOTATION_RECORDED: record_of(Phase.RESOLVED, False)},
        event=TicketEvent("TicketResolved", f"{ticket.name}: condition cleared ({finding.message})"),
        resource_version=ticket.resource_version,
    )


def _switched_off(active: Mapping[Identity, TicketView], seen: Collection[Identity],
                  configs: Mapping[str, InvariantConfig], now: datetime, unwritten: Mapping[str, int]
                  ) -> list[PatchTicket]:
    """Rule 22: the active tickets of an invariant the cluster's spec no longer checks (disabled, or a custom
    invariant removed) resolve, saying why. `configs` are the settings of a spec the operator accepted (a
    refused one runs no check, rule 17), so only a real disable gets here; an invariant that is on but was
    not judged (PD or Prometheus unknown) has its config and stays as it is (rule 5)."""
    ops: list[PatchTicket] = []
    for ident, ticket in active.items():
        config = configs.get(ident[0])
        if ident in seen or (config is not None and config.enabled):
            continue
        ops.append(_resolve_switched_off(ticket, _why_off(ident[0], config), now, unwritten.get(ticket.name, 0)))
    return ops


def _why_off(invariant: str, config: InvariantConfig | None) -> str:
    if config is None:
        return f"custom invariant {invariant} was removed from spec.customInvariants"
    if config.custom is not None:
        return f"custom invariant {invariant} was disabled (spec.customInvariants[{invariant}].enabled: false)"
    return f"invariant {invariant} was disabled (spec.invariants.{invariant}.enabled: false)"


def _resolve_switched_off(ticket: TicketView, why: str, now: datetime, unwritten: int) -> PatchTicket:
    """The owner's disable is a deliberate decision about the invariant, later than any hold on its tickets:
    it wins over hold as a manual resolve does (rule 6), and the hold is cleared with it."""
    status = OperatorTicketStatus(phase=Phase.RESOLVED, resolution="auto", resolved_at=to_rfc3339(now),
                                  resolution_message=why)
    if unwritten:
        status = status.model_copy(update={"occurrences": ticket.occurrences + unwritten})
    if ticket.phase is None:  # never initialised: give it the fields a reader expects
        status = status.model_copy(update={
            "message": why, "occurrences": max(1, ticket.occurrences),
            "first_seen": to_rfc3339(ticket.created or now), "last_seen": to_rfc3339(now)})
    note = " (the hold is cleared)" if ticket.held else ""
    return PatchTicket(
        ticket.name, status=status.merge_patch(), spec={"held": False} if ticket.held else None,
        labels=state_labels(Phase.RESOLVED, False),
        annotations={ANNOTATION_RECORDED: record_of(Phase.RESOLVED, False)},
        event=TicketEvent("TicketResolved", f"{ticket.name}: {why}{note}"),
        resource_version=ticket.resource_version,
    )


def _repair(ticket: TicketView, finding: Finding, now: datetime, batch: str) -> list[Operation]:
    """A ticket created by a process that died before writing its status gets its status now, and the
    TicketOpened Event that process never posted."""
    if ticket.phase is not None:
        return []
    first_seen = ticket.created or now
    return [PatchTicket(ticket.name, status=_open_status(finding, first_seen, now, max(1, ticket.occurrences),
                                                         batch, flapping=False).merge_patch(),
                        event=TicketEvent("TicketOpened", f"{ticket.name}: {finding.message}", "Warning"),
                        resource_version=ticket.resource_version)]


def _expired(history: Mapping[Identity, Sequence[TicketView]], now: datetime,
             policy: LifecyclePolicy) -> list[Operation]:
    """Rule 11: resolved tickets go after the retention period, the oldest first and at most
    MAX_DELETIONS_PER_CHECK per check: a wave that resolved together (an outage's tickets) expires together,
    and deleting it in one check would run that check past the watchdog's budget. The rest go next check."""
    expired: list[tuple[datetime, TicketView]] = []
    for tickets in history.values():
        for t in tickets:
            resolved_at = t.resolved_at or t.last_seen or t.created
            if t.phase == Phase.RESOLVED and resolved_at is not None and now - resolved_at >= policy.resolved_retention:
                expired.append((resolved_at, t))
    expired.sort(key=lambda pair: (pair[0], pair[1].name))
    return [DeleteTicket(t.name, TicketEvent(
        "TicketDeleted", f"{t.name}: resolved {to_rfc3339(resolved_at)}, past the retention period"),
        resource_version=t.resource_version) for resolved_at, t in expired[:MAX_DELETIONS_PER_CHECK]]


def react_to_edit(ticket: TicketView, now: datetime) -> PatchTicket | None:
    """What the operator does when a person (kubectl patch, the CLI) changed a ticket's phase or hold:
    record the transition (rule 6: a manual resolve wins over hold), keep the labels in step and post
    the Event (rule 10). The `recorded` annotation says what the operator saw last; it is written last,
    so an edit whose recording failed half-way is recorded again."""
    if ticket.phase is None:
        return None  # still being created; the check that created it writes its status
    old_phase, old_held = ticket.recorded
    phase, held = ticket.phase, ticket.held
    status: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    reason, what = "", ""
    if phase == Phase.RESOLVED and old_phase != Phase.RESOLVED and ticket.resolution != "auto":
        rule = manual_resolve(ticket.resolved_at, now)
        status = rule.status.merge_patch(exclude={"phase"})  # the person wrote the phase
        if held:
            spec, held = dict(rule.spec), False
        reason, what = "TicketResolvedManually", "resolved by hand" + (" (the hold is cleared)" if spec else "")
    elif phase != old_phase and phase != Phase.RESOLVED:
        # The operator's own Open -> Diagnosed (rule 27), seen before its `recorded` annotation landed: its Event
        # was posted with it; only the record is caught up here.
        if not (ticket.operator_diagnosed and old_phase == Phase.OPEN):
            reason, what = f"Ticket{phase}", f"phase is now {phase}"
    elif held != old_held and phase != Phase.RESOLVED:
        reason = "TicketHeld" if held else "TicketUnheld"
        what = "held: it will not auto-resolve" if held else "unheld: it auto-resolves when the condition clears"
    labels = {k: v for k, v in state_labels(phase, held).items() if ticket.labels.get(k) != v}
    record = record_of(phase, held)
    annotations = {ANNOTATION_RECORDED: record} if ticket.annotations.get(ANNOTATION_RECORDED) != record else {}
    if not (status or spec or labels or reason) and ANNOTATION_RECORDED not in ticket.annotations:
        return None  # nothing happened: a ticket from before the annotation is not rewritten for it
    if not (status or spec or labels or annotations):
        return None
    event = TicketEvent(reason, f"{ticket.name}: {what}") if reason else None
    return PatchTicket(ticket.name, status=status or None, spec=spec or None, labels=labels or None,
                       annotations=annotations or None, event=event, resource_version=ticket.resource_version)


def open_tickets_written(plan: Plan, failed: Collection[str]) -> int:
    """`openTickets` counts tickets that exist: an opening that was not written does not count, and a
    resolve that was not written leaves its ticket open."""
    count = plan.open_tickets
    for op in plan.operations:
        if op.name not in failed or isinstance(op, DeleteTicket):
            continue
        phase = _phase_written(op)
        if isinstance(op, CreateTicket) or phase == Phase.OPEN:
            count -= 1
        elif phase == Phase.RESOLVED:
            count += 1
    return max(count, 0)
