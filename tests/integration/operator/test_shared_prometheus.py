"""What an SRE sees through kubectl when the Prometheus is not set up the way the operator needs: blind
is said, never Healthy (rule 14); two clusters with the same pod names are never summed; lock waits do
not page as latency."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.kube import Cli, eventually
from harness.operator_process import (
    OperatorProcess,
    SimulatedCluster,
    open_tickets,
    start_simulated_cluster,
    still,
    wait_for_ticket,
)
from harness.prometheus import Prometheus, ScrapeTargets, kubernetes_targets

from tikv_sim.cluster_model import InstanceLabel


def condition(kubectl: Cli, type_: str, name: str = "basic") -> dict[str, Any] | None:
    status = kubectl.json("get", "tkc", name).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


def metrics_condition(kubectl: Cli, reason: str) -> dict[str, Any]:
    return eventually(lambda: (c := condition(kubectl, "MetricsAvailable")) and c["reason"] == reason and c,
                      timeout=40, what=f"MetricsAvailable with reason {reason}")


@pytest.fixture
def two_namespaces(prometheus: Prometheus, prom_targets: ScrapeTargets) -> Iterator[SimulatedCluster]:
    """Clusters `basic` in namespaces tidb and staging, scraped by kube-prometheus: same pod names."""
    targets = kubernetes_targets(prometheus, prom_targets.labels["test_id"])
    cluster = start_simulated_cluster(prometheus, targets, instance_label=InstanceLabel.POD_LABEL,
                                      namespaces=("tidb", "staging"))
    yield cluster
    cluster.sim.__exit__(None, None, None)
    targets.remove()


def test_two_clusters_with_the_same_pod_names_are_never_merged_and_the_fix_is_named(
    kubectl: Cli, operator: OperatorProcess, two_namespaces: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    sim = two_namespaces.sim
    ours, theirs = "tidb/basic", "staging/basic"
    # Their disk is full; ours is not. Summed, store 1 would read (30 + 95) / 2 = 62.5 % (or worse).
    sim.fault({"fault": "disk", "cluster": theirs, "store": 1, "percent": 95})
    make_cluster(sim.simulator.pd_url(ours))

    blind = metrics_condition(kubectl, "AmbiguousSeries")
    assert blind["status"] == "False"
    assert "they differ in namespace (staging, tidb)" in blind["message"]
    assert blind["message"].endswith('e.g. {namespace: "tidb"}')
    status = kubectl.json("get", "tkc", "basic")["status"]
    assert status["health"] == "Unknown"
    assert "blind: " in status["message"]
    still(lambda: open_tickets(kubectl, "low_disk_space") == [], seconds=3)

    # The fix the message names.
    matchers = {"namespace": "tidb", **two_namespaces.targets.labels}
    kubectl("patch", "tkc", "basic", "--type=merge", "-p",
            json.dumps({"spec": {"prometheus": {"labelMatchers": matchers}}}))
    metrics_condition(kubectl, "SeriesFound")
    eventually(lambda: kubectl.json("get", "tkc", "basic")["status"]["health"] == "Healthy", timeout=30,
               what="Healthy once the matchers pick one cluster")
    sim.fault({"fault": "disk", "cluster": ours, "store": 2, "percent": 85})
    opened = wait_for_ticket(kubectl, "low_disk_space", "2")
    assert opened["status"]["evidence"]["series"]["namespace"] == "tidb"


def test_prometheus_without_the_pod_label_is_blind_and_says_which_keys_it_has(
    kubectl: Cli, operator: OperatorProcess, prometheus: Prometheus, prom_targets: ScrapeTargets,
    make_cluster: Callable[..., Any],
) -> None:
    """A kube-prometheus style deployment (instance = pod IP) scraped without the relabeling that keeps
    the pod name: before this operator read the `pod` label, every cluster looked like this, and Healthy."""
    cluster = start_simulated_cluster(prometheus, prom_targets, instance_label=InstanceLabel.POD_LABEL)
    try:
        make_cluster(cluster.pd_url)
        # Once Prometheus holds a rate window of samples, the message names the keys it does have.
        blind = eventually(lambda: (c := metrics_condition(kubectl, "NoSeries")) and "which match no PD store"
                           in c["message"] and c, timeout=40, what="the keys Prometheus has, in the message")
        assert blind["status"] == "False"
        assert "127.0.0.1:" in blind["message"]  # the instances Prometheus does have
        status = kubectl.json("get", "tkc", "basic")["status"]
        assert status["health"] == "Unknown"
        assert status["storesUp"] == "3/3"
        ready = condition(kubectl, "Ready")
        assert ready is not None
        assert (ready["status"], ready["reason"]) == ("False", "Unknown")
    finally:
        cluster.sim.__exit__(None, None, None)


def test_lock_wait_latency_alone_opens_no_high_latency_but_kv_get_latency_does(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
    prometheus: Prometheus,
) -> None:
    make_cluster(tikv.pd_url, invariants={"high_latency": {"gracePeriod": "2s"}},
                 prometheus={**_prometheus_spec(prometheus, tikv), "rateWindow": "10s"})
    eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("health") == "Healthy",
               timeout=40, what="a Healthy cluster")
    tikv.fault(kind="latency", store=1, type="kv_pessimistic_lock", p99_ms=2000)

    # The scenario is real: the query the operator used to send reads store 1 as slow.
    instance = tikv.stores()[0]["instance"]
    mixed = ('histogram_quantile(0.99, sum by (instance, le) (rate(tikv_grpc_msg_duration_seconds_bucket'
             f'{{type!="kv_gc",test_id="{tikv.targets.labels["test_id"]}",instance="{instance}"}}[10s])))')
    eventually(lambda: (r := prometheus.query(mixed)) and float(r[0]["value"][1]) > 0.5, timeout=30,
               what="the old mixed query to read store 1 above 500 ms")
    still(lambda: open_tickets(kubectl, "high_latency") == [], seconds=6)

    tikv.fault(kind="latency", store=1, p99_ms=300)
    opened = wait_for_ticket(kubectl, "high_latency", "1", timeout=40)
    evidence = opened["status"]["evidence"]
    assert evidence["type"] not in ("kv_pessimistic_lock", "coprocessor_stream")
    assert 0.1 < evidence["p99Seconds"] <= 0.3  # the window still mixes in the fast requests from before
    assert f" ms ({evidence['type']}) > 100 ms" in opened["status"]["message"]


def _prometheus_spec(prometheus: Prometheus, tikv: SimulatedCluster) -> dict[str, Any]:
    return {"url": prometheus.url, "labelMatchers": dict(tikv.targets.labels), "timeout": "2s"}
