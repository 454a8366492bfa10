"""Stack conformance: the same simulated clusters give the same verdicts on every Prometheus release the
platform can run (2.42, 2.53, 3.5, VictoriaMetrics, asked
through the cluster version's /select/0/prometheus path), and tickets page through every Alertmanager release
(0.25, 0.28, 0.33). The suite runs on the platform's release; this module starts the OTHER releases beside it
(harness.stack: same scrape configuration and file_sd folder, own port and data), so each one costs one story,
not a suite (docs/monitoring-stacks.md).

The verdicts are asked as the operator's timer asks them (observe() + the engine) of both the platform's and the
other release, one cluster per label convention, every Prometheus-reading invariant at once (disk, latency, the
raft and storage union, the PD leader gate with stale follower gauges, a custom invariant); they must agree."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness.kube import Cli, eventually
from harness.operator_process import (
    OperatorProcess,
    SimulatedCluster,
    start_simulated_cluster,
    wait_for_phase,
    wait_for_ticket,
)
from harness.platform import PlatformInfo
from harness.prometheus import Prometheus, ScrapeTargets, kubernetes_targets
from harness.stack import ALERTMANAGER_RELEASES, PROMETHEUS_RELEASES, ExtraPrometheus, PathPrefixProxy, stacks

from tests.integration.probes.test_probes import FAST_PD, Findings, check
from tests.support.alertmanager import start_private_alertmanager
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_sim.cluster_model import InstanceLabel

StartOperator = Callable[..., OperatorProcess]
# The platform's releases, as hack/test and `make test` start it ($TIKV_*_RELEASE, else the defaults).
PLATFORM_PROMETHEUS = os.environ.get("TIKV_PROMETHEUS_RELEASE") or stacks().DEFAULT_PROMETHEUS
PLATFORM_ALERTMANAGER = os.environ.get("TIKV_ALERTMANAGER_RELEASE") or stacks().DEFAULT_ALERTMANAGER
OTHER_PROMETHEUS = [r for r in PROMETHEUS_RELEASES if r != PLATFORM_PROMETHEUS]
# The oldest and the newest: the releases between them changed nothing the operator uses.
OTHER_ALERTMANAGER = [r for r in (ALERTMANAGER_RELEASES[0], ALERTMANAGER_RELEASES[-1]) if r != PLATFORM_ALERTMANAGER]
CONVENTIONS = {
    "tiup": InstanceLabel.STATUS_ADDRESS,
    "tidbmonitor": InstanceLabel.POD_NAME,
    "kube-prometheus": InstanceLabel.POD_LABEL,
}
# VictoriaMetrics answers 30 s behind (-search.latencyOffset): its verdicts come that much later.
AGREEMENT_TIMEOUT_S = 120.0
CUSTOM = {"name": "l0_files_high", "scope": "store", "severity": "critical",
          "expr": "max without (job) (tikv_scheduler_l0_avg{$matchers}) > 50"}
EXPECTED = {
    ("low_disk_space", "1"): "violated", ("low_disk_space", "2"): "ok", ("low_disk_space", "3"): "ok",
    ("high_latency", "1"): "ok", ("high_latency", "2"): "violated", ("high_latency", "3"): "ok",
    ("raft_log_lag", "3"): "violated", ("raft_log_lag", "1"): "ok",
    ("write_stall", "1"): "violated", ("write_stall", "2"): "ok",
    ("critical_error", "2"): "violated", ("critical_error", "1"): "ok",
    # Through the leader gate: the followers' stale 500 must not count, the leader's 4 must.
    ("region_down_peer", ""): "violated", ("region_miss_peer", ""): "ok",
    ("pd_leader_flapping", ""): "ok", ("prometheus_unreachable", ""): "ok",
    ("l0_files_high", "3"): "violated", ("l0_files_high", "1"): "ok",
}


@pytest.fixture(scope="module", params=OTHER_PROMETHEUS)
def other_release(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def other_prometheus(other_release: str, platform: PlatformInfo,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    assert platform.prometheus_release == PLATFORM_PROMETHEUS, (
        f"the platform runs Prometheus {platform.prometheus_release}, the module was parametrized for "
        f"{PLATFORM_PROMETHEUS}: start both with the same $TIKV_PROMETHEUS_RELEASE")
    directory = tmp_path_factory.mktemp(f"prometheus-{other_release}")
    with ExtraPrometheus(other_release, platform.file_sd_dir, directory) as extra:
        if other_release != "victoriametrics":
            yield extra.prometheus
            return
        # Asked as the cluster version is, under /select/<tenant>/prometheus: the client keeps a URL's path.
        with PathPrefixProxy(extra.url) as proxy:
            assert proxy.url.endswith("/select/0/prometheus")
            yield Prometheus(url=proxy.url, file_sd_dir=platform.file_sd_dir)


@pytest.fixture
def clusters(request: pytest.FixtureRequest, prometheus: Prometheus, other_prometheus: Prometheus
             ) -> Iterator[dict[str, SimulatedCluster]]:
    """One simulated cluster per label convention, scraped by both Prometheuses."""
    started: dict[str, SimulatedCluster] = {}
    name = request.node.name.split("[")[0][-30:].replace("_", "-") + "-" + str(os.getpid())
    try:
        for convention, label in CONVENTIONS.items():
            test_id = f"{name}-{convention}"
            targets = (kubernetes_targets(prometheus, test_id) if label is InstanceLabel.POD_LABEL else
                       ScrapeTargets(path=prometheus.file_sd_dir / f"{test_id}.json", labels={"test_id": test_id}))
            cluster = start_simulated_cluster(prometheus, targets, instance_label=label, timing=FAST_PD)
            started[convention] = cluster
            groups = cluster.sim.call(cluster.sim.simulator.target_groups)
            other_prometheus.wait_for_addresses({a for g in groups for a in g["targets"]}, timeout=60)
        yield started
    finally:
        for cluster in started.values():
            cluster.sim.__exit__(None, None, None)
            cluster.targets.remove()


def spec_for(cluster: SimulatedCluster, prometheus: Prometheus) -> TiKVClusterSpec:
    return TiKVClusterSpec.model_validate({
        "pd": {"url": cluster.pd_url, "timeout": "2s"},
        "prometheus": {"url": prometheus.url, "labelMatchers": cluster.targets.labels, "timeout": "5s",
                       "rateWindow": "5s"},
        # Wider than VictoriaMetrics' 30 s offset: a one-off error is in both releases' windows for a while.
        "invariants": {"write_stall": {"window": "60s"}, "critical_error": {"window": "60s"},
                       "pd_leader_flapping": {"window": "30s"}},
        "customInvariants": [CUSTOM],
    })


def verdicts(findings: Findings) -> dict[tuple[str, str], str]:
    return {key: f.verdict for key, f in sorted(findings.items())}


def agreed(specs: dict[str, tuple[TiKVClusterSpec, TiKVClusterSpec]]
           ) -> dict[str, tuple[Findings, Findings]]:
    """Check both releases every second until, for every convention, each gives the expected verdicts and
    both give the same verdict for every identity (bounded by AGREEMENT_TIMEOUT_S)."""
    deadline = time.monotonic() + AGREEMENT_TIMEOUT_S
    last: dict[str, Any] = {}
    while True:
        answers = {c: (check(ours)[1], check(theirs)[1]) for c, (ours, theirs) in specs.items()}
        differences = {}
        for convention, (ours, theirs) in answers.items():
            wrong = {k: (ours.get(k) and ours[k].verdict, theirs.get(k) and theirs[k].verdict)
                     for k, v in EXPECTED.items()
                     if (ours.get(k) and ours[k].verdict) != v or (theirs.get(k) and theirs[k].verdict) != v}
            apart = {k: (v, verdicts(theirs).get(k)) for k, v in verdicts(ours).items() if verdicts(theirs).get(k) != v}
            if wrong or apart or verdicts(ours).keys() != verdicts(theirs).keys():
                differences[convention] = {"not as expected": wrong, "apart": apart}
        if not differences:
            return answers
        last = differences
        if time.monotonic() > deadline:
            raise AssertionError(f"no agreement within {AGREEMENT_TIMEOUT_S:g}s (platform's, other's): {last}")
        time.sleep(1)


def test_every_prometheus_reading_invariant_gives_the_same_verdicts(
    clusters: dict[str, SimulatedCluster], prometheus: Prometheus, other_prometheus: Prometheus, other_release: str,
) -> None:
    for cluster in clusters.values():
        cluster.fault(kind="disk", store=1, percent=85)
        cluster.fault(kind="latency", store=2, p99_ms=300)
        cluster.fault(kind="raft-log-lag", store=3, entries=9000)
        cluster.fault(kind="write-stall", store=1, micros=250000)
        cluster.fault(kind="critical-error", store=2)
        cluster.fault(kind="regions", member="followers", **{"miss-peer": 500, "down-peer": 500})
        cluster.fault(kind="regions", **{"down-peer": 4})
        cluster.fault(kind="l0-avg", store=3, files=60)
    specs = {c: (spec_for(cluster, prometheus), spec_for(cluster, other_prometheus)) for c, cluster in clusters.items()}

    answers = agreed(specs)

    for convention, (ours, theirs) in answers.items():
        for found in (ours, theirs):
            assert found[("low_disk_space", "1")].evidence["usedRatio"] == pytest.approx(0.85, abs=1e-6), convention
            assert found[("region_down_peer", "")].evidence["regions"] == 4, convention
            assert found[("write_stall", "1")].evidence["maxStallMicros"] == 250000, convention
        # The same store key under each convention, whatever the release made of the labels.
        assert ours[("low_disk_space", "1")].evidence["key"] == theirs[("low_disk_space", "1")].evidence["key"]
        # A verdict on old data says so (rule 25): VictoriaMetrics evaluates 30 s in the past.
        for release, found in ((PLATFORM_PROMETHEUS, ours), (other_release, theirs)):
            disk = found[("low_disk_space", "1")]
            if release == "victoriametrics":
                assert 25 <= disk.evidence["dataAgeSeconds"] <= 40, disk.evidence
                assert "Prometheus' data is" in disk.message
            else:
                assert "dataAgeSeconds" not in disk.evidence, (release, disk.evidence)


@pytest.mark.parametrize("release", OTHER_ALERTMANAGER)
def test_a_ticket_pages_and_clears_through_alertmanager(
    release: str, kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], tmp_path: Path,
) -> None:
    with start_private_alertmanager(tmp_path / "am", release=release) as private:
        am = private.client
        start_operator(extra_args=("--alertmanager-url", am.url, "--alert-resend-interval", "2s"))
        make_cluster(tikv.pd_url)
        tikv.fault(kind="stop-store", store=2)
        name = wait_for_ticket(kubectl, "store_down", "2")["metadata"]["name"]
        (alert,) = eventually(lambda: am.alerts(namespace=namespace), timeout=20,
                              what=f"the ticket's alert in Alertmanager {release}")
        assert alert["labels"] == {"alertname": "store_down", "namespace": namespace, "tikv_cluster": "basic",
                                   "store": "2", "severity": "critical", "ticket": name}
        am.wait_for_notifications(1, status="firing", timeout=20, namespace=namespace)
        tikv.fault(kind="start-store", store=2)
        wait_for_phase(kubectl, name, "Resolved")
        am.wait_for_notifications(1, status="resolved", timeout=20, namespace=namespace)

