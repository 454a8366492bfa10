"""Tickets as the lifecycle reads them, and the names and labels they carry."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tikv_operator.core.timestamps import from_rfc3339
from tikv_operator.core.vocabulary import (
    GROUP,
    LABEL_CLUSTER,
    LABEL_HELD,
    LABEL_INVARIANT,
    LABEL_PHASE,
    LABEL_SEVERITY,
    LABEL_STORE,
)

RESOLVED = "Resolved"
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


def ticket_labels(cluster: str, invariant: str, store: str, phase: str, severity: str, held: bool) -> dict[str, str]:
    return {
        LABEL_CLUSTER: cluster,
        LABEL_INVARIANT: invariant,
        LABEL_STORE: store,
        LABEL_PHASE: phase.lower(),
        LABEL_SEVERITY: severity,
        LABEL_HELD: "true" if held else "false",
    }


def _moments(value: Any) -> tuple[datetime, ...]:
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
    phase: str | None = None  # None: created, but its status was never written (a crash in between)
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

    @property
    def recorded(self) -> tuple[str, bool]:
        """What the operator last recorded; tickets from before the annotation fall back to the labels."""
        record = self.annotations.get(ANNOTATION_RECORDED)
        if record:
            return parse_record(record)
        return (self.labels.get(LABEL_PHASE, "open").capitalize(), self.labels.get(LABEL_HELD) == "true")

    @property
    def identity(self) -> tuple[str, str]:
        return (self.invariant, self.store)

    @property
    def active(self) -> bool:
        return self.phase != RESOLVED

    @classmethod
    def from_resource(cls, body: Mapping[str, Any]) -> TicketView:
        meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status") or {}
        return cls(
            name=meta.get("name", ""),
            cluster=spec.get("cluster", ""),
            invariant=spec.get("invariant", ""),
            store=spec.get("store", "") or "",
            held=bool(spec.get("held", False)),
            phase=status.get("phase"),
            severity=status.get("severity"),
            occurrences=int(status.get("occurrences") or 0),
            first_seen=from_rfc3339(status.get("firstSeen")),
            last_seen=from_rfc3339(status.get("lastSeen")),
            resolved_at=from_rfc3339(status.get("resolvedAt")),
            resolution=status.get("resolution"),
            created=from_rfc3339(meta.get("creationTimestamp")),
            reopened_at=_moments(status.get("reopenedAt")),
            labels=dict(meta.get("labels") or {}),
            annotations=dict(meta.get("annotations") or {}),
        )
