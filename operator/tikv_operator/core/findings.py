"""What the invariant engine says about one identity in one check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tikv_operator.core.vocabulary import InvariantName, Severity

Verdict = Literal["violated", "ok", "unknown"]


@dataclass(frozen=True)
class Finding:
    """`unknown` means the data to decide was missing: a ticket for this identity must stay as it is."""

    invariant: InvariantName
    store: str  # "" for a cluster-wide invariant
    verdict: Verdict
    severity: Severity
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> tuple[str, str]:
        return (self.invariant, self.store)
