"""Tickets as the lifecycle reads them, and the names and labels they carry."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tikv_operator.model.ticket_resource import OperatorTicketStatus, TicketCause, TicketDiagnosis
from tikv_operator.model.timestamps import from_rfc3339, to_rfc3339
from tikv_operator.model.vocabulary import (
    GROUP,
    LABEL_CLUSTER,
    LABEL_HELD,
    LABEL_INVARIANT,
    LABEL_PHASE,
    LABEL_SEVERITY,
    LABEL_STORE,
    Phase,
    phase_label,
    phase_of_label,
)

# The phase and hold the operator last recorded ("Open/unheld"): a ticket that differs from it was just
# changed by a person (kubectl patch, the CLI), which is a transition to record and announce.
ANNOTATION_RECORDED = f"{GROUP}/recorded"


def record_of(phase: str, held: bool) -> str:
    return f"{phase}/{'held' if held else 'unheld'}"


def parse_record(record: str) -> tuple[str, bool]:
    phase, _, hold = record.partition("/")
    return phase, hold == "held"


def ticket_prefix(cluster: str, invariant: str, store: str) -> str:
    """`<cluster>-<invariant-kebab>[-s<store>]`: deterministic, so two writers collide on the name (409)."""
    return f"{cluster}-{invariant.replace('_', '-')}" + (f"-s{store}" if store else "")


def ticket_name(cluster: str, invariant: str, store: str, number: int) -> str:
    return f"{ticket_prefix(cluster, invariant, store)}-{number}"


def ticket_number(name: str, prefix: str) -> int | None:
    match = re.fullmatch(re.escape(prefix) + r"-([0-9]+)", name)
    return int(match.group(1)) if match else None


def next_ticket_name(cluster: str, invariant: str, store: str, taken: Iterable[str]) -> str:
    """The name after every numbered name of this identity in `taken`: a new ticket never takes an old
    one's name, and a writer that collides (409) moves on to the next number."""
    prefix = ticket_prefix(cluster, invariant, store)
    return ticket_name(cluster, invariant, store, 1 + max((ticket_number(n, prefix) or 0 for n in taken), default=0))


def state_labels(phase: str, held: bool, severity: str | None = None) -> dict[str, str]:
    """The labels that copy a ticket's phase, hold (and severity) so `kubectl get -l` can select on them.
    Every writer (operator and CLI) sets them through this one function."""
    labels = {LABEL_PHASE: phase_label(phase), LABEL_HELD: "true" if held else "false"}
    if severity is not None:
        labels[LABEL_SEVERITY] = severity
    return labels


def ticket_labels(cluster: str, invariant: str, store: str, phase: str, severity: str, held: bool) -> dict[str, str]:
    return {LABEL_CLUSTER: cluster, LABEL_INVARIANT: invariant, LABEL_STORE: store,
            **state_labels(phase, held, severity)}


@dataclass(frozen=True)
class ManualResolve:
    """Rule 6: what resolving a ticket by hand writes. A manual resolve wins over hold, so the hold goes."""

    status: OperatorTicketStatus
    spec: Mapping[str, Any]
    labels: Mapping[str, str]


def manual_resolve(resolved_at: datetime | None, now: datetime) -> ManualResolve:
    """The same for `tikv-operator tickets resolve` and for the operator recording a `kubectl patch` to
    Resolved; a resolvedAt the person already wrote is kept."""
    return ManualResolve(
        status=OperatorTicketStatus(phase=Phase.RESOLVED, resolution="manual",
                                    resolved_at=to_rfc3339(resolved_at or now)),
        spec={"held": False},
        labels=state_labels(Phase.RESOLVED, held=False),
    )


def _moments(value: object) -> tuple[datetime, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(m for m in (from_rfc3339(v) if isinstance(v, str) else None for v in value) if m is not None)


@dataclass(frozen=True)
class TicketView:
    """What the lifecycle needs of one OperatorTicket (from the operator's index of tickets)."""

    name: str
    cluster: str
    invariant: str
    store: str
    held: bool = False
    # None: created, but its status was never written (a crash in between). A str, not only a Phase: a
    # newer operator's phase is kept as stored.
    phase: str | None = None
    severity: str | None = None
    occurrences: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    created: datetime | None = None
    reopened_at: tuple[datetime, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # The version this view was read at: the operator's patches are conditional on it (a 409 means a
    # person changed the ticket since, and the next check plans from what they did).
    resource_version: str = ""
    namespace: str = ""
    # What an alert of the ticket says (alerts.core.delivery), and the Alertmanager silences of its acknowledgement.
    message: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    silences: Mapping[str, str] = field(default_factory=dict)
    # The open ticket that explains this one (rule 26), and the operator's diagnosis of a cause (rule 27).
    cause: TicketCause | None = None
    diagnosis: TicketDiagnosis | None = None

    @property
    def recorded(self) -> tuple[str, bool]:
        """What the operator last recorded; tickets from before the annotation fall back to the labels."""
        record = self.annotations.get(ANNOTATION_RECORDED)
        if record:
            return parse_record(record)
        label = self.labels.get(LABEL_PHASE, phase_label(Phase.OPEN))
        return (phase_of_label(label) or label.capitalize(), self.labels.get(LABEL_HELD) == "true")

    @property
    def operator_diagnosed(self) -> bool:
        """Diagnosed by the operator (rule 27), not by a person: the operator writes Diagnosed only with a diagnosis."""
        return self.phase == Phase.DIAGNOSED and self.diagnosis is not None

    @property
    def identity(self) -> tuple[str, str]:
        return (self.invariant, self.store)

    @property
    def active(self) -> bool:
        return self.phase != Phase.RESOLVED

    @property
    def current_phase(self) -> str:
        """The phase a person sees: Open until the status is written (the operator writes Open right after it
        creates a ticket; the API server ignores status on create)."""
        return self.phase or Phase.OPEN

    @classmethod
    def from_resource(cls, body: Mapping[str, Any]) -> TicketView:
        return cls.of(body, OperatorTicketStatus.read(body.get("status")))

    @classmethod
    def of(cls, body: Mapping[str, Any], status: OperatorTicketStatus) -> TicketView:
        """The view of an object whose status was read already (`OperatorTicketStatus.read`)."""
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        return cls(
            name=str(meta.get("name", "")),
            cluster=str(spec.get("cluster", "")),
            invariant=str(spec.get("invariant", "")),
            store=str(spec.get("store") or ""),
            held=spec.get("held") is True,
            phase=status.phase,
            severity=status.severity,
            occurrences=int(status.occurrences or 0),
            first_seen=from_rfc3339(status.first_seen),
            last_seen=from_rfc3339(status.last_seen),
            resolved_at=from_rfc3339(status.resolved_at),
            resolution=status.resolution,
            created=from_rfc3339(meta.get("creationTimestamp")),
            reopened_at=_moments(status.reopened_at),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
            resource_version=str(meta.get("resourceVersion") or ""),
            namespace=str(meta.get("namespace") or ""),
            message=str(status.message or ""),
            evidence=dict(status.evidence) if isinstance(status.evidence, dict) else {},
            silences={str(k): str(v) for k, v in status.silences.items() if v}
            if isinstance(status.silences, dict) else {},
            cause=status.cause if isinstance(status.cause, TicketCause) else None,
            diagnosis=status.diagnosis if isinstance(status.diagnosis, TicketDiagnosis) else None,
        )
