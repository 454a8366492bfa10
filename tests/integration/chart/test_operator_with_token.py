"""The operator process itself, run with nothing but a token minted for the chart's ServiceAccount: the
end-to-end ticket scenario (store down -> ticket -> recovery -> auto-resolve) passes under the chart's
RBAC, in an all-namespaces and in a namespaced install, and the operator is never refused anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.kube import Cli, eventually
from harness.operator_process import (
    OperatorProcess,
    SimulatedCluster,
    cluster_manifest,
    start_simulated_cluster,
    wait_for_phase,
    wait_for_ticket,
)
from harness.platform import PlatformInfo
from harness.prometheus import Prometheus, ScrapeTargets

from tests.integration.chart.serviceaccount import token_kubeconfig
from tests.unit.chart.chart import CHART

RELEASE = "tikv-operator"
ACCOUNT = "tikv-operator"


@pytest.fixture
def watched(kubectl_admin: Cli, namespace: str) -> Iterator[str]:
    """The namespace of the TiKVCluster; the operator is installed in the test's own namespace."""
    name = f"{namespace}-tikv"
    kubectl_admin("create", "namespace", name)
    yield name
    kubectl_admin.in_namespace(name)("delete", "tikvclusters", "--all", "--timeout=30s", check=False)
    kubectl_admin("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def tikv(prometheus: Prometheus, prom_targets: ScrapeTargets) -> Iterator[SimulatedCluster]:
    cluster = start_simulated_cluster(prometheus, prom_targets)
    yield cluster
    cluster.sim.__exit__(None, None, None)


@pytest.mark.parametrize("mode", ["all-namespaces", "namespaced"])
def test_the_ticket_scenario_passes_with_only_the_service_account_token(
    mode: str, platform: PlatformInfo, helm: Cli, kubectl_admin: Cli, namespace: str, watched: str,
    tikvops_crds: None, tikv: SimulatedCluster, prometheus: Prometheus, prom_targets: ScrapeTargets,
    tmp_path: Path,
) -> None:
    # All namespaces: Secrets are readable only where credentialNamespaces says; namespaced: in the watched ones.
    scope = (["--set", f"credentialNamespaces={{{watched}}}"] if mode == "all-namespaces"
             else ["--set", f"watchNamespaces={{{watched}}}"])
    helm("install", RELEASE, str(CHART), *scope)
    kubeconfig = token_kubeconfig(kubectl_admin, namespace, ACCOUNT, tmp_path / "operator.kubeconfig")
    env = {**platform.env(), "KUBECONFIG": str(kubeconfig)}
    # Delivering to Alertmanager: an acknowledgement's silence is recorded in the ticket's status.
    operator = OperatorProcess(env, () if mode == "all-namespaces" else (watched,), tmp_path / "operator.log",
                               extra_args=("--alertmanager-url", platform.alertmanager_url,
                                           "--alert-resend-interval", "2s"))
    kubectl = kubectl_admin.in_namespace(watched)
    try:
        operator.start()
        # A Secret the TiKVCluster names: the operator reads it (secrets get) for Prometheus' bearer token.
        kubectl("create", "secret", "generic", "prometheus-auth", "--from-literal=token=not-checked-here")
        kubectl("label", "secret", "prometheus-auth", "tikvops.io/credentials=true")
        manifest = cluster_manifest("basic", tikv.pd_url, prometheus.url, prom_targets.labels)
        manifest["spec"]["prometheus"]["authSecret"] = {"name": "prometheus-auth"}
        kubectl.apply(manifest)
        eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("health") == "Healthy",
                   timeout=30, what="a first healthy check")

        tikv.fault(kind="stop-store", store=1)
        ticket = wait_for_ticket(kubectl, "store_down", "1")
        name = ticket["metadata"]["name"]
        kubectl("patch", "operatorticket", name, "--subresource=status", "--type=merge",
                "-p", '{"status":{"phase":"Acknowledged"}}')
        eventually(lambda: kubectl.json("get", "operatorticket", name)["status"].get("silences"), timeout=20,
                   what="the acknowledgement's silence recorded in the ticket's status")
        tikv.fault(kind="start-store", store=1)
        resolved = wait_for_phase(kubectl, ticket["metadata"]["name"], "Resolved")
        assert resolved["status"]["resolution"] == "auto"

        kubectl("delete", "tkc", "basic", "--timeout=30s")  # the operator releases its finalizer
    finally:
        if operator.process is not None:
            code = operator.stop()
        helm("uninstall", RELEASE, check=False)
    log = operator.log()
    assert code == 0, log
    for sign in ("Forbidden", "forbidden", " 403", "Not enough permissions", "Traceback"):
        assert sign not in log, f"the operator logged {sign!r}:\n{log[-4000:]}"
