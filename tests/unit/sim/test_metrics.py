"""TiKV and PD metrics under their real names and labels, and a latency histogram PromQL agrees with."""

import math

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.sim.conftest import TIMING
from tests.unit.sim.promql import bucket_increase_by_le, histogram_quantile, scrape
from tikv_sim.clock import ManualClock
from tikv_sim.embedded import SimulatorThread
from tikv_sim.latency import GRPC_BUCKETS

GRPC = "tikv_grpc_msg_duration_seconds"


def _families(url: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    text = httpx.get(url, timeout=5).text
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_tikv_metrics_parse_with_real_names_and_labels(sim: SimulatorThread, clock: ManualClock) -> None:
    clock.advance(5)
    families = _families(sim.metrics_url(1))
    sizes = {labels["type"]: value for _, labels, value in families["tikv_store_size_bytes"]}
    assert sizes["capacity"] == 100 * 1024**3
    assert sizes["available"] == 70 * 1024**3
    assert sizes["used"] > 0
    grpc_types = {labels["type"] for _, labels, _ in families[GRPC]}
    assert {"kv_get", "kv_prewrite", "kv_commit", "coprocessor", "kv_gc"} <= grpc_types
    names = {name for name, _, _ in families[GRPC]}
    assert names == {f"{GRPC}_bucket", f"{GRPC}_sum", f"{GRPC}_count"}
    bounds = sorted({float(labels["le"]) for name, labels, _ in families[GRPC] if name.endswith("_bucket")})
    assert bounds == [*GRPC_BUCKETS, math.inf]
    regions = {labels["type"]: value for _, labels, value in families["tikv_raftstore_region_count"]}
    assert regions == {"region": 60, "leader": 20}
    assert {labels["db"] for _, labels, _ in families["tikv_engine_write_stall"]} == {"kv"}
    assert {labels["cf"] for _, labels, _ in families["tikv_scheduler_l0_avg"]} == {"default", "lock", "write"}
    assert families["process_start_time_seconds"][0][2] == 1_764_000_000
    assert families["process_cpu_seconds"][0][0] == "process_cpu_seconds_total"
    assert families["process_cpu_seconds"][0][2] > 0


def test_no_metric_carries_a_store_id(sim: SimulatorThread) -> None:
    for samples in _families(sim.metrics_url(2)).values():
        for _, labels, _ in samples:
            assert "store" not in labels
            assert "instance" not in labels


@pytest.mark.parametrize("p99_ms", [0.7, 10, 100, 150, 250, 1000, 20_000])
def test_histogram_quantile_over_a_minute_gives_the_set_p99(
    sim: SimulatorThread, clock: ManualClock, p99_ms: float
) -> None:
    sim.fault({"fault": "latency", "store": 1, "p99_ms": p99_ms})
    clock.advance(30)  # any window that starts after the change sees only the new distribution
    before = scrape(sim.metrics_url(1))
    clock.advance(60)
    after = scrape(sim.metrics_url(1))
    buckets = bucket_increase_by_le(before, after, GRPC)
    assert buckets[math.inf] > 0
    p99 = histogram_quantile(0.99, buckets)
    target = p99_ms / 1000
    upper = next(b for b in GRPC_BUCKETS if b >= target)
    width = upper - upper / 2
    assert abs(p99 - target) <= 0.01 * width, (p99, target)


def test_histogram_counters_only_grow(sim: SimulatorThread, clock: ManualClock) -> None:
    first = scrape(sim.metrics_url(2))
    clock.advance(3)
    second = scrape(sim.metrics_url(2))
    sim.fault({"fault": "latency", "store": 2, "p99_ms": 500})
    clock.advance(3)
    third = scrape(sim.metrics_url(2))
    for key, value in second.items():
        if key[0].startswith(GRPC):
            assert first[key] <= value <= third[key], key
    count_key = (f"{GRPC}_count", (("priority", "medium"), ("type", "kv_get")))
    assert third[count_key] > second[count_key] > first[count_key]


def test_stopped_store_refuses_connections_and_restarts_with_fresh_counters(
    sim: SimulatorThread, clock: ManualClock
) -> None:
    url = sim.metrics_url(3)
    clock.advance(10)
    before = scrape(url)
    with httpx.Client(timeout=2) as kept_alive:
        assert kept_alive.get(url).status_code == 200
        sim.fault({"fault": "stop-store", "store": 3})
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)
        # Prometheus reuses connections: the stop must not leave one serving.
        with pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            kept_alive.get(url)
    clock.advance(10)
    sim.fault({"fault": "start-store", "store": 3})
    after = scrape(url)
    start = ("process_start_time_seconds", ())
    assert after[start] == before[start] + 20
    count_key = (f"{GRPC}_count", (("priority", "medium"), ("type", "kv_get")))
    assert after[count_key] < before[count_key]


def test_disk_fault_shows_at_once_in_tikv_metrics(sim: SimulatorThread) -> None:
    sim.fault({"fault": "disk", "store": 2, "percent": 85})
    sizes = {labels["type"]: value for _, labels, value in _families(sim.metrics_url(2))["tikv_store_size_bytes"]}
    assert (sizes["capacity"] - sizes["available"]) / sizes["capacity"] == pytest.approx(0.85)


def test_pd_metrics(sim: SimulatorThread, clock: ManualClock) -> None:
    sim.fault({"fault": "regions", "miss-peer": 150, "down-peer": 3, "pending-peer": 7})
    sim.fault({"fault": "stop-store", "store": 1})
    sim.fault({"fault": "stop-store", "store": 2})
    sim.fault({"fault": "disk", "store": 3, "percent": 90})
    clock.advance(TIMING.disconnect_after + 1)
    families = _families(f"{sim.pd_url}/metrics")
    assert families["etcd_server_is_leader"][0][2] == 1
    regions = {labels["type"]: value for _, labels, value in families["pd_regions_status"]}
    assert regions["miss-peer-region-count"] == 150
    assert regions["down-peer-region-count"] == 3
    assert regions["pending-peer-region-count"] == 7
    assert regions["offline-peer-region-count"] == 0
    status = {labels["type"]: value for _, labels, value in families["pd_cluster_status"]}
    assert status["store_disconnected_count"] == 2
    assert status["store_up_count"] == 1
    assert status["store_low_space_count"] == 1  # store 3 reported 90 % used at its last heartbeat
    clock.advance(TIMING.down_after)
    families = _families(f"{sim.pd_url}/metrics")
    status = {labels["type"]: value for _, labels, value in families["pd_cluster_status"]}
    assert status["store_down_count"] == 2
    assert status["store_disconnected_count"] == 0
    per_store = families["pd_scheduler_store_status"]
    assert {tuple(sorted(labels)) for _, labels, _ in per_store} == {("address", "store", "type")}
    capacity = {
        labels["store"]: (labels["address"], value)
        for _, labels, value in per_store
        if labels["type"] == "store_capacity"
    }
    assert capacity["1"] == ("127.0.0.1:20160", 100 * 1024**3)
