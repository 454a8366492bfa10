"""The chart as a person uses it: lint, install, upgrade with a changed value, uninstall; bad values are
refused by the schema before anything reaches the cluster. (No kubelet here: the Deployment's pod never
runs, so the tests look at the objects, not at pod readiness.)"""

from __future__ import annotations

import json

import pytest

from tests.support.kube import Cli
from tests.unit.chart.chart import CHART

RELEASE = "tikv-operator"
NAME = "tikv-operator"


def releases(helm: Cli) -> list[tuple[str, str, str]]:
    return [(r["name"], r["revision"], r["status"]) for r in json.loads(helm("list", "-o", "json").stdout)]


def operator_args(kubectl: Cli) -> list[str]:
    deployment = kubectl.json("get", "deployment", NAME)
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


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
                    "No default Alertmanager (alertmanager.urls)"):
        assert command in install.stdout, command

    assert operator_args(kubectl)[:2] == ["--all-namespaces", "--standalone"]
    assert "--log-format=text" in operator_args(kubectl)
    assert kubectl.json("get", "serviceaccount", NAME)["metadata"]["name"] == NAME
    assert kubectl.json("get", "service", f"{NAME}-metrics")["spec"]["ports"][0]["port"] == 8080
    cluster_scoped = f"{namespace}-{NAME}"
    kubectl_admin("get", "clusterrole", cluster_scoped)
    kubectl_admin("get", "clusterrolebinding", cluster_scoped)
    for crd in ("tikvclusters.tikvops.io", "operatortickets.tikvops.io"):
        kubectl_admin("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}")
    assert kubectl.json("get", "deployment", NAME)["spec"]["strategy"] == {"type": "Recreate"}

    helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "logFormat=json")
    assert "--log-format=json" in operator_args(kubectl)
    assert "--log-format=text" not in operator_args(kubectl)
    assert releases(helm) == [(RELEASE, "2", "deployed")]

    helm("uninstall", RELEASE)
    assert releases(helm) == []
    assert "NotFound" in kubectl("get", "deployment", NAME, check=False).stderr
    assert "NotFound" in kubectl_admin("get", "clusterrole", cluster_scoped, check=False).stderr
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


@pytest.mark.parametrize(
    ("setting", "must_read"),
    [
        ("checkInterval=soon", ["/checkInterval", "soon", "does not match pattern"]),
        ("checkIntervall=30s", ["checkIntervall", "not allowed"]),
        ("image.registry=ghcr.io", ["/image", "registry", "not allowed"]),
        ("logFormat=xml", ["/logFormat", "text", "json"]),
        ("watchNamespaces={Bad_Name}", ["/watchNamespaces/0", "does not match pattern"]),
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
