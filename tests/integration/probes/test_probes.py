"""observe() + the invariant engine against the simulator and the platform's real Prometheus: each
invariant turns violated when its fault is injected and ok when it is removed, with evidence that
matches what was set."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from harness.prometheus import Prometheus, ScrapeTargets
from harness.stack import DATA_DELAY_S

from tests.unit.adapters.local_servers import closed_port
from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.observation import Observation
from tikv_operator.checks.core.settings import ClusterSettings, configure
from tikv_operator.checks.probe import observe
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.embedded import SimulatorThread
from tikv_sim.file_sd import write_atomically
from tikv_sim.simulator import SimConfig
from tikv_sim.store_model import Timing

# PD's transitions, compressed: Disconnected 1 s and Down 2 s after the last heartbeat.
FAST_PD = Timing(heartbeat_interval=0.5, disconnect_after=1, unhealthy_after=1.5, down_after=2)
POLL_TIMEOUT_S = 30.0 + DATA_DELAY_S
GIB = 2**30
Findings = dict[tuple[str, str], Finding]


def cluster_spec(pd_url: str, prometheus_url: str, matchers: dict[str, str], pd_timeout: str = "2s") -> TiKVClusterSpec:
    return TiKVClusterSpec.model_validate({
        "pd": {"url": pd_url, "timeout": pd_timeout},
        "prometheus": {"url": prometheus_url, "labelMatchers": matchers, "timeout": "5s"},
    })


def check(spec: TiKVClusterSpec) -> tuple[Observation, Findings]:
    """One check, as the operator's timer runs it."""
    observation = asyncio.run(observe("basic", ClusterSettings.of(spec), None, datetime.now(UTC)))
    return observation, {(f.invariant, f.store): f for f in evaluate(observation, configure(spec))}


def _verdicts(findings: Findings) -> dict[str, str]:
    return {f"{name}/{store}" if store else name: f.verdict for (name, store), f in sorted(findings.items())}


def until(spec: TiKVClusterSpec, holds: Callable[[Findings], bool], what: str) -> Findings:
    """Check every half second until `holds` (Prometheus scrapes every second; rate() needs two)."""
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        observation, findings = check(spec)
        if holds(findings):
            return findings
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: not seen within {POLL_TIMEOUT_S:g}s; last verdicts {_verdicts(findings)}, "
                f"PD error {observation.pd.error!r}, Prometheus error {observation.metrics.error!r}"
            )
        time.sleep(0.5)


def verdicts_are(expected: dict[tuple[str, str], str]) -> Callable[[Findings], bool]:
    return lambda findings: all(
        key in findings and findings[key].verdict == verdict for key, verdict in expected.items()
    )


@contextmanager
def scraped(
    sim: SimulatorThread, prometheus: Prometheus, targets: ScrapeTargets, skip_instances: frozenset[str] = frozenset()
) -> Iterator[None]:
    """Publish the simulator's targets (but `skip_instances`) to Prometheus and wait for a first scrape."""
    groups = [g for g in sim.call(sim.simulator.target_groups) if g["labels"]["instance"] not in skip_instances]
    write_atomically(targets.path, groups)
    prometheus.wait_for_targets({g["labels"]["instance"] for g in groups}, timeout=30)
    yield


def stores(sim: SimulatorThread) -> list[dict[str, Any]]:
    return list(sim.summary()["clusters"][0]["stores"])


@pytest.fixture
def sim(prom_targets: ScrapeTargets) -> Iterator[SimulatorThread]:
    config = SimConfig(stores=3, p99_ms=10, timing=FAST_PD, control_port=None, extra_labels=prom_targets.labels,
                       grpc_series="lean")
    with SimulatorThread(config) as running:
        yield running


@pytest.fixture
def spec(sim: SimulatorThread, prometheus: Prometheus, prom_targets: ScrapeTargets) -> TiKVClusterSpec:
    return cluster_spec(sim.pd_url, prometheus.url, prom_targets.labels)


# --- store invariants -----------------------------------------------------------------------------


def test_store_down(sim: SimulatorThread, spec: TiKVClusterSpec, prometheus: Prometheus,
                    prom_targets: ScrapeTargets) -> None:
    with scraped(sim, prometheus, prom_targets):
        until(spec, verdicts_are({("store_down", s): "ok" for s in "123"} | {("high_latency", "3"): "ok"}),
              "every store Up and store 3 measured")

        sim.fault({"fault": "stop-store", "store": 3})
        down = until(spec, lambda f: f[("store_down", "3")].evidence.get("stateName") == "Down", "store 3 Down")

        finding = down[("store_down", "3")]
        assert finding.verdict == "violated"
        assert finding.severity == "critical"
        assert finding.evidence["address"] == stores(sim)[2]["address"]
        assert finding.message.startswith(f"store 3 ({stores(sim)[2]['address']}) is Down: no heartbeat for ")
        # A store that is not Up has its metric invariants inhibited, not judged on stale data.
        assert down[("high_latency", "3")].verdict == "unknown"
        assert down[("high_latency", "3")].evidence["inhibitedBy"] == "store_down"
        assert down[("low_disk_space", "3")].verdict == "unknown"
        assert down[("store_down", "1")].verdict == "ok"

        sim.fault({"fault": "start-store", "store": 3})
        healed = until(spec, verdicts_are({("store_down", "3"): "ok"}), "store 3 Up again")
        assert healed[("store_down", "3")].evidence["stateName"] == "Up"


def test_an_offline_store_is_being_removed_not_down(sim: SimulatorThread, spec: TiKVClusterSpec) -> None:
    sim.fault({"fault": "store-state", "store": 2, "state": "Offline"})
    _, findings = check(spec)

    assert findings[("store_down", "2")].verdict == "ok"
    assert findings[("store_down", "2")].evidence["stateName"] == "Offline"
    assert findings[("low_disk_space", "2")].cause == "inhibited"

    sim.fault({"fault": "store-state", "store": 2, "state": "Up"})
    _, findings = check(spec)
    assert findings[("store_down", "2")].verdict == "ok"


def test_low_disk_space(sim: SimulatorThread, spec: TiKVClusterSpec, prometheus: Prometheus,
                        prom_targets: ScrapeTargets) -> None:
    with scraped(sim, prometheus, prom_targets):
        before = until(spec, verdicts_are({("low_disk_space", s): "ok" for s in "123"}), "every disk ok")
        assert before[("low_disk_space", "2")].evidence["usedRatio"] == pytest.approx(0.315)

        sim.fault({"fault": "disk", "store": 2, "percent": 85})
        full = until(spec, verdicts_are({("low_disk_space", "2"): "violated"}), "store 2's disk full")

        evidence = full[("low_disk_space", "2")].evidence
        assert evidence["usedRatio"] == pytest.approx(0.85, abs=1e-6)
        assert evidence["thresholdRatio"] == 0.7
        assert evidence["capacityBytes"] == 100 * GIB
        assert evidence["availableBytes"] == pytest.approx(15 * GIB, abs=1)
        assert evidence["key"] == stores(sim)[1]["instance"]
        assert 'tikv_store_size_bytes{type=~"capacity|available"' in evidence["query"]
        assert full[("low_disk_space", "2")].message.startswith("store 2 disk 85.0% used > 70%")
        assert full[("low_disk_space", "1")].verdict == "ok"

        sim.fault({"fault": "disk", "store": 2, "percent": 40})
        freed = until(spec, verdicts_are({("low_disk_space", "2"): "ok"}), "store 2's disk freed")
        assert freed[("low_disk_space", "2")].evidence["usedRatio"] == pytest.approx(0.40, abs=1e-6)


def test_high_latency(sim: SimulatorThread, spec: TiKVClusterSpec, prometheus: Prometheus,
                      prom_targets: ScrapeTargets) -> None:
    # Set before the first scrape, so every rate() window holds only the slow distribution and the p99
    # comes out at the set value. 120 ms keeps the bulk of the slow requests under the 100 ms threshold,
    # so the violation clears a few seconds after the fault is lifted instead of a whole 1m window later.
    sim.fault({"fault": "latency", "store": 1, "p99_ms": 120})
    with scraped(sim, prometheus, prom_targets):
        slow = until(spec, verdicts_are({("high_latency", "1"): "violated", ("high_latency", "2"): "ok",
                                         ("high_latency", "3"): "ok"}), "store 1 slow, the others fast")

        evidence = slow[("high_latency", "1")].evidence
        # histogram_quantile interpolates inside the bucket (0.1024, 0.2048] (TiKV >= 6.3 buckets); the
        # simulator shapes each tick to land on the set value within 1 % of the bucket width.
        assert evidence["p99Seconds"] == pytest.approx(0.120, abs=0.01 * 0.1024)
        assert evidence["thresholdSeconds"] == 0.1
        assert evidence["key"] == stores(sim)[0]["instance"]
        assert 'type=~"kv_get|' in evidence["query"]
        assert evidence["type"] in ("kv_get", "kv_batch_get", "kv_scan", "kv_prewrite", "kv_commit", "coprocessor")
        assert slow[("high_latency", "1")].severity == "warning"
        assert slow[("high_latency", "2")].evidence["p99Seconds"] == pytest.approx(0.010, abs=0.01 * 0.0064)

        sim.fault({"fault": "latency", "store": 1, "p99_ms": 10})
        fast = until(spec, verdicts_are({("high_latency", "1"): "ok"}), "store 1 fast again")
        assert fast[("high_latency", "1")].evidence["p99Seconds"] <= 0.1


def test_absent_metrics_are_unknown_not_ok(sim: SimulatorThread, spec: TiKVClusterSpec, prometheus: Prometheus,
                                           prom_targets: ScrapeTargets) -> None:
    """Store 3 runs and PD lists it Up, but Prometheus never scraped it."""
    third = stores(sim)[2]
    with scraped(sim, prometheus, prom_targets, skip_instances=frozenset({third["instance"]})):
        findings = until(spec, verdicts_are({("high_latency", "1"): "ok", ("low_disk_space", "2"): "ok"}),
                         "stores 1 and 2 measured")

    for invariant in ("high_latency", "low_disk_space"):
        finding = findings[(invariant, "3")]
        assert finding.verdict == "unknown", finding
        metric = "gRPC latency" if invariant == "high_latency" else "tikv_store_size_bytes"
        assert finding.message == (f"no {metric} series in Prometheus for store 3 "
                                   f"(status address {third['status_address']})")
        assert finding.blind
    assert findings[("store_down", "3")].verdict == "ok"
    assert findings[("prometheus_unreachable", "")].verdict == "ok"


def test_tidb_operator_pod_name_instances_map_to_stores(prometheus: Prometheus, prom_targets: ScrapeTargets) -> None:
    config = SimConfig(stores=2, name="basic", namespace="prod", instance_label=InstanceLabel.POD_NAME,
                       control_port=None, extra_labels=prom_targets.labels, grpc_series="lean")
    with SimulatorThread(config) as sim:
        sim.fault({"fault": "disk", "store": 1, "percent": 72})
        # The matchers a user of a shared TidbMonitor Prometheus would write.
        spec = cluster_spec(sim.pd_url, prometheus.url,
                            {**prom_targets.labels, "tidb_cluster": "prod-basic", "component": "tikv"})
        with scraped(sim, prometheus, prom_targets):
            findings = until(spec, verdicts_are({("low_disk_space", "1"): "violated", ("low_disk_space", "2"): "ok",
                                                 ("high_latency", "1"): "ok", ("high_latency", "2"): "ok"}),
                             "pod-name instances judged")
        addresses = [s["address"] for s in stores(sim)]

    assert addresses[0].startswith("basic-tikv-0.basic-tikv-peer.prod.svc:")
    assert findings[("low_disk_space", "1")].evidence["key"] == "basic-tikv-0"
    assert findings[("low_disk_space", "1")].evidence["usedRatio"] == pytest.approx(0.72, abs=1e-6)
    assert findings[("low_disk_space", "2")].evidence["key"] == "basic-tikv-1"
    assert findings[("high_latency", "2")].evidence["key"] == "basic-tikv-1"


# --- cluster-wide invariants ----------------------------------------------------------------------


PD_ERROR = "GET /pd/api/v1/stores: "


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param({"mode": "not-bootstrapped"},
                     PD_ERROR + "HTTP 500 Internal Server Error: [PD:cluster:ErrNotBootstrapped]"
                     "TiKV cluster not bootstrapped, please start TiKV first", id="not-bootstrapped"),
        pytest.param({"mode": "500"},
                     PD_ERROR + "HTTP 500 Internal Server Error: [PD:apiutil:ErrRedirect]redirect failed", id="500"),
        pytest.param({"mode": "malformed"}, PD_ERROR + "/stores is not JSON: ", id="malformed"),
        pytest.param({"mode": "wrong-shape"}, PD_ERROR + "/stores is not an object with a list of stores",
                     id="wrong-shape"),
        pytest.param({"mode": "unreachable"}, PD_ERROR + "cannot connect: Connection refused", id="unreachable"),
        pytest.param({"mode": "hang", "hang_seconds": 30}, PD_ERROR + "no answer within 1s", id="hang"),
    ],
)
def test_pd_unreachable(sim: SimulatorThread, prometheus: Prometheus, prom_targets: ScrapeTargets,
                        fault: dict[str, Any], error: str) -> None:
    spec = cluster_spec(sim.pd_url, prometheus.url, prom_targets.labels, pd_timeout="1s")
    _, findings = check(spec)
    assert findings[("pd_unreachable", "")].verdict == "ok"

    sim.fault({"fault": "pd", **fault})
    observation, findings = check(spec)

    finding = findings[("pd_unreachable", "")]
    assert finding.verdict == "violated"
    assert finding.evidence["error"].startswith(error), finding.evidence["error"]
    assert finding.evidence["url"] == sim.pd_url
    assert finding.message.startswith(f"PD at {sim.pd_url} does not answer correctly: {error}")
    # No store is judged while PD cannot list them: their tickets stay as they are.
    assert [key for key in findings if key[0] == "store_down"] == []
    assert observation.metrics.reachable  # Prometheus still answered in the same check

    sim.fault({"fault": "pd", "mode": "ok"})
    _, findings = check(spec)
    assert findings[("pd_unreachable", "")].verdict == "ok"


def test_prometheus_unreachable(sim: SimulatorThread, prometheus: Prometheus, prom_targets: ScrapeTargets) -> None:
    nobody = f"http://127.0.0.1:{closed_port()}"
    _, findings = check(cluster_spec(sim.pd_url, nobody, prom_targets.labels))

    finding = findings[("prometheus_unreachable", "")]
    assert finding.verdict == "violated"
    assert finding.evidence == {"url": nobody, "error": "cannot connect: Connection refused"}
    assert finding.message == f"Prometheus at {nobody} does not answer correctly: cannot connect: Connection refused"
    assert findings[("low_disk_space", "1")].verdict == "unknown"  # no data is not "ok"
    assert findings[("high_latency", "1")].message == "Prometheus did not answer: cannot connect: Connection refused"
    assert findings[("store_down", "1")].verdict == "ok"  # PD still answered

    _, findings = check(cluster_spec(sim.pd_url, prometheus.url, prom_targets.labels))
    assert findings[("prometheus_unreachable", "")].verdict == "ok"
    assert findings[("prometheus_unreachable", "")].evidence == {"url": prometheus.url}
