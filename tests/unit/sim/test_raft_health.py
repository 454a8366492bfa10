"""TiKV's raft health metrics: the log lag and append/apply duration histograms at a set p99, the critical
error counter that exists only once an error was counted, and the leader count."""

import math
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.sim.conftest import TIMING
from tests.unit.sim.promql import Series, bucket_increase_by_le, histogram_quantile, scrape
from tests.unit.sim.shapes import by_id
from tikv_sim.clock import ManualClock
from tikv_sim.embedded import SimulatorThread
from tikv_sim.faults import Fault, FaultError
from tikv_sim.raft_metrics import DURATION_BUCKETS, LOG_LAG_BUCKETS
from tikv_sim.simulator import SimConfig

LOG_LAG = "tikv_raftstore_log_lag"
APPEND = "tikv_raftstore_append_log_duration_seconds"
APPLY = "tikv_raftstore_apply_log_duration_seconds"
CRITICAL = "tikv_critical_error_total"


def _text(sim: SimulatorThread, store: int) -> str:
    return httpx.get(sim.metrics_url(store), timeout=5).text


def _p99(sim: SimulatorThread, clock: ManualClock, store: int, name: str) -> float:
    """histogram_quantile(0.99, sum by (le) (rate(name_bucket[1m]))) from two scrapes a minute apart."""
    before = scrape(sim.metrics_url(store))
    clock.advance(60)
    after = scrape(sim.metrics_url(store))
    return histogram_quantile(0.99, bucket_increase_by_le(before, after, name))


def _bucket_width(bounds: tuple[float, ...], target: float) -> float:
    index = max(1, next(i for i, bound in enumerate(bounds) if bound >= target))
    return bounds[index] - bounds[index - 1]


def test_histograms_have_tikvs_names_buckets_and_no_labels(sim: SimulatorThread, clock: ManualClock) -> None:
    clock.advance(5)
    text = _text(sim, 1)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, bounds in ((LOG_LAG, LOG_LAG_BUCKETS), (APPEND, DURATION_BUCKETS), (APPLY, DURATION_BUCKETS)):
        assert families[name].type == "histogram"
        samples = families[name].samples
        assert {s.name for s in samples} == {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        assert all(set(s.labels) <= {"le"} for s in samples), name
        assert [float(s.labels["le"]) for s in samples if s.name.endswith("_bucket")] == [*bounds, math.inf]
    # TiKV's layouts, written out: a change to the constants must not go unnoticed.
    assert LOG_LAG_BUCKETS == (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 5120, 10240)
    assert len(DURATION_BUCKETS) == 26
    assert (DURATION_BUCKETS[0], DURATION_BUCKETS[-1]) == (0.00001, 335.54432)
    assert f'{APPEND}_bucket{{le="0.00001"}}' in text  # printed as rust-prometheus does, never 1e-05
    assert f'{LOG_LAG}_bucket{{le="10240"}}' in text
    assert CRITICAL not in text  # no error counted yet: not even a HELP line


def test_healthy_p99s(sim: SimulatorThread, clock: ManualClock) -> None:
    assert _p99(sim, clock, 1, LOG_LAG) == pytest.approx(10)
    assert _p99(sim, clock, 2, APPEND) == pytest.approx(0.005, abs=_bucket_width(DURATION_BUCKETS, 0.005) / 1000)
    assert _p99(sim, clock, 3, APPLY) == pytest.approx(0.005, abs=_bucket_width(DURATION_BUCKETS, 0.005) / 1000)


@pytest.mark.parametrize("entries", [3, 10, 100, 1500, 5000, 6000, 9000])
def test_raft_log_lag_p99_is_the_set_value(sim: SimulatorThread, clock: ManualClock, entries: float) -> None:
    sim.fault({"fault": "raft-log-lag", "store": 2, "entries": entries})
    clock.advance(30)  # any window that starts after the change sees only the new distribution
    p99 = _p99(sim, clock, 2, LOG_LAG)
    assert p99 == pytest.approx(entries, abs=_bucket_width(LOG_LAG_BUCKETS, entries) / 1000)
    assert _p99(sim, clock, 1, LOG_LAG) == pytest.approx(10)  # other stores keep theirs


@pytest.mark.parametrize(("fault", "name"), [("raft-append", APPEND), ("raft-apply", APPLY)])
@pytest.mark.parametrize("p99_ms", [0.05, 1, 5, 250, 1200, 30_000])
def test_raft_duration_p99_is_the_set_value(
    sim: SimulatorThread, clock: ManualClock, fault: str, name: str, p99_ms: float
) -> None:
    sim.fault({"fault": fault, "store": 1, "p99_ms": p99_ms})
    clock.advance(30)
    target = p99_ms / 1000
    assert _p99(sim, clock, 1, name) == pytest.approx(target, abs=_bucket_width(DURATION_BUCKETS, target) / 1000)
    other = APPLY if name == APPEND else APPEND
    assert _p99(sim, clock, 1, other) == pytest.approx(0.005, rel=0.01)


def test_values_beyond_the_layout_read_as_its_ends(sim: SimulatorThread, clock: ManualClock) -> None:
    """PromQL never answers above the last finite bound, nor (here) under the first one."""
    sim.fault({"fault": "raft-log-lag", "store": 1, "entries": 50_000})
    sim.fault({"fault": "raft-log-lag", "store": 2, "entries": 0})
    clock.advance(30)
    assert _p99(sim, clock, 1, LOG_LAG) == 10240
    assert _p99(sim, clock, 2, LOG_LAG) == 2


def _count(series: Series, name: str) -> float:
    return series[(f"{name}_count", ())]


def test_counters_restart_from_zero_and_the_setting_survives(sim: SimulatorThread, clock: ManualClock) -> None:
    sim.fault({"fault": "raft-append", "store": 3, "p99_ms": 800})
    clock.advance(100)
    before = scrape(sim.metrics_url(3))
    assert _count(before, APPEND) == _count(before, LOG_LAG) == 100 * 100_000  # 100 ticks of a whole mix
    sim.fault({"fault": "stop-store", "store": 3})
    clock.advance(5)
    sim.fault({"fault": "start-store", "store": 3})
    fresh = scrape(sim.metrics_url(3))
    for name in (LOG_LAG, APPEND, APPLY):
        assert _count(fresh, name) == 0, name
        assert fresh[(f"{name}_bucket", (("le", "+Inf"),))] == 0
    assert _p99(sim, clock, 3, APPEND) == pytest.approx(0.8, abs=_bucket_width(DURATION_BUCKETS, 0.8) / 1000)


def test_counters_only_grow_across_a_change(sim: SimulatorThread, clock: ManualClock) -> None:
    first = scrape(sim.metrics_url(1))
    clock.advance(3)
    second = scrape(sim.metrics_url(1))
    sim.fault({"fault": "raft-log-lag", "store": 1, "entries": 7000})
    clock.advance(3)
    third = scrape(sim.metrics_url(1))
    for key, value in second.items():
        if key[0].startswith(LOG_LAG):
            assert first[key] <= value <= third[key], key
    assert _count(third, LOG_LAG) > _count(second, LOG_LAG) > _count(first, LOG_LAG)


def _errors(sim: SimulatorThread, store: int) -> dict[str, float]:
    return {labels[0][1]: value for (name, labels), value in scrape(sim.metrics_url(store)).items() if name == CRITICAL}


def test_critical_errors_appear_when_counted_and_go_with_the_process(sim: SimulatorThread, clock: ManualClock) -> None:
    assert _errors(sim, 2) == {}
    sim.fault({"fault": "critical-error", "store": 2})
    assert _errors(sim, 2) == {"sst_corruption": 1}
    text = _text(sim, 2)
    assert f"# TYPE {CRITICAL} counter" in text
    assert f'{CRITICAL}{{type="sst_corruption"}} 1' in text
    before = scrape(sim.metrics_url(2))
    clock.advance(30)
    sim.fault({"fault": "critical-error", "store": 2, "type": "default value not found", "count": 3})
    sim.fault({"fault": "critical-error", "store": 2, "count": 2})
    clock.advance(30)
    after = scrape(sim.metrics_url(2))
    assert _errors(sim, 2) == {"sst_corruption": 3, "default value not found": 3}
    # increase(tikv_critical_error_total[1m]): the new child counts from 0, so all 3 are an increase.
    increase = {labels: value - before.get((name, labels), 0.0) for (name, labels), value in after.items()
                if name == CRITICAL}  # fmt: skip
    assert increase == {(("type", "sst_corruption"),): 2, (("type", "default value not found"),): 3}
    assert _errors(sim, 1) == {}  # one store's errors only
    sim.fault({"fault": "critical-error", "store": 2, "count": 0})  # an existing child: no change
    assert _errors(sim, 2)["sst_corruption"] == 3

    sim.fault({"fault": "restart-store", "store": 2, "downtime": 5})
    clock.advance(5)
    sim.settle()
    assert CRITICAL not in _text(sim, 2)  # a new process registers the CounterVec without children


def test_a_zero_count_creates_the_child_at_zero(sim: SimulatorThread) -> None:
    sim.fault({"fault": "critical-error", "store": 1, "type": "rocksdb iter", "count": 0})
    assert _errors(sim, 1) == {"rocksdb iter": 0}


def test_leaders_fault(sim: SimulatorThread, clock: ManualClock, pd: httpx.Client) -> None:
    clock.advance(3)
    sim.fault({"fault": "leaders", "store": 2, "count": 0})
    sim.fault({"fault": "leaders", "store": 3, "count": 45})
    regions = {(labels[0][1], store): value for store in (2, 3)
               for (name, labels), value in scrape(sim.metrics_url(store)).items()
               if name == "tikv_raftstore_region_count"}  # fmt: skip
    assert regions == {("leader", 2): 0, ("region", 2): 60, ("leader", 3): 45, ("region", 3): 60}
    stores = by_id(pd.get("/stores").json())
    assert (stores[2]["status"]["leader_count"], stores[3]["status"]["leader_count"]) == (20, 20)  # not yet
    clock.advance(TIMING.heartbeat_interval)  # the next heartbeat carries the new counts
    stores = by_id(pd.get("/stores").json())
    assert (stores[2]["status"]["leader_count"], stores[3]["status"]["leader_count"]) == (0, 45)
    assert stores[1]["status"]["leader_count"] == 20
    leader_url = sim.summary()["clusters"][0]["pd_members"][0]["metrics_url"]
    status = scrape(leader_url)
    assert status[("pd_scheduler_store_status", (("address", "127.0.0.1:20162"), ("store", "3"),
                                                 ("type", "leader_count")))] == 45  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"fault": "raft-log-lag", "store": 1}, "needs entries"),
        ({"fault": "raft-log-lag", "entries": 10}, "needs a store id"),
        ({"fault": "raft-log-lag", "store": 1, "entries": -1}, "entries must be a finite number at least 0"),
        ({"fault": "raft-log-lag", "store": 1, "entries": "lots"}, "entries must be a float"),
        ({"fault": "raft-log-lag", "store": 1, "entries": float("nan")}, "finite"),
        ({"fault": "raft-append", "store": 1, "p99_ms": 0}, "p99_ms must be a finite number above 0"),
        ({"fault": "raft-apply", "store": 1, "p99_ms": -5}, "p99_ms must be a finite number above 0"),
        ({"fault": "raft-apply", "store": 1, "p99_ms": float("inf")}, "finite"),
        ({"fault": "raft-apply", "store": 1, "p99_ms": 5, "type": "x"}, "does not take type"),
        ({"fault": "critical-error", "store": 1, "count": -2}, "count must be a finite number at least 0"),
        ({"fault": "critical-error", "store": 1, "count": 1.5}, "count must be a int"),
        ({"fault": "critical-error", "store": 1, "type": " "}, "type is a label value and cannot be empty"),
        ({"fault": "leaders", "store": 1}, "needs count"),
        ({"fault": "leaders", "store": 1, "count": -1}, "count must be a finite number at least 0"),
        ({"fault": "regions", "miss-peer": 1, "member": "everyone"}, "member is leader"),
        ({"fault": "regions", "member": "followers"}, "needs at least one of miss-peer"),
    ],
)
def test_bad_parameters_are_rejected_when_read(fault: dict[str, Any], message: str) -> None:
    with pytest.raises(FaultError, match=message):
        Fault.from_mapping(fault)


def test_faults_the_store_cannot_take_are_rejected_by_the_control_api(clock: ManualClock) -> None:
    config = SimConfig(stores=2, tiflash=1, timing=TIMING, grpc_series="lean")
    with SimulatorThread(config, clock=clock) as sim:
        sim.fault({"fault": "stop-store", "store": 2})
        cases = [
            ({"fault": "critical-error", "store": 2}, 400, "store 2 is not running"),
            ({"fault": "critical-error", "store": 3}, 400, "store 3 is TiFlash"),
            ({"fault": "raft-log-lag", "store": 3, "entries": 9000}, 400, "store 3 is TiFlash"),
            ({"fault": "leaders", "store": 3, "count": 4}, 400, "leads no region"),
            ({"fault": "raft-apply", "store": 9, "p99_ms": 5}, 404, "no store 9"),
            ({"fault": "leaders", "store": 1, "count": -1}, 400, "count must be"),
        ]
        for body, status, message in cases:
            response = httpx.post(f"{sim.control_url}/api/v1/faults", json=body, timeout=5)
            assert response.status_code == status, body
            assert message in response.json()["error"], (body, response.json())
        # A stopped store keeps a raft setting for its next process.
        sim.fault({"fault": "raft-apply", "store": 2, "p99_ms": 700})
        sim.fault({"fault": "start-store", "store": 2})
        clock.advance(30)
        assert _p99(sim, clock, 2, APPLY) == pytest.approx(0.7, abs=_bucket_width(DURATION_BUCKETS, 0.7) / 1000)
        assert not any(name.startswith("tikv_") for name, _ in scrape(sim.metrics_url(3)))
