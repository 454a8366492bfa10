"""observe() + the invariant engine on each way real deployments label TiKV's series (reference/
deployments.md §3), against the simulator and the platform's real Prometheus: tiup, tidb-operator's
TidbMonitor, and kube-prometheus, whose labels Prometheus itself makes from its scrape config."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness.kube import eventually
from harness.operator_process import SimulatedCluster, start_simulated_cluster
from harness.prometheus import Prometheus, ScrapeTargets, kubernetes_targets
from harness.stack import DATA_DELAY_S

from tests.integration.probes.test_probes import FAST_PD, Findings, check, cluster_spec, until, verdicts_are
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_sim.cluster_model import InstanceLabel

CONVENTIONS = {
    "tiup": InstanceLabel.STATUS_ADDRESS,
    "tidbmonitor": InstanceLabel.POD_NAME,
    "kube-prometheus": InstanceLabel.POD_LABEL,
}


@pytest.fixture(params=list(CONVENTIONS))
def deployed(request: pytest.FixtureRequest, prometheus: Prometheus,
             prom_targets: ScrapeTargets) -> Iterator[tuple[str, SimulatedCluster]]:
    convention = CONVENTIONS[request.param]
    targets = prom_targets
    if convention is InstanceLabel.POD_LABEL:
        targets = kubernetes_targets(prometheus, prom_targets.labels["test_id"])
    cluster = start_simulated_cluster(prometheus, targets, instance_label=convention, timing=FAST_PD, tiflash=1)
    yield request.param, cluster
    cluster.sim.__exit__(None, None, None)
    targets.remove()


def spec_for(cluster: SimulatedCluster, prometheus: Prometheus, window: str = "5s") -> TiKVClusterSpec:
    spec = cluster_spec(cluster.pd_url, prometheus.url, cluster.targets.labels)
    return spec.model_copy(update={"prometheus": spec.prometheus.model_copy(update={"rate_window": window})})


def test_each_convention_gives_disk_and_latency_verdicts_for_every_store(
    deployed: tuple[str, SimulatedCluster], prometheus: Prometheus,
) -> None:
    convention, cluster = deployed
    cluster.fault(kind="disk", store=1, percent=85)
    cluster.fault(kind="latency", store=2, p99_ms=300)
    # The union queries: a store's raft series and PD's leader-gated gauges, keyed the same way.
    cluster.fault(kind="raft-log-lag", store=3, entries=9000)
    cluster.fault(kind="regions", **{"down-peer": 4})
    spec = spec_for(cluster, prometheus)
    expected = {("low_disk_space", "1"): "violated", ("low_disk_space", "2"): "ok", ("low_disk_space", "3"): "ok",
                ("high_latency", "1"): "ok", ("high_latency", "2"): "violated", ("high_latency", "3"): "ok",
                ("raft_log_lag", "1"): "ok", ("raft_log_lag", "3"): "violated", ("region_down_peer", ""): "violated",
                ("region_miss_peer", ""): "ok", ("critical_error", "2"): "ok", ("write_stall", "2"): "ok"}

    def settled(findings: Findings) -> bool:
        # The first windows after the fault still hold the fast requests from before it.
        latency = findings.get(("high_latency", "2"))
        return verdicts_are(expected)(findings) and latency is not None and latency.evidence["p99Seconds"] > 0.29

    findings = until(spec, settled, f"disk and latency verdicts under {convention}")

    pods = {s["id"]: s.get("pod", "") for s in cluster.stores()}
    disk = findings[("low_disk_space", "1")].evidence
    assert disk["usedRatio"] == pytest.approx(0.85, abs=1e-6)
    if convention == "tiup":
        assert disk["key"] == cluster.stores()[0]["status_address"]
    else:
        assert disk["key"] == pods[1] == "basic-tikv-0"
    if convention == "kube-prometheus":
        # Prometheus' relabeling made these, and instance is the pod's address, not anything PD knows.
        series = disk["series"]
        assert (series["pod"], series["namespace"], series["container"]) == ("basic-tikv-0", "tidb", "tikv")
        assert "instance" not in series  # aggregated away: it changes with every pod restart
    assert findings[("high_latency", "2")].evidence["p99Seconds"] == pytest.approx(0.3, abs=0.01)
    # The TiFlash store is judged by PD only: no latency or disk verdict, and no "unknown" noise.
    tiflash = next(s["id"] for s in cluster.stores() if s.get("engine") == "tiflash")
    assert findings[("store_down", str(tiflash))].verdict == "ok"
    assert ("low_disk_space", str(tiflash)) not in findings
    assert not [f for f in findings.values() if f.blind]


def test_kube_prometheus_restart_changes_instance_and_the_store_is_still_judged(
    prometheus: Prometheus, prom_targets: ScrapeTargets,
) -> None:
    targets = kubernetes_targets(prometheus, prom_targets.labels["test_id"])
    cluster = start_simulated_cluster(prometheus, targets, instance_label=InstanceLabel.POD_LABEL, timing=FAST_PD)
    try:
        spec = spec_for(cluster, prometheus, window="30s")
        until(spec, verdicts_are({("high_latency", "1"): "ok", ("low_disk_space", "1"): "ok"}), "store 1 judged")
        before = cluster.stores()[0]["instance"]
        cluster.fault(kind="restart-store", store=1, downtime=1.0)
        eventually(lambda: cluster.stores()[0]["instance"] != before, timeout=10, what="store 1 on a new pod IP")
        # Both pod IPs' series inside the rate window: the old one's last samples and the new one's first.
        both = ('count(count by (instance) (rate(tikv_grpc_msg_duration_seconds_bucket'
                f'{{pod="basic-tikv-0",test_id="{targets.labels["test_id"]}"}}[30s])))')
        eventually(lambda: (r := prometheus.query(both)) and r[0]["value"][1] == "2", timeout=30 + DATA_DELAY_S,
                   what="the old and the new instance of store 1 in one rate window")
        for _ in range(4):
            _, findings = check(spec)
            # They add up instead of splitting the store in two (which would read as ambiguous).
            for name in ("high_latency", "low_disk_space", "store_down"):
                assert findings[(name, "1")].verdict == "ok", findings[(name, "1")].message
    finally:
        cluster.sim.__exit__(None, None, None)
        targets.remove()


def test_a_replacement_store_on_the_address_of_an_offline_one_is_judged_on_every_check(
    prometheus: Prometheus, prom_targets: ScrapeTargets,
) -> None:
    cluster = start_simulated_cluster(prometheus, prom_targets, instance_label=InstanceLabel.POD_NAME,
                                      timing=FAST_PD)
    try:
        cluster.fault(kind="replace-store", store=1)
        new = max(int(s["id"]) for s in cluster.stores())
        cluster.fault(kind="disk", store=new, percent=90)
        spec = spec_for(cluster, prometheus)
        until(spec, verdicts_are({("low_disk_space", str(new)): "violated"}), "the replacement judged")
        for _ in range(6):  # PD lists the two stores in a different order on every call
            _, findings = check(spec)
            assert findings[("low_disk_space", str(new))].verdict == "violated"
            assert findings[("low_disk_space", "1")].cause == "inhibited"
            assert findings[("store_down", "1")].verdict == "ok"  # Offline: being removed
    finally:
        cluster.sim.__exit__(None, None, None)
