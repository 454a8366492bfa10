"""A PD leader change as clients see it: 503 while there is no leader, 500 not bootstrapped while the new
leader starts its RaftCluster, then every store Disconnected on the heartbeat persisted in etcd (with
its stats lost) until its next heartbeat reaches the new leader."""

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from tests.unit.sim.conftest import TIMING
from tests.unit.sim.shapes import by_id, check_store_info
from tikv_sim.clock import NS_PER_SECOND, ManualClock
from tikv_sim.embedded import SimulatorThread
from tikv_sim.pd_api import NO_LEADER
from tikv_sim.pd_payloads import NOT_BOOTSTRAPPED
from tikv_sim.simulator import SimConfig

# PD's proportions: persisted every 60 s here (300 s in PD), Down after 120 s (30 min in PD).
PERSIST = dataclasses.replace(TIMING, persist_interval=60)


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[SimulatorThread]:
    with SimulatorThread(SimConfig(stores=3, timing=PERSIST, p99_ms=10), clock=clock) as running:
        yield running


def _metrics(sim: SimulatorThread) -> str:
    return httpx.get(f"{sim.pd_url}/metrics", timeout=5).text


def test_the_answers_through_an_election(sim: SimulatorThread, pd: httpx.Client, clock: ManualClock) -> None:
    started = clock.now_ns()
    clock.advance(3600 + 55)  # heartbeats every 10 s (the last at 3650 s), persisted every 60 s (3600 s)
    before = by_id(pd.get("/stores").json())
    assert pd.get("/members").json()["leader"]["name"] == "pd-0"
    sim.fault({"fault": "pd-leader-change", "election_seconds": 3, "not_bootstrapped_seconds": 1})

    for path in ("/stores", "/members", "/health", "/regions/check/miss-peer"):
        response = pd.get(path)
        assert response.status_code == 503, path
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.text == NO_LEADER == "[PD:apiutil:ErrRedirectNoLeader]redirect finds no leader\n"
    assert "etcd_server_is_leader 0" in _metrics(sim)
    assert "pd_cluster_status" not in _metrics(sim)

    clock.advance(3)
    response = pd.get("/stores")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.json() == NOT_BOOTSTRAPPED
    assert response.text.startswith('"[PD:cluster:ErrNotBootstrapped]')
    assert pd.get("/members").json()["leader"]["name"] == "pd-1"  # the new leader answers for itself
    assert "pd_cluster_status" not in _metrics(sim)

    clock.advance(0.5)
    assert pd.get("/stores").status_code == 500
    clock.advance(0.5)  # ready 4 s after the change, at 3659 s; the next heartbeats are at 3660 s
    after = by_id(pd.get("/stores").json())
    persisted = started + 3600 * NS_PER_SECOND
    for store_id, info in after.items():
        check_store_info(info)
        assert info["store"]["state_name"] == "Disconnected"
        assert info["store"]["last_heartbeat"] == persisted
        assert info["store"]["start_timestamp"] == before[store_id]["store"]["start_timestamp"]
        status = info["status"]
        assert (status["capacity"], status["available"], status["used_size"]) == ("0B", "0B", "0B")
        assert (status["region_count"], status["leader_count"]) == (0, 0)
        assert "slow_score" not in status
    metrics = _metrics(sim)
    assert 'pd_cluster_status{type="store_up_count"} 0' in metrics
    assert 'pd_cluster_status{type="store_disconnected_count"} 3' in metrics
    assert 'pd_scheduler_store_status{address="127.0.0.1:20160",store="1",type="store_capacity"} 0' in metrics
    assert "etcd_server_leader_changes_seen_total 1" in metrics

    clock.advance(1)  # 3660 s: every store's next heartbeat reaches the new leader
    after = by_id(pd.get("/stores").json())
    assert {info["store"]["state_name"] for info in after.values()} == {"Up"}
    assert after[1]["status"]["capacity"] == "100GiB"
    assert after[1]["status"]["region_count"] == 60
    assert 'pd_cluster_status{type="store_up_count"} 3' in _metrics(sim)
    summary = sim.summary()["clusters"][0]
    assert (summary["pd_leader"], summary["pd_leader_changes"]) == ("pd-1", 1)


def test_staleness_comes_from_the_persist_interval_not_the_heartbeat(
    sim: SimulatorThread, pd: httpx.Client, clock: ManualClock
) -> None:
    started = clock.now_ns()
    clock.advance(55)  # the last heartbeat was at 50 s, but the only persisted one is the first, at 0 s
    sim.fault({"fault": "pd-leader-change", "election_seconds": 0, "not_bootstrapped_seconds": 0})
    info = by_id(pd.get("/stores").json())[2]["store"]
    assert info["last_heartbeat"] == started
    assert info["state_name"] == "Disconnected"  # 55 s > 20 s, though the store beat 5 s ago
    clock.advance(5)
    assert by_id(pd.get("/stores").json())[2]["store"]["state_name"] == "Up"


def test_reconnect_delay_keeps_stores_disconnected_longer(
    sim: SimulatorThread, pd: httpx.Client, clock: ManualClock
) -> None:
    clock.advance(400)
    sim.fault({"fault": "pd-leader-change", "election_seconds": 1, "not_bootstrapped_seconds": 1,
               "reconnect_seconds": 15})  # fmt: skip
    clock.advance(2 + 10)  # ready at 402 s; heartbeats at 410 s do not count, the ones at 420 s will
    assert {i["store"]["state_name"] for i in pd.get("/stores").json()["stores"]} == {"Disconnected"}
    clock.advance(8)
    assert {i["store"]["state_name"] for i in pd.get("/stores").json()["stores"]} == {"Up"}


def test_a_stopped_store_stays_on_its_persisted_beat(
    sim: SimulatorThread, pd: httpx.Client, clock: ManualClock
) -> None:
    clock.advance(100)
    sim.fault({"fault": "stop-store", "store": 3})
    clock.advance(5)
    sim.fault({"fault": "pd-leader-change", "election_seconds": 0, "not_bootstrapped_seconds": 0})
    clock.advance(TIMING.heartbeat_interval)
    stores = by_id(pd.get("/stores").json())
    assert stores[1]["store"]["state_name"] == "Up"
    assert stores[3]["store"]["state_name"] == "Disconnected"
    assert stores[3]["status"]["capacity"] == "0B"
    sim.fault({"fault": "start-store", "store": 3})  # its first heartbeat goes to the new leader
    assert by_id(pd.get("/stores").json())[3]["status"]["capacity"] == "100GiB"


def test_leaders_rotate_and_member_ids_stay(sim: SimulatorThread, pd: httpx.Client, clock: ManualClock) -> None:
    ids = {m["name"]: m["member_id"] for m in pd.get("/members").json()["members"]}
    leaders = []
    for _ in range(3):
        sim.fault({"fault": "pd-leader-change", "election_seconds": 0.5, "not_bootstrapped_seconds": 0.5})
        clock.advance(1)
        members = pd.get("/members").json()
        assert {m["name"]: m["member_id"] for m in members["members"]} == ids
        assert members["leader"] == members["etcd_leader"] == pd.get("/leader").json()
        leaders.append(members["leader"]["name"])
    assert leaders == ["pd-1", "pd-2", "pd-0"]
    assert sim.summary()["clusters"][0]["pd_leader_changes"] == 3


@pytest.mark.parametrize(
    "fault",
    [
        {"fault": "pd-leader-change", "election_seconds": -1},
        {"fault": "pd-leader-change", "store": 1, "nonsense": 1},
    ],
)
def test_bad_leader_changes(sim: SimulatorThread, fault: dict[str, object]) -> None:
    assert httpx.post(f"{sim.control_url}/api/v1/faults", json=fault, timeout=5).status_code == 400
