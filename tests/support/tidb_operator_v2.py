"""tidb-operator v2 (core.pingcap.com) as tikv-operator's tests need it (docs/discovery.md).

Nothing of tidb-operator runs: tests create its Cluster, PDGroup, TiKVGroup, TiKV and TiFlash objects and write
the status tidb-operator would have written (`--subresource=status`, as their CRDs have a status subresource).

- `tidb_v2_crds` (session fixture): reduced CRDs (tests/support/tidb_operator_v2/: upstream's use CEL rules the
  platform's 1.20 API server does not know). Installed when absent, replaced when an older copy of ours is
  there, left alone when someone installed the real ones; never deleted (cluster-scoped, shared).
- `cluster_manifest(...)`, `member_manifest(...)`: the objects as a person writes them (spec only).
- `write_status(kubectl, plural, name, status)`: what tidb-operator's controllers write.
- `instance_for_pod(pod, component)`: the instance name whose pod tidb-operator names `pod` (coreutil.PodName).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness.kube import Cli, eventually
from harness.platform import wait_crds

GROUP, VERSION = "core.pingcap.com", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_DIR = Path(__file__).resolve().with_name("tidb_operator_v2")
PLURALS = ("clusters", "pdgroups", "tikvgroups", "tikvs", "tiflashes")
CRDS = tuple(f"{plural}.{GROUP}" for plural in PLURALS)
DIGEST_ANNOTATION = "tikvops.io/test-support-digest"
VERSION_TAG = "v8.5.0"


def install_crds(kubectl: Cli) -> None:
    for name in CRDS:
        text = (CRD_DIR / f"{name}.yaml").read_text()
        crd: dict[str, Any] = yaml.safe_load(text)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        crd["metadata"].setdefault("annotations", {})[DIGEST_ANNOTATION] = digest
        body = yaml.safe_dump(crd, sort_keys=False)
        found = kubectl("get", "crd", name, "-o", "json", check=False)
        if found.returncode != 0:
            created = kubectl("create", "-f", "-", input=body, check=False)
            if created.returncode != 0 and "AlreadyExists" not in created.stderr:
                kubectl("create", "-f", "-", input=body)
            continue
        current = (json.loads(found.stdout)["metadata"].get("annotations") or {}).get(DIGEST_ANNOTATION)
        if current is not None and current != digest:
            kubectl("replace", "-f", "-", input=body)  # ours, from an older checkout; else not ours to change
    wait_crds(*CRDS)
    for name in CRDS:
        eventually(partial(lambda n: kubectl("get", n, check=False).returncode == 0, name), timeout=30,
                   what=f"{name} to be served")


@pytest.fixture(scope="session")
def tidb_v2_crds(kubectl_admin: Cli) -> None:
    """tidb-operator v2's Cluster, PDGroup, TiKVGroup, TiKV and TiFlash CRDs (reduced); left installed."""
    install_crds(kubectl_admin)


def cluster_manifest(name: str, *, tls: bool = False, client_secret: str | None = None,
                     annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Cluster as in tidb-operator's examples (examples/basic/00-cluster.yaml), optionally with mTLS and a
    client Secret of its own (spec.security.tls.client)."""
    spec: dict[str, Any] = {}
    if tls:
        spec["tlsCluster"] = {"enabled": True}
    if client_secret:
        spec["security"] = {"tls": {"client": {"ca": {"name": client_secret},
                                               "certKeyPair": {"name": client_secret}}}}
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": "Cluster", "metadata": metadata, "spec": spec}


def member_manifest(kind: str, name: str, cluster: str, **spec: Any) -> dict[str, Any]:
    """A PDGroup, TiKVGroup, TiKV, TiFlash ... pointing at its Cluster (spec.cluster.name)."""
    body: dict[str, Any] = {"cluster": {"name": cluster}, **spec}
    if kind.endswith("Group"):
        body.setdefault("replicas", 3)
        body.setdefault("template", {"spec": {"version": VERSION_TAG, "volumes": [
            {"name": "data", "mounts": [{"type": kind.removesuffix("Group").lower()}], "storage": "20Gi"}]}})
    else:
        body.setdefault("version", VERSION_TAG)
        body.setdefault("subdomain", f"{cluster}-{kind.lower()}-peer")
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": body}


def write_status(kubectl: Cli, plural: str, name: str, status: Mapping[str, Any]) -> None:
    kubectl("patch", f"{plural}.{GROUP}", name, "--subresource=status", "--type", "merge", "-p",
            json.dumps({"status": dict(status)}))


def instance_for_pod(pod: str, component: str) -> str:
    """`basic-tikv-0` -> `basic-0`: the instance tidb-operator would run as that pod."""
    prefix, marker, suffix = pod.rpartition(f"-{component}-")
    if not marker:
        raise ValueError(f"{pod} is no {component} pod name")
    return f"{prefix}-{suffix}"
