"""A minimal kopf operator, run by test_rbac.py with nothing but the chart ServiceAccount's token: it
proves that kopf itself (watching, finalizers, status patches, Events) works under the chart's RBAC.

It configures kopf as the operator does (tikv_operator.handlers: standalone, no cluster scanning), unless
RBAC_PROBE_SCANNING=enabled asks for kopf's default scanning. Only TiKVClusters labelled
tikvops.io/rbac-probe=yes are handled, so that the probe never puts its finalizer on objects of other tests.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

PROBED = {"tikvops.io/rbac-probe": "yes"}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # The CRD's status schema has no room for kopf's own progress records; annotations hold them.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
    settings.persistence.finalizer = "tikvops.io/rbac-probe"
    settings.peering.standalone = True
    settings.scanning.disabled = os.environ.get("RBAC_PROBE_SCANNING") != "enabled"


@kopf.on.create("tikvops.io", "v1alpha1", "tikvclusters", labels=PROBED)
def created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    patch.status["message"] = "seen by the RBAC probe"
    kopf.info(body, reason="RBACProbe", message="the probe saw this cluster")


@kopf.on.delete("tikvops.io", "v1alpha1", "tikvclusters", labels=PROBED)
def deleted(**_: Any) -> None:
    """Its presence makes kopf add (and later remove) the finalizer."""


@kopf.on.event("tikvops.io", "v1alpha1", "operatortickets")
def ticket_seen(**_: Any) -> None:
    """Its presence makes kopf list and watch OperatorTickets."""
