"""One fault, its cascade: what PD and TiKV do next, step by step, on a hand-moved clock (tikv_sim.cascade)."""

from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tikv_sim import cascade, metrics, pd_members, pd_payloads, pd_view
from tikv_sim.clock import ManualClock
from tikv_sim.cluster_model import Cluster, ClusterIdentity, InstanceLabel, build_cluster
from tikv_sim.embedded import SimulatorThread
from tikv_sim.faults import Fault, FaultError, apply_fault
from tikv_sim.simulator import SimConfig
from tikv_sim.store_model import Timing
from tikv_sim.timeline import expand

TIMING = Timing(heartbeat_interval=10, disconnect_after=20, unhealthy_after=60, down_after=120, election_timeout=10,
                peer_down_after=60, region_heartbeat_interval=6, replace_seconds_per_region=1, snapshot_seconds=5,
                latency_recovery=30, leader_rebalance=50)


class Model:
    """A cluster driven as the simulator drives it: faults through the fault table, reads after settle."""

    def __init__(self, stores: int = 3, cascade_on: bool = True, nodes: int = 0) -> None:
        self.clock = ManualClock()
        identity = ClusterIdentity(name="basic", namespace="tidb", instance_label=InstanceLabel.STATUS_ADDRESS)
        self.cluster: Cluster = build_cluster(identity, [9000 + i for i in range(stores)], TIMING, self.clock.now_ns(),
                                              nodes=nodes)
        self.cluster.cascade.enabled = cascade_on

    def fault(self, **raw: Any) -> None:
        fault = Fault.from_mapping(raw)
        for at, step in expand(fault, self.cluster):
            assert at == 0, "timelines are played by test_oom_kill_*"
            apply_fault({"basic": self.cluster}, step, self.clock.now_ns())

    def at(self, seconds: float) -> "Model":
        """Move the clock to `seconds` after the start, playing what is due."""
        now = self.clock.now_ns()
        target = self.cluster.created_ns + round(seconds * 1e9)
        assert target >= now
        self.clock.advance((target - now) / 1e9)
        cascade.settle(self.cluster, self.clock.now_ns())
        return self

    def regions(self) -> dict[str, int]:
        """pd_regions_status of the PD leader, by type."""
        gauges = pd_members.live_gauges(self.cluster, self.clock.now_ns())["pd_regions_status"]
        return {labels["type"].removesuffix("-region-count"): int(value) for labels, value in gauges}

    def pd_leaders(self) -> dict[int, int]:
        """leader_count of every store in PD's /stores."""
        now = self.clock.now_ns()
        return {s.id: pd_view.heartbeat(self.cluster, s, now).leader_count for s in self.cluster.stores.values()}

    def pd_regions(self, store: int) -> int:
        return pd_view.heartbeat(self.cluster, self.cluster.store(store), self.clock.now_ns()).region_count

    def tikv(self, store: int) -> Mapping[tuple[str, frozenset[tuple[str, str]]], float]:
        """The store's /metrics samples by (name, labels)."""
        text = metrics.store_metrics(self.cluster.store(store), self.clock.now_ns())
        return {(sample.name, frozenset(sample.labels.items())): sample.value
                for family in text_string_to_metric_families(text) for sample in family.samples}

    def leader_gauge(self, store: int) -> float:
        return self.tikv(store)[("tikv_raftstore_region_count", frozenset({("type", "leader")}))]

    def symptoms(self) -> list[tuple[float, str, int | None]]:
        log = cascade.symptoms(self.cluster, self.clock.now_ns())
        return [(s["after_seconds"], s["symptom"], s["store"]) for s in log]


def test_without_the_cascade_a_stopped_store_is_one_symptom() -> None:
    model = Model(cascade_on=False)
    model.fault(fault="stop-store", store=1)
    model.at(TIMING.down_after * 3)
    assert model.pd_leaders() == {1: 20, 2: 20, 3: 20}
    assert model.regions()["down-peer"] == 0
    assert model.symptoms() == []


def test_a_stopped_stores_leaders_move_to_the_up_stores_after_the_election_timeout() -> None:
    model = Model()
    model.at(5).fault(fault="stop-store", store=1)
    model.at(5 + TIMING.election_timeout - 0.5)
    assert model.pd_leaders() == {1: 20, 2: 20, 3: 20}
    model.at(5 + TIMING.election_timeout)
    # PD learns leaders from the regions' own heartbeats: at once, even the dead store's count.
    assert model.pd_leaders() == {1: 0, 2: 30, 3: 30}
    assert model.leader_gauge(2) == model.leader_gauge(3) == 30


def test_the_stores_that_take_over_answer_slower_for_a_while() -> None:
    model = Model()
    model.fault(fault="stop-store", store=1)
    model.at(TIMING.election_timeout)
    assert [model.cluster.store(i).latency_factor for i in (1, 2, 3)] == [1.0, cascade.FAILOVER_LATENCY_FACTOR,
                                                                         cascade.FAILOVER_LATENCY_FACTOR]
    model.at(TIMING.election_timeout + TIMING.latency_recovery)
    assert [model.cluster.store(i).latency_factor for i in (2, 3)] == [1.0, 1.0]
    assert model.cluster.store(2).spec.p99_seconds == 0.01  # the set latency is kept under the passing rise


def test_peers_count_as_down_after_max_peer_down_duration_in_the_gauge_and_the_check() -> None:
    model = Model()
    model.fault(fault="stop-store", store=2)
    model.at(TIMING.peer_down_after - 1)
    assert model.regions()["down-peer"] == 0
    model.at(TIMING.peer_down_after)
    peers = model.cluster.store(2).region_count
    assert model.regions()["down-peer"] == peers == 60
    check = pd_payloads.region_check(model.cluster, "down-peer", model.clock.now_ns())
    assert check["count"] == peers
    assert {r["down_peers"][0]["peer"]["store_id"] for r in check["regions"]} == {2}


def test_with_no_store_to_move_to_down_peers_stay() -> None:
    model = Model(stores=3)  # three replicas on three stores: every healthy store holds a peer of each region
    model.fault(fault="stop-store", store=3)
    model.at(TIMING.down_after * 5)
    assert model.regions()["down-peer"] == 60
    assert model.regions()["pending-peer"] == 0
    assert (TIMING.down_after, "replace-blocked", 3) in model.symptoms()


def test_pd_rebuilds_the_down_peers_elsewhere_once_the_store_is_down() -> None:
    model = Model(stores=4)
    peers = model.cluster.store(4).region_count  # 80 regions x 3 replicas over 4 stores
    before = {i: model.pd_regions(i) for i in (1, 2, 3)}
    model.fault(fault="stop-store", store=4)
    model.at(TIMING.down_after - 0.5)
    assert model.regions()["pending-peer"] == 0
    model.at(TIMING.down_after + 2)
    moving = model.regions()
    # Each move adds a learner (pending while its snapshot applies: one peer too many) before the down one goes.
    assert moving["pending-peer"] == moving["learner-peer"] == moving["extra-peer"] > 0
    model.at(TIMING.down_after + peers * TIMING.replace_seconds_per_region / 3 + TIMING.snapshot_seconds)
    done = model.regions()
    assert (done["down-peer"], done["pending-peer"], done["learner-peer"], done["extra-peer"]) == (0, 0, 0, 0)
    assert model.pd_regions(4) == 0
    assert sum(model.pd_regions(i) - before[i] for i in (1, 2, 3)) == peers
    names = [name for _, name, _ in model.symptoms()]
    assert names.index("down-peer") < names.index("replica-rebuild") < names.index("pending-peer") < names.index(
        "replica-rebuilt")


def test_start_store_clears_down_peers_and_brings_leaders_back_over_a_while() -> None:
    model = Model()
    model.fault(fault="stop-store", store=1)
    model.at(TIMING.peer_down_after + 1)
    assert model.regions()["down-peer"] == 60
    model.fault(fault="start-store", store=1)
    model.at(TIMING.peer_down_after + 1 + TIMING.region_heartbeat_interval - 0.5)
    assert model.regions()["down-peer"] == 60  # until the leaders' next region heartbeats
    model.at(TIMING.peer_down_after + 1 + TIMING.region_heartbeat_interval)
    assert model.regions()["down-peer"] == 0
    halfway = model.pd_leaders()[1]
    assert 0 < halfway < 20
    model.at(TIMING.peer_down_after + 1 + TIMING.leader_rebalance)
    assert model.pd_leaders() == {1: 20, 2: 20, 3: 20}
    assert model.leader_gauge(1) == 20


def test_a_store_back_before_the_election_timeout_sets_nothing_off() -> None:
    model = Model()
    model.fault(fault="stop-store", store=1)
    model.at(TIMING.election_timeout / 2).fault(fault="start-store", store=1)
    model.at(TIMING.down_after * 2)
    assert model.pd_leaders() == {1: 20, 2: 20, 3: 20}
    assert model.regions()["down-peer"] == 0
    assert [name for _, name, _ in model.symptoms()] == ["store-stopped", "store-restarted"]


def test_a_disk_near_full_stalls_writes_and_slows_raft_and_recovers_when_freed() -> None:
    model = Model()
    model.fault(fault="disk", store=2, percent=85)
    assert model.cluster.store(2).write_stall_micros == 0
    model.fault(fault="disk", store=2, percent=cascade.DISK_STALL_PERCENT + 2)
    store = model.cluster.store(2)
    assert store.write_stall_micros > 0
    assert store.raft_p99["append"] == store.raft_p99["apply"] == cascade.DISK_SLOW_RAFT_SECONDS
    stall = model.tikv(2)[("tikv_engine_write_stall", frozenset({("db", "kv"), ("type", "write_stall_max")}))]
    assert stall == cascade.DISK_STALL_MICROS
    assert {name for _, name, s in model.symptoms() if s == 2} == {"write-stall", "raft-append-slow",
                                                                   "raft-apply-slow"}
    model.fault(fault="disk", store=2, percent=50)
    assert store.write_stall_micros == 0
    assert store.raft_p99["append"] == 0.005
    assert model.symptoms()[-1][1] == "disk-recovered"


def test_oom_kill_restarts_the_store_which_is_disconnected_for_a_moment_and_loops() -> None:
    model = Model()
    fault = Fault.from_mapping({"fault": "oom-kill", "store": 3, "times": 3, "downtime": 25, "gap": 40})
    steps = expand(fault, model.cluster)
    assert [(at, step.kind) for at, step in steps] == [
        (0, "oom-stop"), (25, "start-store"), (65, "oom-stop"), (90, "start-store"), (130, "oom-stop"),
        (155, "start-store")]
    starts, states = set(), []
    for at, step in steps:
        model.at(at)
        apply_fault({"basic": model.cluster}, step, model.clock.now_ns())
        starts.add(model.cluster.store(3).start_timestamp)
        if step.kind == "oom-stop":
            model.at(at + 21)
            states.append(pd_view.state_name(model.cluster, model.cluster.store(3), model.clock.now_ns()))
    assert states == ["Disconnected"] * 3
    assert pd_view.state_name(model.cluster, model.cluster.store(3), model.clock.now_ns()) == "Up"
    assert len(starts) == 4  # a new process start time (PD's start_timestamp) at every restart
    assert [s["cause"] for s in cascade.symptoms(model.cluster, model.clock.now_ns())
            if s["symptom"] == "store-restarted"] == ["oom-kill"] * 3


def test_a_node_failure_stops_every_store_on_the_node() -> None:
    model = Model(stores=4, nodes=2)  # node-1: stores 1 and 3, node-2: stores 2 and 4
    assert [s.node for s in model.cluster.slots] == ["node-1", "node-2", "node-1", "node-2"]
    model.fault(fault="store-node", store=4, node="node-3")
    model.fault(fault="node-failure", node="node-2")
    assert [model.cluster.store(i).running for i in (1, 2, 3, 4)] == [True, False, True, True]
    model.fault(fault="node-failure", node="node-1")
    assert [model.cluster.store(i).running for i in (1, 2, 3, 4)] == [False, False, False, True]
    assert {s["cause"] for s in cascade.symptoms(model.cluster, model.clock.now_ns())} == {
        "node-failure node-1", "node-failure node-2"}
    model.fault(fault="node-recover", node="node-1")
    assert [model.cluster.store(i).running for i in (1, 2, 3, 4)] == [True, False, True, True]
    with pytest.raises(FaultError, match="no store of cluster basic runs on node 'node-9'"):
        model.fault(fault="node-failure", node="node-9")


def test_the_cascade_fault_switches_it_and_checks_its_mode() -> None:
    model = Model(cascade_on=False)
    model.fault(fault="cascade", mode="on")
    assert model.cluster.cascade.enabled
    with pytest.raises(FaultError, match="on or off"):
        Fault.from_mapping({"fault": "cascade", "mode": "maybe"})


def test_time_scale_multiplies_every_clock() -> None:
    scaled = Timing().scaled(0.01)
    assert (scaled.down_after, scaled.peer_down_after, scaled.election_timeout) == (18.0, 6.0, 0.1)
    with pytest.raises(ValueError, match="positive"):
        Timing().scaled(0)


def test_the_control_api_reports_the_cascade_of_a_fault() -> None:
    clock = ManualClock()
    with SimulatorThread(SimConfig(stores=3, timing=TIMING, cascade=True), clock=clock) as sim:
        sim.fault({"fault": "stop-store", "store": 2})
        clock.advance(TIMING.peer_down_after)
        log = httpx.get(f"{sim.control_url}/api/v1/clusters/basic/cascade", timeout=5).json()
        assert log["cascade"] is True
        assert [(s["symptom"], s["store"], s["cause"]) for s in log["symptoms"] if s["store"] == 2] == [
            ("store-stopped", 2, "stop-store"), ("leaders-moved", 2, "stop-store"),
            ("store-disconnected", 2, "stop-store"), ("down-peer", 2, "stop-store")]
        assert httpx.get(f"{sim.control_url}/api/v1/clusters/nope/cascade", timeout=5).status_code == 404
        assert sim.cascade_log()["symptoms"] == log["symptoms"]
        summary = sim.summary()["clusters"][0]
        assert summary["region_problems"]["down-peer"] == 60
        assert [s["node"] for s in summary["stores"]] == ["node-1", "node-2", "node-3"]
