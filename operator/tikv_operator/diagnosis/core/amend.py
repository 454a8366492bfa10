"""The lifecycle plan of a check, amended with what correlation finds (rules 26 and 27): pure.

After `tickets.core.lifecycle.plan_check` has decided what opens, refreshes and resolves, this step reads the
tickets as they will be (the ones opening included) and

- names each symptom's cause in its `status.cause` (rule 26), in the same write that opens it, so its first
  delivery already knows it is explained;
- holds a symptom's opening back while the violation that would explain it is still in its grace period
  (the symptom's grace clock keeps running, and it opens at the next check if the cause does not);
- moves an Open cause that explains tickets to Diagnosed with its `status.diagnosis` (rule 27), and keeps that
  diagnosis up to date;
- orders the writes so a cause is created before the symptoms that name it.

A cause opened by this very check gets its diagnosis at the next one (its status is written with the opening).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from tikv_operator.checks.core.findings import Finding
from tikv_operator.diagnosis.core.causes import CAUSES
from tikv_operator.diagnosis.core.correlate import Explained, correlate, diagnose, explain, explains, same_diagnosis
from tikv_operator.model.cluster_resource import PendingViolation
from tikv_operator.model.ticket_resource import OperatorTicketStatus
from tikv_operator.model.timestamps import from_rfc3339
from tikv_operator.model.vocabulary import Phase
from tikv_operator.tickets.core.lifecycle import CreateTicket, DeleteTicket, Operation, PatchTicket, Plan, TicketEvent
from tikv_operator.tickets.core.ticket import ANNOTATION_RECORDED, TicketView, record_of, state_labels


def _after(tickets: Iterable[TicketView], operations: Iterable[Operation]) -> dict[str, TicketView]:
    """The cluster's active tickets as they will be once the plan is written."""
    every = {t.name: t for t in tickets}
    after = {name: t for name, t in every.items() if t.active}
    for op in operations:
        if isinstance(op, CreateTicket):
            status = op.status
            after[op.name] = TicketView(
                name=op.name, cluster="", invariant=op.invariant, store=op.store, phase=Phase.OPEN,
                severity=status.get("severity"), first_seen=from_rfc3339(status.get("firstSeen")),
                message=str(status.get("message") or ""), evidence=dict(status.get("evidence") or {}))
        elif isinstance(op, DeleteTicket) or (op.status and op.status.get("phase") == Phase.RESOLVED):
            after.pop(op.name, None)
        elif op.status and op.status.get("phase") == Phase.OPEN and op.name in every:
            old = every[op.name]  # reopened (rule 13)
            after[op.name] = replace(old, phase=Phase.OPEN, evidence=dict(op.status.get("evidence") or old.evidence),
                                     message=str(op.status.get("message") or old.message))
    return after


def _pending_causes(plan: Plan, findings: Iterable[Finding]) -> list[TicketView]:
    """Cause violations still in their grace period, as tickets-to-be (no name)."""
    violated = {f.identity for f in findings if f.verdict == "violated" and f.invariant in CAUSES}
    return [TicketView(name="", cluster="", invariant=p.invariant, store=p.store, phase=Phase.OPEN,
                       first_seen=from_rfc3339(p.first_seen))
            for p in plan.pending if (p.invariant, p.store) in violated]


def _status(**fields: Any) -> dict[str, Any]:
    """The wire form of some status fields, as merge_patch spells them."""
    return OperatorTicketStatus(**fields).merge_patch()


def amend_plan(plan: Plan, tickets: Iterable[TicketView], findings: Iterable[Finding], now: datetime) -> Plan:
    """`plan` with causes named, symptoms waiting for a cause in grace, and causes diagnosed (see the module)."""
    tickets = list(tickets)
    findings = list(findings)
    existing = {t.name: t for t in tickets}
    ops: list[Operation] = list(plan.operations)

    # A symptom whose cause is still in grace waits for it, its own grace already served.
    after = _after(tickets, ops)
    waiting = _pending_causes(plan, findings)
    deferred: list[PendingViolation] = []
    if waiting:
        kept: list[Operation] = []
        for op in ops:
            symptom = after.get(op.name) if isinstance(op, CreateTicket) else None
            if symptom is not None and explain(symptom, after.values()) is None and explain(symptom, waiting):
                deferred.append(PendingViolation(invariant=op.invariant, store=op.store,
                                                 first_seen=str(op.status.get("firstSeen"))))
                after.pop(op.name)
                continue
            kept.append(op)
        ops = kept

    correlation = correlate(after.values())
    by_cause = explains(correlation)
    latest = {f.identity: f for f in findings if f.verdict == "violated"}
    by_name: dict[str, int] = {op.name: i for i, op in enumerate(ops)}
    extra: list[Operation] = []

    def add(name: str, status: Mapping[str, Any], transition: TicketEvent | None = None) -> None:
        """Merge `status` into the ticket's write of this check, or make one. A Diagnosed transition (an Event,
        labels) only on a ticket the lifecycle does not write with an Event of its own this check."""
        ticket = existing.get(name)
        index = by_name.get(name)
        if index is None:
            if ticket is None:
                return
            patch = PatchTicket(name, status=dict(status), resource_version=ticket.resource_version)
            if transition is not None:
                patch = replace(patch, labels=state_labels(Phase.DIAGNOSED, ticket.held),
                                annotations={ANNOTATION_RECORDED: record_of(Phase.DIAGNOSED, ticket.held)},
                                event=transition)
            by_name[name] = len(ops) + len(extra)
            extra.append(patch)
            return
        op = ops[index] if index < len(ops) else extra[index - len(ops)]
        if isinstance(op, DeleteTicket):
            return
        if isinstance(op, CreateTicket):
            if transition is None:
                merged: Operation = replace(op, status={**op.status, **status})
            else:
                return
        else:
            if op.status and op.status.get("phase") == Phase.RESOLVED:
                return
            if transition is not None and ticket is not None and op.event is not None:
                # Its own write after the lifecycle's, on the version that one wrote (one Event each).
                extra.append(PatchTicket(name, status=dict(status), labels=state_labels(Phase.DIAGNOSED, ticket.held),
                                         annotations={ANNOTATION_RECORDED: record_of(Phase.DIAGNOSED, ticket.held)},
                                         event=transition, resource_version=ticket.resource_version))
                return
            if transition is not None:
                if ticket is None:
                    return
                merged = replace(op, status={**(op.status or {}), **status},
                                 labels={**(op.labels or {}), **state_labels(Phase.DIAGNOSED, ticket.held)},
                                 annotations={**(op.annotations or {}),
                                              ANNOTATION_RECORDED: record_of(Phase.DIAGNOSED, ticket.held)},
                                 event=transition)
            else:
                merged = replace(op, status={**(op.status or {}), **status})
        if index < len(ops):
            ops[index] = merged
        else:
            extra[index - len(ops)] = merged

    # Rule 26: each symptom names its open cause. A cause that resolved stays named (delivery pages the symptom
    # on its own once a check could judge it again, and the page says what it outlived); one that is gone, or
    # that a reopened symptom had the last time, is no longer named.
    reopened = {name for name, t in existing.items() if not t.active and name in after}
    for ticket in after.values():
        found: Explained | None = correlation.get(ticket.name)
        current = existing[ticket.name].cause if ticket.name in existing else None
        if found is not None:
            if current is None or (current.ticket, current.rule) != (found.cause.name, found.link.rule):
                add(ticket.name, _status(cause=found.cause_field(now)))
        elif current is not None and (current.ticket not in existing or ticket.name in reopened):
            add(ticket.name, _status(cause=None))

    # Rule 27: a cause that explains tickets carries its diagnosis; an Open one becomes Diagnosed. A person's
    # Diagnosed (no diagnosis) is theirs: left as it is.
    for name, ticket in existing.items():
        if name not in after:
            continue
        explained = by_cause.get(name, [])
        if ticket.phase == Phase.DIAGNOSED and not ticket.operator_diagnosed:
            continue
        if not explained and ticket.diagnosis is None:
            continue
        if not explained and ticket.phase == Phase.OPEN:
            add(name, _status(diagnosis=None))  # reopened (rule 13) with the diagnosis of the last time
            continue
        if ticket.phase not in (Phase.OPEN, Phase.ACKNOWLEDGED, Phase.DIAGNOSED):
            continue
        finding = latest.get(ticket.identity)
        evidence = dict(finding.evidence) if finding is not None else dict(ticket.evidence)
        diagnosis = diagnose(after[name], explained, evidence, now)
        if ticket.phase == Phase.OPEN and explained:
            add(name, _status(phase=Phase.DIAGNOSED, diagnosis=diagnosis),
                TicketEvent("TicketDiagnosed", f"{name}: {diagnosis.summary}"))
        elif ticket.phase != Phase.OPEN and not same_diagnosis(ticket.diagnosis, diagnosis):
            add(name, _status(diagnosis=diagnosis))

    ops.extend(extra)
    # A cause is created before the symptoms that name it: a symptom whose cause is not there yet pages.
    ops.sort(key=lambda op: isinstance(op, CreateTicket) and "cause" in op.status)
    pending = tuple(sorted((*plan.pending, *deferred), key=lambda p: (p.invariant, p.store)))
    return replace(plan, operations=tuple(ops), pending=pending, open_tickets=plan.open_tickets - len(deferred))
