"""tikv_grpc_msg_duration_seconds as TiKV >= 7.6 exports it: 50 types x 4 priorities, v6.3 buckets, and
a p99 per type that PromQL recovers, so that mixing types in one quantile shows its real pitfalls."""

import math
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.sim.conftest import TIMING
from tests.unit.sim.promql import Series, bucket_increase_by_le, histogram_quantile, scrape
from tikv_sim.clock import ManualClock
from tikv_sim.embedded import SimulatorThread
from tikv_sim.grpc_types import GRPC_TYPES, PRIORITIES
from tikv_sim.latency import GRPC_BUCKETS
from tikv_sim.metrics import tikv_metrics
from tikv_sim.simulator import SimConfig
from tikv_sim.store_model import Store, StoreSpec

GRPC = "tikv_grpc_msg_duration_seconds"


def _bucket_children(url: str) -> list[dict[str, str]]:
    text = httpx.get(url, timeout=5).text
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        if family.name == GRPC
        for sample in family.samples
        if sample.name == f"{GRPC}_bucket"
    ]


def test_full_profile_exports_every_type_and_priority_from_the_start(sim: SimulatorThread) -> None:
    buckets = _bucket_children(sim.metrics_url(1))
    assert len(GRPC_TYPES) == 50
    assert len(buckets) == 50 * 4 * 23 == 4600
    assert {labels["type"] for labels in buckets} == set(GRPC_TYPES)
    assert {labels["priority"] for labels in buckets} == set(PRIORITIES) == {"high", "medium", "low", "unknown"}
    bounds = sorted({float(labels["le"]) for labels in buckets})
    assert bounds == [*GRPC_BUCKETS, math.inf]
    assert GRPC_BUCKETS[0] == 5e-5
    assert GRPC_BUCKETS[-1] == pytest.approx(104.8576)
    text = httpx.get(sim.metrics_url(1), timeout=5).text
    assert f'{GRPC}_bucket{{priority="high",type="raw_get",le="0.00005"}} 0' in text  # Rust prints no e-notation


@pytest.fixture
def lean(clock: ManualClock) -> Iterator[SimulatorThread]:
    config = SimConfig(stores=1, timing=TIMING, grpc_series="lean", control_port=None)
    with SimulatorThread(config, clock=clock) as running:
        yield running


def test_lean_profile_exports_a_dozen_types_on_two_priorities(lean: SimulatorThread) -> None:
    buckets = _bucket_children(lean.metrics_url(1))
    types = {labels["type"] for labels in buckets}
    slow = {"coprocessor_stream", "unsafe_destroy_range", "kv_gc"}
    assert {"kv_get", "kv_pessimistic_lock", "coprocessor", *slow} <= types
    assert len(types) == 15
    assert {labels["priority"] for labels in buckets} == {"medium", "unknown"}
    assert len(buckets) == 15 * 2 * 23 == 690


def test_a_type_switched_on_in_lean_mode_is_exported_too(lean: SimulatorThread, clock: ManualClock) -> None:
    lean.fault({"fault": "latency", "store": 1, "type": "raw_get", "p99_ms": 5})
    clock.advance(2)
    types = {labels["type"] for labels in _bucket_children(lean.metrics_url(1))}
    assert "raw_get" in types


def _window(sim: SimulatorThread, clock: ManualClock, store: int = 1) -> tuple[Series, Series]:
    clock.advance(30)  # a window that starts after the last change sees only the new distribution
    before = scrape(sim.metrics_url(store))
    clock.advance(60)
    return before, scrape(sim.metrics_url(store))


def _p99(window: tuple[Series, Series], where: object = None) -> float:
    return histogram_quantile(0.99, bucket_increase_by_le(*window, GRPC, where))  # type: ignore[arg-type]


def _near(value: float, target: float, resolution: float = 0.01) -> bool:
    """Within `resolution` of the width of the bucket that holds the target."""
    upper = next(b for b in GRPC_BUCKETS if b >= target)
    return abs(value - target) <= resolution * upper / 2


def _type_is(name: str) -> object:
    return lambda labels: labels["type"] == name


def _old_query(labels: dict[str, str]) -> bool:
    return labels["type"] != "kv_gc"


def test_each_type_has_its_own_p99_and_a_healthy_mix_keeps_the_store_p99(
    sim: SimulatorThread, clock: ManualClock
) -> None:
    window = _window(sim, clock)
    for name in ("kv_get", "kv_batch_get", "kv_scan", "kv_prewrite", "kv_commit", "coprocessor",
                 "kv_pessimistic_lock", "check_leader", "read_index"):  # fmt: skip
        assert _near(_p99(window, _type_is(name)), 0.010), name
    stream = _p99(window, _type_is("coprocessor_stream"))
    assert 1.0 < stream < 5.0  # a stream's p99 is seconds long ...
    assert _near(_p99(window, _old_query), 0.010, resolution=0.02)  # ... but at 0.2 % it does not move the mix
    assert math.isnan(_p99(window, _type_is("unsafe_destroy_range")))  # no traffic at all
    assert math.isnan(_p99(window, _type_is("kv_gc")))
    counts = {
        dict(labels)["type"]: value for (name, labels), value in window[1].items() if name == f"{GRPC}_count" and value
    }
    total = sum(counts.values())
    assert counts["coprocessor_stream"] / total < 0.01
    assert counts["kv_pessimistic_lock"] / total > 0.04  # several %: enough for lock waits to show


def test_lock_waits_pull_the_mixed_p99_up_while_every_other_type_keeps_its_own(
    sim: SimulatorThread, clock: ManualClock
) -> None:
    sim.fault({"fault": "latency", "store": 1, "type": "kv_pessimistic_lock", "p99_ms": 2000})
    window = _window(sim, clock)
    assert _near(_p99(window, _type_is("kv_pessimistic_lock")), 2.0)
    assert _p99(window, _old_query) > 0.5  # the old mixed query: far above 100 ms on a healthy store
    for name in ("kv_get", "kv_prewrite", "kv_commit", "coprocessor", "kv_batch_get", "kv_scan"):
        assert _near(_p99(window, _type_is(name)), 0.010), name
    foreground_but_lock = _p99(window, lambda labels: labels["type"] in {"kv_get", "kv_commit", "coprocessor"})
    assert _near(foreground_but_lock, 0.010)


def test_drop_table_range_deletes_on_a_quiet_store(sim: SimulatorThread, clock: ManualClock) -> None:
    sim.fault({"fault": "latency", "store": 2, "type": "unsafe_destroy_range", "p99_ms": 20_000})
    window = _window(sim, clock, store=2)
    assert _near(_p99(window, _type_is("unsafe_destroy_range")), 20.0)
    assert _p99(window, _old_query) > 1.0
    assert _near(_p99(window, _type_is("kv_get")), 0.010)
    summary = sim.summary()["clusters"][0]["stores"][1]
    assert summary["grpc_p99_ms"]["unsafe_destroy_range"] == 20_000
    assert summary["p99_ms"] == 10


def test_the_store_wide_latency_fault_sets_every_foreground_type(sim: SimulatorThread, clock: ManualClock) -> None:
    sim.fault({"fault": "latency", "store": 1, "type": "kv_pessimistic_lock", "p99_ms": 2000})
    sim.fault({"fault": "latency", "store": 1, "p99_ms": 250})
    window = _window(sim, clock)
    for name in ("kv_get", "kv_pessimistic_lock", "coprocessor", "check_leader"):
        assert _near(_p99(window, _type_is(name)), 0.25), name
    assert _near(_p99(window, _old_query), 0.25, resolution=0.02)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"fault": "latency", "store": 1, "type": "kv_teleport", "p99_ms": 5}, "unknown gRPC message type"),
        ({"fault": "latency", "store": 1, "weight": 5, "p99_ms": 5}, "weight needs a type"),
    ],
)
def test_bad_latency_faults(sim: SimulatorThread, fault: dict[str, object], message: str) -> None:
    response = httpx.post(f"{sim.control_url}/api/v1/faults", json=fault, timeout=5)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_rendering_a_full_store_is_cheap() -> None:
    clock = ManualClock()
    store = Store(StoreSpec(id=1, address="a", status_address="b"), TIMING, clock.now_ns())
    tikv_metrics(store, clock.now_ns())
    rounds = 50
    started = time.perf_counter()
    for _ in range(rounds):
        clock.advance(1)
        tikv_metrics(store, clock.now_ns())
    per_scrape = (time.perf_counter() - started) / rounds
    assert per_scrape < 0.010, f"{per_scrape * 1000:.2f} ms per scrape"  # about 0.3 ms on an idle machine
