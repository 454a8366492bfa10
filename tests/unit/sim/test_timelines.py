"""Restarts, rolling restarts and scale-ins: timelines of simple faults, played in the background."""

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.unit.sim.conftest import TIMING
from tests.unit.sim.shapes import by_id
from tikv_sim.clock import ManualClock
from tikv_sim.cluster_model import Cluster, ClusterIdentity, InstanceLabel, build_cluster
from tikv_sim.embedded import SimulatorThread
from tikv_sim.faults import Fault
from tikv_sim.simulator import SimConfig
from tikv_sim.timeline import expand


def _cluster(stores: int = 3, tiflash: int = 0) -> Cluster:
    identity = ClusterIdentity(name="basic", namespace="tidb", instance_label=InstanceLabel.POD_NAME)
    ports = list(range(30000, 30000 + stores + tiflash))
    return build_cluster(identity, ports[:stores], TIMING, 0, tiflash_ports=ports[stores:])


def _plan(fault: dict[str, object], cluster: Cluster | None = None) -> list[tuple[float, str, int | None, object]]:
    steps = expand(Fault.from_mapping(fault), cluster or _cluster())
    return [(at, step.kind, step.store, step.params) for at, step in steps]


def test_restart_store_expands_to_stop_then_start() -> None:
    assert _plan({"fault": "restart-store", "store": 2, "downtime": 5}) == [
        (0, "stop-store", 2, {}),
        (5, "start-store", 2, {}),
    ]
    assert _plan({"fault": "restart-store", "store": 2})[1][0] == 30  # default downtime


def test_rolling_restart_goes_store_by_store_and_skips_tiflash_and_stopped_stores() -> None:
    cluster = _cluster(stores=3, tiflash=1)
    cluster.store(2).stop(0)
    assert _plan({"fault": "rolling-restart", "downtime": 30, "gap": 10}, cluster) == [
        (0, "stop-store", 1, {}),
        (30, "start-store", 1, {}),
        (40, "stop-store", 3, {}),
        (70, "start-store", 3, {}),
    ]
    defaults = _plan({"fault": "rolling-restart"})
    assert [at for at, *_ in defaults] == [0, 30, 40, 70, 80, 110]


def test_scale_in_drains_then_removes() -> None:
    assert _plan({"fault": "scale-in", "store": 3, "drain_seconds": 12}) == [
        (0, "drain-store", 3, {"drain_seconds": 12}),
        (12, "remove-store", 3, {}),
    ]


def test_steps_name_their_cluster_and_unknown_stores_fail_at_once() -> None:
    steps = expand(Fault.from_mapping({"fault": "restart-store", "store": 1}), _cluster())
    assert {step.cluster for _, step in steps} == {"basic"}
    with pytest.raises(LookupError, match="no store 9"):
        expand(Fault.from_mapping({"fault": "scale-in", "store": 9}), _cluster())


def test_simple_faults_are_one_step() -> None:
    fault = Fault.from_mapping({"fault": "disk", "store": 1, "percent": 80})
    assert expand(fault, _cluster()) == [(0.0, fault)]


def _states(pd: httpx.Client) -> dict[int, str]:
    return {i: info["store"]["state_name"] for i, info in by_id(pd.get("/stores").json()).items()}


def _running(sim: SimulatorThread) -> list[bool]:
    return [s["running"] for s in sim.summary()["clusters"][0]["stores"]]


def test_restart_store_on_the_model_clock(sim: SimulatorThread, pd: httpx.Client, clock: ManualClock) -> None:
    response = httpx.post(f"{sim.control_url}/api/v1/faults", json={"fault": "restart-store", "store": 1,
                                                                      "downtime": 30}, timeout=5)  # fmt: skip
    assert response.status_code == 200
    assert [s["running"] for s in response.json()["cluster"]["stores"]] == [False, True, True]
    assert [step["fault"] for step in response.json()["steps"]] == ["stop-store", "start-store"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(sim.metrics_url(1), timeout=2)
    clock.advance(25)
    sim.settle()
    assert _states(pd)[1] == "Disconnected"
    clock.advance(10)  # past the 30 s downtime: it started at 30 s, on time
    sim.settle()
    assert _running(sim) == [True, True, True]
    assert _states(pd)[1] == "Up"
    started = by_id(pd.get("/stores").json())[1]["store"]["start_timestamp"]
    assert started == clock.now_ns() // 10**9 - 5
    assert httpx.get(sim.metrics_url(1), timeout=2).status_code == 200


def test_rolling_restart_on_the_model_clock(sim: SimulatorThread, pd: httpx.Client, clock: ManualClock) -> None:
    sim.fault({"fault": "rolling-restart", "downtime": 30, "gap": 10})
    seen = []
    for _ in range(24):  # 120 s in 5 s steps
        sim.settle()
        seen.append(tuple(_running(sim)))
        clock.advance(5)
    sim.settle()
    assert seen[0] == (False, True, True)
    assert seen[6] == (True, True, True)  # 30 s: store 1 back
    assert seen[8] == (True, False, True)  # 40 s: store 2 down
    assert seen[16] == (True, True, False)  # 80 s: store 3 down
    assert seen[22] == (True, True, True)  # 110 s: done
    assert all(row.count(False) <= 1 for row in seen)  # one at a time
    assert sim.call(lambda: sim.simulator.timelines_running) == 0
    assert set(_states(pd).values()) == {"Up"}


def test_scale_in_drains_regions_then_tombstones(sim: SimulatorThread, pd: httpx.Client, clock: ManualClock) -> None:
    sim.fault({"fault": "scale-in", "store": 3, "drain_seconds": 30})
    store = by_id(pd.get("/stores").json())[3]
    assert store["store"]["state_name"] == "Offline"
    assert store["store"]["node_state"] == 2  # Removing
    assert store["status"]["region_count"] == 60
    clock.advance(15)  # the heartbeat at 10 s saw a third of the regions gone
    sim.settle()
    store = by_id(pd.get("/stores").json())[3]
    assert store["status"]["region_count"] == 40
    assert store["status"]["leader_count"] == 13
    clock.advance(10)  # 20 s
    assert by_id(pd.get("/stores").json())[3]["status"]["region_count"] == 20
    clock.advance(10)  # 35 s: removed at 30 s
    sim.settle()
    assert sorted(by_id(pd.get("/stores").json())) == [1, 2]
    tombstone = pd.get("/stores", params={"state": 2}).json()["stores"][0]["store"]
    assert (tombstone["id"], tombstone["state_name"], tombstone["node_state"]) == (3, "Tombstone", 3)
    assert _running(sim) == [True, True, False]
    groups = sim.call(sim.simulator.target_groups)
    assert [g["labels"]["instance"] for g in groups][:-3] == [
        s["status_address"] for s in sim.summary()["clusters"][0]["stores"][:2]
    ]  # the pod is gone: its target too


def test_stop_cancels_pending_timelines(clock: ManualClock) -> None:
    with SimulatorThread(SimConfig(stores=2, timing=TIMING), clock=clock) as sim:
        sim.fault({"fault": "rolling-restart", "downtime": 1000})
        assert sim.call(lambda: sim.simulator.timelines_running) == 1
    assert sim.simulator.timelines_running == 0


@pytest.fixture
def realtime() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimConfig(stores=3, timing=TIMING, grpc_series="lean")) as running:
        yield running


def test_a_short_rolling_restart_in_real_time(realtime: SimulatorThread) -> None:
    before = {s["id"]: s["metrics_url"] for s in realtime.summary()["clusters"][0]["stores"]}
    realtime.fault({"fault": "rolling-restart", "downtime": 0.3, "gap": 0.1})
    seen: list[tuple[bool, ...]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen.append(tuple(_running(realtime)))
        if realtime.call(lambda: realtime.simulator.timelines_running) == 0:
            break
        time.sleep(0.03)
    assert seen[-1] == (True, True, True)
    for index in range(3):
        assert any(not row[index] for row in seen), f"store {index + 1} never went down"
    assert all(row.count(False) <= 1 for row in seen)
    after = {s["id"]: s["metrics_url"] for s in realtime.summary()["clusters"][0]["stores"]}
    assert after == before  # status-address mode: PD knows the port, it must not move
    assert all(httpx.get(url, timeout=2).status_code == 200 for url in after.values())
