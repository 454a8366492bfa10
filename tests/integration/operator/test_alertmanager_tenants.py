"""Tenants that share an Alertmanager: one namespace's spec.alertmanager never stops another's pages."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import OperatorProcess, SimulatedCluster, cluster_manifest, wait_for_ticket
from harness.platform import PlatformInfo
from harness.prometheus import Prometheus, ScrapeTargets

from tests.support.alertmanager import Alertmanager
from tests.support.plugin import delete_custom_resources


def test_a_tenant_with_the_smallest_timeout_does_not_stop_another_tenants_pages(
    platform: PlatformInfo, kubectl_admin: Cli, kubectl: Cli, namespace: str, tikvops_crds: None,
    tikv: SimulatedCluster, make_cluster: Callable[..., Any], alertmanager: Alertmanager, prom_targets: ScrapeTargets,
    prometheus: Prometheus, tmp_path: Path,
) -> None:
    other = f"{namespace[:50]}-a{secrets.token_hex(2)}"
    kubectl_admin("create", "namespace", other)
    operator = OperatorProcess(platform.env(), (namespace, other), tmp_path / "operator.log",
                               extra_args=("--alert-resend-interval", "2s")).start()
    try:
        # Tenant A checks every second, so on a shared client its 0s would be the one in force most of the time.
        kubectl_admin.in_namespace(other).apply(cluster_manifest(
            "quiet", tikv.pd_url, prometheus.url, prom_targets.labels, interval="1s",
            alertmanager={"urls": [alertmanager.url], "timeout": "0s"}))
        make_cluster(tikv.pd_url, interval="5s", alertmanager={"urls": [alertmanager.url]})
        tikv.fault(kind="stop-store", store=2)
        name = wait_for_ticket(kubectl, "store_down", "2")["metadata"]["name"]
        eventually(lambda: alertmanager.alerts(namespace=namespace, ticket=name), timeout=30,
                   what="tenant B's alert in Alertmanager")
        alertmanager.wait_for_notifications(1, status="firing", timeout=30, namespace=namespace)

        def delivered(ns: str, cluster: str) -> dict[str, Any]:
            status = kubectl_admin.in_namespace(ns).json("get", "tkc", cluster).get("status") or {}
            return next((c for c in status.get("conditions", []) if c["type"] == "AlertsDelivered"), {})

        assert delivered(namespace, "basic").get("status") == "True"
        failing = eventually(lambda: (c := delivered(other, "quiet")).get("status") == "False" and c, timeout=30,
                             what="tenant A's own AlertsDelivered=False")
        assert "within 0s" in failing["message"]
    finally:
        for ns in (namespace, other):
            kubectl_admin.in_namespace(ns)("delete", "tikvclusters", "--all", "--timeout=30s", check=False)
        code = operator.stop()
        log = operator.log()
        delete_custom_resources(kubectl_admin, other)
        kubectl_admin("delete", "namespace", other, "--wait=false", check=False)
    assert code == 0, log
    assert "Traceback" not in log, log
