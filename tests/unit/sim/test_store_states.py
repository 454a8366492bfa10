"""Store states evolve as PD's do, on PD's clocks (shrunk in TIMING, moved by hand)."""

import httpx

from tests.unit.sim.conftest import TIMING
from tests.unit.sim.shapes import by_id
from tikv_sim.clock import ManualClock
from tikv_sim.embedded import SimulatorThread


def _states(pd: httpx.Client) -> dict[int, str]:
    return {s["store"]["id"]: s["store"]["state_name"] for s in pd.get("/stores").json()["stores"]}


def test_stopped_store_turns_disconnected_then_down(sim: SimulatorThread, pd: httpx.Client, clock: ManualClock) -> None:
    clock.advance(5)
    sim.fault({"fault": "stop-store", "store": 1})  # last heartbeat was at 0 s
    clock.advance(TIMING.disconnect_after - 5)  # exactly 20 s without heartbeat: not yet
    assert _states(pd) == {1: "Up", 2: "Up", 3: "Up"}
    clock.advance(0.5)
    assert _states(pd)[1] == "Disconnected"
    clock.advance(TIMING.down_after - TIMING.disconnect_after - 1)
    assert _states(pd)[1] == "Disconnected"
    clock.advance(1)
    assert _states(pd) == {1: "Down", 2: "Up", 3: "Up"}
    # PD never learns anything new from a dead store: its meta state stays Up (no `state` field).
    assert "state" not in by_id(pd.get("/stores").json())[1]["store"]


def test_running_stores_never_disconnect(pd: httpx.Client, clock: ManualClock) -> None:
    for _ in range(20):
        clock.advance(TIMING.heartbeat_interval * 3 + 1)
        assert set(_states(pd).values()) == {"Up"}


def test_offline_store_that_stops_heartbeating_still_says_offline(
    sim: SimulatorThread, pd: httpx.Client, clock: ManualClock
) -> None:
    sim.fault({"fault": "store-state", "store": 2, "state": "Offline"})
    sim.fault({"fault": "stop-store", "store": 2})
    clock.advance(TIMING.down_after * 2)
    assert _states(pd)[2] == "Offline"


def test_restart_brings_store_back_up_with_new_start_time(
    sim: SimulatorThread, pd: httpx.Client, clock: ManualClock
) -> None:
    before = by_id(pd.get("/stores").json())[1]["store"]["start_timestamp"]
    sim.fault({"fault": "stop-store", "store": 1})
    clock.advance(TIMING.down_after + 1)
    assert _states(pd)[1] == "Down"
    sim.fault({"fault": "start-store", "store": 1})
    assert _states(pd)[1] == "Up"
    after = by_id(pd.get("/stores").json())[1]
    assert after["store"]["start_timestamp"] == before + TIMING.down_after + 1
    assert "uptime" not in after["status"]  # zero uptime is omitted (PD only sets it when > 0)


def test_pd_shows_disk_changes_only_after_the_next_heartbeat(
    sim: SimulatorThread, pd: httpx.Client, clock: ManualClock
) -> None:
    clock.advance(1)
    sim.fault({"fault": "disk", "store": 2, "percent": 85})
    assert by_id(pd.get("/stores").json())[2]["status"]["available"] == "68.5GiB"
    clock.advance(TIMING.heartbeat_interval)
    assert by_id(pd.get("/stores").json())[2]["status"]["available"] == "15GiB"


def test_stopped_store_keeps_its_last_reported_stats(
    sim: SimulatorThread, pd: httpx.Client, clock: ManualClock
) -> None:
    sim.fault({"fault": "stop-store", "store": 3})
    sim.fault({"fault": "disk", "store": 3, "percent": 99})
    clock.advance(TIMING.down_after + 1)
    store = by_id(pd.get("/stores").json())[3]
    assert store["store"]["state_name"] == "Down"
    assert store["status"]["available"] == "67GiB"
