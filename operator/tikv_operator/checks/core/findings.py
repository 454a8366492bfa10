"""What the invariant engine says about one identity in one check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from tikv_operator.model.vocabulary import Severity

Verdict = Literal["violated", "ok", "unknown"]
# Why a verdict is unknown. The blind ones mean the operator cannot see what it should (the cluster's
# health is then Unknown, rule 14); the others are unknown on purpose. "credentials": PD or Prometheus was
# not contacted because a Secret it needs could not be used, so whether it answers is not known. "history":
# the operator has not watched long enough to judge a change (a restart, leaders lost; rule 24): not blind,
# since every operator that starts on a cluster goes through it.
Cause = Literal["", "inhibited", "idle", "no-data", "query-failed", "ambiguous", "prometheus", "pd", "credentials",
                "history"]
BLIND: frozenset[str] = frozenset({"no-data", "query-failed", "ambiguous", "prometheus", "pd", "credentials"})


@dataclass(frozen=True)
class Finding:
    """`unknown` means the data to decide was missing: a ticket for this identity must stay as it is."""

    invariant: str  # a built-in (vocabulary.InvariantName) or a cluster's custom invariant
    store: str  # "" for a cluster-wide invariant
    verdict: Verdict
    severity: Severity
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    cause: Cause = ""
    # This violation's own grace period when it differs from the invariant's (a Down store: none).
    grace_period: timedelta | None = None
    # False for an "ok" inside the clear margin of a threshold: below it, but not far enough to resolve
    # an open ticket (no storm from a value hovering at the threshold).
    clears: bool = True

    @property
    def identity(self) -> tuple[str, str]:
        return (self.invariant, self.store)

    @property
    def blind(self) -> bool:
        return self.verdict == "unknown" and self.cause in BLIND
