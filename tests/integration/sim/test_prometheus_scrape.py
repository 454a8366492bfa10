"""The real Prometheus, scraping the simulator, computes through PromQL the values that were set."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.prometheus import until_shown

from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.embedded import SimulatorThread
from tikv_sim.file_sd import write_atomically
from tikv_sim.latency import GRPC_BUCKETS
from tikv_sim.simulator import SimConfig

pytestmark = pytest.mark.integration

QUERY_TIMEOUT_S = 60.0


def _eventually(read: Callable[[], dict[str, float]], ready: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    """Poll a query until it holds what is expected (Prometheus needs a few scrapes for rate())."""
    return dict(until_shown(read, ready, "the expected values", QUERY_TIMEOUT_S))


def _by_instance(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in result}


@pytest.fixture
def running_sim(prometheus: Any, prom_targets: Any) -> Iterator[tuple[SimulatorThread, str]]:
    """Three stores; store 2's disk at 85 %, store 1's p99 at 250 ms, set BEFORE the first scrape
    so every rate window holds only the configured distribution."""
    config = SimConfig(stores=3, p99_ms=10, control_port=None, extra_labels=prom_targets.labels)
    with SimulatorThread(config) as sim:
        sim.fault({"fault": "disk", "store": 2, "percent": 85})
        sim.fault({"fault": "latency", "store": 1, "p99_ms": 250})
        sim.fault({"fault": "regions", "miss-peer": 150})
        write_atomically(prom_targets.path, sim.call(sim.simulator.target_groups))
        instances = {g["labels"]["instance"] for g in sim.call(sim.simulator.target_groups)}
        prometheus.wait_for_targets(instances, timeout=30)
        yield sim, prom_targets.labels["test_id"]


def test_disk_used_ratio_through_promql(prometheus: Any, running_sim: tuple[SimulatorThread, str]) -> None:
    sim, test_id = running_sim
    size = f'tikv_store_size_bytes{{test_id="{test_id}",type="%s"}}'
    expr = (
        f"(sum by (instance) ({size % 'capacity'}) - sum by (instance) ({size % 'available'}))"
        f" / sum by (instance) ({size % 'capacity'})"
    )
    stores = sim.summary()["clusters"][0]["stores"]
    values = _eventually(lambda: _by_instance(prometheus.query(expr)), lambda v: len(v) == 3)
    assert values[stores[1]["instance"]] == pytest.approx(0.85, abs=1e-9)
    assert values[stores[0]["instance"]] == pytest.approx(0.30, abs=1e-9)


def test_p99_latency_through_histogram_quantile(prometheus: Any, running_sim: tuple[SimulatorThread, str]) -> None:
    sim, test_id = running_sim
    # The operator's query: every message type, kv_gc included, summed per instance.
    expr = (
        "histogram_quantile(0.99, sum by (instance, le) "
        f'(rate(tikv_grpc_msg_duration_seconds_bucket{{test_id="{test_id}"}}[1m])))'
    )
    stores = sim.summary()["clusters"][0]["stores"]
    values = _eventually(
        lambda: _by_instance(prometheus.query(expr)),
        lambda v: len(v) == 3 and all(x == x for x in v.values()),  # NaN until two scrapes
    )
    slow, normal = values[stores[0]["instance"]], values[stores[1]["instance"]]
    # Within one bucket of the set value (TiKV >= 6.3's bucket (0.2048, 0.4096] holds 250 ms) ...
    assert GRPC_BUCKETS[12] < slow <= GRPC_BUCKETS[13]
    # ... and in fact at the value, since the simulator shapes the histogram for interpolation. The mix
    # holds a 0.2 % slow type (coprocessor_stream), which moves it by well under 2 % of a bucket.
    assert slow == pytest.approx(0.25, abs=0.02 * (GRPC_BUCKETS[13] - GRPC_BUCKETS[12]))
    assert normal == pytest.approx(0.010, abs=0.02 * (GRPC_BUCKETS[8] - GRPC_BUCKETS[7]))
    assert slow > 0.1 >= normal  # what the high_latency invariant (> 100 ms) must tell apart


def test_pd_gauges_and_a_stopped_store_through_promql(
    prometheus: Any, running_sim: tuple[SimulatorThread, str]
) -> None:
    sim, test_id = running_sim
    miss = _eventually(
        lambda: _by_instance(
            prometheus.query(f'pd_regions_status{{test_id="{test_id}",type="miss-peer-region-count"}}')
        ),
        lambda v: len(v) == 1,
    )
    assert list(miss.values()) == [150]
    stopped = sim.summary()["clusters"][0]["stores"][2]["instance"]
    sim.fault({"fault": "stop-store", "store": 3})
    up = _eventually(
        lambda: _by_instance(prometheus.query(f'up{{test_id="{test_id}",instance="{stopped}"}}')),
        lambda v: v.get(stopped) == 0,
    )
    assert up == {stopped: 0}


def test_pod_name_instances_and_tidb_operator_labels(prometheus: Any, prom_targets: Any) -> None:
    config = SimConfig(
        stores=2,
        name="basic",
        namespace="prod",
        instance_label=InstanceLabel.POD_NAME,
        control_port=None,
        extra_labels=prom_targets.labels,
    )
    test_id = prom_targets.labels["test_id"]
    with SimulatorThread(config) as sim:
        sim.fault({"fault": "disk", "store": 1, "percent": 72})
        write_atomically(prom_targets.path, sim.call(sim.simulator.target_groups))
        expr = (
            f'tikv_store_size_bytes{{test_id="{test_id}",type="available",component="tikv",tidb_cluster="prod-basic"}}'
        )
        values = _eventually(lambda: _by_instance(prometheus.query(expr)), lambda v: len(v) == 2)
    assert set(values) == {"basic-tikv-0", "basic-tikv-1"}
    assert values["basic-tikv-0"] == pytest.approx(100 * 1024**3 * 0.28, rel=1e-9)
