"""The words every part agrees on: API group, label keys, invariant names, phases, severities."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

GROUP = "tikvops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "tikvops"

LABEL_CLUSTER = f"{GROUP}/cluster"
LABEL_INVARIANT = f"{GROUP}/invariant"
LABEL_STORE = f"{GROUP}/store"
LABEL_PHASE = f"{GROUP}/phase"
LABEL_SEVERITY = f"{GROUP}/severity"
LABEL_HELD = f"{GROUP}/held"
# A Secret opts in to being sent by the operator (as a client certificate or an Authorization header) with
# this label set to "true": naming a Secret in a TiKVCluster is not enough (confused deputy).
LABEL_CREDENTIALS = f"{GROUP}/credentials"
# On a tidb-operator v2 Cluster (core.pingcap.com), which names no Prometheus: the Prometheus (or a query layer
# with its API) whose series its PodMonitor or VMPodScrape labels tidb_cluster="<namespace>-<cluster>".
ANNOTATION_PROMETHEUS_URL = f"{GROUP}/prometheus-url"

# An invariant's name on a ticket: a built-in one (declared in checks.core.invariants.declarations) or a cluster's
# own (spec.customInvariants), so any name of INVARIANT_NAME_PATTERN, not only the built-in ones.
InvariantName = str
# Built-in and custom names alike: a label value (<= 63) that also reads well in a ticket's name.
INVARIANT_NAME_PATTERN = r"^[a-z][a-z0-9_]*[a-z0-9]$"
INVARIANT_NAME_MAX = 40

# Ordered from most to least urgent, as the official TiKV/PD alert rules' `level` label.
Severity = Literal["emergency", "critical", "warning", "info"]
SEVERITIES: tuple[str, ...] = get_args(Severity)


# A ticket's status.phase; its label (tikvops.io/phase, `tickets --status`) is phase_label's. (No docstring:
# pydantic would put it into the CRD's schema.)
class Phase(StrEnum):
    OPEN = "Open"
    ACKNOWLEDGED = "Acknowledged"
    DIAGNOSED = "Diagnosed"
    RESOLVED = "Resolved"


PHASES: tuple[str, ...] = tuple(phase.value for phase in Phase)


def phase_label(phase: str) -> str:
    """The phase as labels and `tickets --status` spell it: Phase.OPEN -> "open"."""
    return phase.lower()


def phase_of_label(text: str) -> Phase | None:
    """The phase a label value (or `--status` text, in any case) names; None when it names none."""
    return next((phase for phase in Phase if phase_label(phase) == text.strip().lower()), None)


Resolution = Literal["auto", "manual"]
Health = Literal["Healthy", "Degraded", "Unknown"]

