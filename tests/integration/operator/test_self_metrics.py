"""The real Prometheus scrapes the operator's own metrics; the open-ticket gauge follows a ticket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import OperatorProcess, SimulatedCluster, wait_for_phase, wait_for_ticket
from harness.prometheus import Prometheus, ScrapeTargets


def test_prometheus_scrapes_the_operator_and_open_tickets_follow_a_ticket(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
    prometheus: Prometheus, prom_targets: ScrapeTargets,
) -> None:
    test_id = prom_targets.labels["test_id"]
    groups = tikv.sim.call(tikv.sim.simulator.target_groups)
    own = {"targets": [f"127.0.0.1:{operator.metrics_port}"], "labels": {"job": "tikv-operator"}}
    prom_targets.write([*groups, own])
    make_cluster(tikv.pd_url)

    def gauge(severity: str) -> float | None:
        result = prometheus.query(
            f'tikv_operator_open_tickets{{severity="{severity}",job="tikv-operator",test_id="{test_id}"}}')
        return float(result[0]["value"][1]) if result else None

    eventually(lambda: gauge("critical") == 0, what="the operator to be scraped with 0 critical tickets")
    tikv.fault(kind="stop-store", store=2)
    name = wait_for_ticket(kubectl, "store_down", "2")["metadata"]["name"]
    eventually(lambda: gauge("critical") == 1, what="1 open critical ticket in Prometheus")
    tikv.fault(kind="start-store", store=2)
    wait_for_phase(kubectl, name, "Resolved")
    eventually(lambda: gauge("critical") == 0, what="0 open critical tickets in Prometheus")

    checks = prometheus.query(f'tikv_operator_checks_total{{cluster="basic",test_id="{test_id}"}}')
    assert float(checks[0]["value"][1]) >= 3
    last = prometheus.query(
        f'tikv_operator_last_successful_check_timestamp_seconds{{cluster="basic",test_id="{test_id}"}}')
    assert float(last[0]["value"][1]) > 0
    text = operator.metrics()
    assert "tikv_operator_check_duration_seconds_bucket" in text
    assert name not in text  # ticket names are never labels
