"""The chart as a person uses it: lint, install, upgrade with a changed value, uninstall; bad values are
refused by the schema before anything reaches the cluster. (No kubelet here: the Deployment's pod never
runs, so the tests look at the objects, not at pod readiness.) The API server is Kubernetes 1.20, which
serves PodDisruptionBudgets as policy/v1beta1 only: the chart picks it from the server's capabilities."""

from __future__ import annotations

import json

import pytest
import yaml
from harness.kube import Cli
from harness.platform import wait_crds

from tests.unit.chart.chart import CHART

RELEASE = "tikv-operator"
NAME = "tikv-operator"


def releases(helm: Cli) -> list[tuple[str, str, str]]:
    return [(r["name"], r["revision"], r["status"]) for r in json.loads(helm("list", "-o", "json").stdout)]


def operator_args(kubectl: Cli) -> list[str]:
    deployment = kubectl.json("get", "deployment", NAME)
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def leader_election_args(namespace: str) -> list[str]:
    return ["--leader-elect", "--leader-election-id=tikv-operator", f"--leader-election-namespace={namespace}",
            "--leader-election-lease-duration=15s", "--leader-election-renew-deadline=10s",
            "--leader-election-retry-period=2s"]


def rendered(helm: Cli, kind: str) -> list[dict]:
    """The release's manifests of one kind, as Helm rendered them against this API server."""
    docs = yaml.safe_load_all(helm("get", "manifest", RELEASE).stdout)
    return [doc for doc in docs if doc and doc["kind"] == kind]


def test_helm_lint_strict(helm: Cli) -> None:
    result = helm("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_install_upgrade_uninstall(helm: Cli, kubectl: Cli, kubectl_admin: Cli, namespace: str) -> None:
    install = helm("install", RELEASE, str(CHART))
    assert "STATUS: deployed" in install.stdout
    # NOTES.txt: the next commands.
    for command in ("kubectl get tikvclusters", "kubectl get operatortickets", '{"spec":{"held":true}}',
                    '--subresource=status --type=merge -p \'{"status":{"phase":"Resolved"}}\'',
                    "kind: TiKVCluster", "finalizer", '{"status":{"phase":"Acknowledged"}}',
                    "No default Alertmanager (alertmanager.urls)",
                    f"kubectl --namespace {namespace} get lease tikv-operator"):
        assert command in install.stdout, command
    assert "discovered-from" not in install.stdout  # discovery is off by default

    assert operator_args(kubectl)[:8] == ["--all-namespaces", "--standalone", *leader_election_args(namespace)]
    assert "--log-format=text" in operator_args(kubectl)
    assert kubectl.json("get", "serviceaccount", NAME)["metadata"]["name"] == NAME
    assert kubectl.json("get", "service", f"{NAME}-metrics")["spec"]["ports"][0]["port"] == 8080
    cluster_scoped = f"{namespace}-{NAME}"
    kubectl_admin("get", "clusterrole", cluster_scoped)
    kubectl_admin("get", "clusterrolebinding", cluster_scoped)
    wait_crds("tikvclusters.tikvops.io", "operatortickets.tikvops.io")
    # Two replicas behind a Lease: a rollout starts a new pod before it stops an old one.
    deployment = kubectl.json("get", "deployment", NAME)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in env} == {
        "POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    # Kubernetes 1.20 has no policy/v1: the chart falls back to policy/v1beta1.
    assert [doc["apiVersion"] for doc in rendered(helm, "PodDisruptionBudget")] == ["policy/v1beta1"]
    budget = kubectl.json("get", "poddisruptionbudget", NAME)
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    lease_role = f"{cluster_scoped}-leader-election"
    kubectl.json("get", "role", lease_role)
    kubectl.json("get", "rolebinding", lease_role)

    helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "logFormat=json")
    assert "--log-format=json" in operator_args(kubectl)
    assert "--log-format=text" not in operator_args(kubectl)
    assert releases(helm) == [(RELEASE, "2", "deployed")]

    helm("uninstall", RELEASE)
    assert releases(helm) == []
    assert "NotFound" in kubectl("get", "deployment", NAME, check=False).stderr
    assert "NotFound" in kubectl_admin("get", "clusterrole", cluster_scoped, check=False).stderr
    assert "NotFound" in kubectl("get", "poddisruptionbudget", NAME, check=False).stderr
    assert "NotFound" in kubectl("get", "role", lease_role, check=False).stderr
    # Helm never deletes what it installed from crds/: the TiKVClusters of other people live on.
    kubectl_admin("get", "crd", "tikvclusters.tikvops.io")


def test_upgrade_to_namespaced_mode_swaps_the_cluster_role_for_a_role(
    helm: Cli, kubectl: Cli, kubectl_admin: Cli, namespace: str,
) -> None:
    helm("install", RELEASE, str(CHART))
    helm("upgrade", RELEASE, str(CHART), "--set", f"watchNamespaces={{{namespace}}}")
    assert operator_args(kubectl)[:2] == [f"--namespace={namespace}", "--standalone"]
    assert kubectl.json("get", "role", f"{namespace}-{NAME}")["rules"]
    assert kubectl.json("get", "rolebinding", f"{namespace}-{NAME}")["roleRef"]["kind"] == "Role"
    for kind in ("clusterrole", "clusterrolebinding"):
        assert "NotFound" in kubectl_admin("get", kind, f"{namespace}-{NAME}", check=False).stderr
    helm("uninstall", RELEASE)


def test_upgrade_to_one_replica_without_leader_election_and_back(helm: Cli, kubectl: Cli, namespace: str) -> None:
    lease_role = f"{namespace}-{NAME}-leader-election"
    helm("install", RELEASE, str(CHART))
    single = helm("upgrade", RELEASE, str(CHART), "--reuse-values",
                  "--set", "leaderElection.enabled=false,replicas=1")
    assert "One replica, no leader election" in single.stdout
    assert "get lease" not in single.stdout
    deployment = kubectl.json("get", "deployment", NAME)
    # No Lease: a rollout must never run two operators, so the old pod stops first again.
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]) == (1, {"type": "Recreate"})
    args = operator_args(kubectl)
    assert "--no-leader-elect" in args
    assert not [arg for arg in args if arg.startswith("--leader-elect")]
    # No Lease Role, and no budget (minAvailable 1 on one pod would block every node drain).
    assert "NotFound" in kubectl("get", "role", lease_role, check=False).stderr
    assert "NotFound" in kubectl("get", "rolebinding", lease_role, check=False).stderr
    assert "NotFound" in kubectl("get", "poddisruptionbudget", NAME, check=False).stderr
    assert rendered(helm, "PodDisruptionBudget") == []

    helm("upgrade", RELEASE, str(CHART), "--reset-values")
    deployment = kubectl.json("get", "deployment", NAME)
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]["type"]) == (2, "RollingUpdate")
    assert operator_args(kubectl)[2:8] == leader_election_args(namespace)
    kubectl.json("get", "role", lease_role)
    kubectl.json("get", "poddisruptionbudget", NAME)
    helm("uninstall", RELEASE)


def test_upgrade_to_discovery_and_back(helm: Cli, kubectl: Cli, kubectl_admin: Cli, namespace: str) -> None:
    """discovery.tidbClusters switches the operator's flags and its rows of the ClusterRole, and nothing else."""
    cluster_scoped = f"{namespace}-{NAME}"

    def pingcap_rules() -> list[dict]:
        return [rule for rule in kubectl_admin.json("get", "clusterrole", cluster_scoped)["rules"]
                if "pingcap.com" in rule["apiGroups"]]

    def tikvcluster_verbs() -> list[str]:
        rules = kubectl_admin.json("get", "clusterrole", cluster_scoped)["rules"]
        return sorted(verb for rule in rules if rule["resources"] == ["tikvclusters"] for verb in rule["verbs"])

    helm("install", RELEASE, str(CHART))
    before = operator_args(kubectl)
    assert pingcap_rules() == []
    assert tikvcluster_verbs() == ["get", "list", "patch", "watch"]

    on = helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set",
              "discovery.tidbClusters=true,discovery.prometheusURL=http://prometheus.monitoring:9090,"
              "discovery.interval=1m")
    assert "kubectl get tikvclusters -A -l tikvops.io/discovered-from" in on.stdout
    assert operator_args(kubectl) == [*before, "--discover-tidbclusters", "--discovery-interval=1m",
                                      "--default-prometheus-url=http://prometheus.monitoring:9090"]
    assert pingcap_rules() == [{"apiGroups": ["pingcap.com"], "resources": ["tidbclusters", "tidbmonitors"],
                                "verbs": ["get", "list", "watch"]}]
    assert tikvcluster_verbs() == ["create", "delete", "get", "list", "patch", "watch"]

    off = helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "discovery.tidbClusters=false")
    assert "discovered-from" not in off.stdout
    assert operator_args(kubectl) == before  # the URL and interval stay in the values, unused
    assert pingcap_rules() == []
    assert tikvcluster_verbs() == ["get", "list", "patch", "watch"]
    helm("uninstall", RELEASE)


def test_several_replicas_without_leader_election_are_refused(helm: Cli, kubectl: Cli) -> None:
    result = helm("install", RELEASE, str(CHART), "--set", "replicas=2,leaderElection.enabled=false", check=False)
    assert result.returncode != 0
    assert ("replicas=2 needs leaderElection.enabled=true: without a Lease every replica is active and repeats "
            "every check, ticket write and Event") in result.stderr, result.stderr
    assert releases(helm) == []
    assert "NotFound" in kubectl("get", "deployment", NAME, check=False).stderr


@pytest.mark.parametrize(
    ("setting", "must_read"),
    [
        ("checkInterval=soon", ["/checkInterval", "soon", "does not match pattern"]),
        ("checkIntervall=30s", ["checkIntervall", "not allowed"]),
        ("image.registry=ghcr.io", ["/image", "registry", "not allowed"]),
        ("logFormat=xml", ["/logFormat", "text", "json"]),
        ("watchNamespaces={Bad_Name}", ["/watchNamespaces/0", "does not match pattern"]),
        ("replicas=0", ["/replicas", "minimum"]),
        ("leaderElection.leaseDuration=15sec", ["/leaderElection/leaseDuration", "15sec", "does not match pattern"]),
        ("leaderElection.namespace=ops", ["/leaderElection", "namespace", "not allowed"]),
        ("discovery.prometheusURL=not a url", ["/discovery/prometheusURL", "not a url", "does not match pattern"]),
        ("discovery.tidbclusters=true", ["/discovery", "tidbclusters", "not allowed"]),
        ("discovery.interval=often", ["/discovery/interval", "often", "does not match pattern"]),
    ],
)
def test_invalid_values_are_refused_with_a_readable_message(helm: Cli, kubectl: Cli, setting: str,
                                                            must_read: list[str]) -> None:
    result = helm("install", RELEASE, str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    for words in must_read:
        assert words in result.stderr, f"{words!r} not in: {result.stderr}"
    assert releases(helm) == []
    assert "NotFound" in kubectl("get", "deployment", NAME, check=False).stderr
