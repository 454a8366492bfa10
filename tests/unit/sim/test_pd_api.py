"""The PD HTTP API answers with PD's JSON shapes."""

import json
import re

import httpx

from tests.unit.sim.shapes import MEMBER_KEYS, RFC3339_PATTERN, by_id, check_store_info
from tikv_sim.clock import ManualClock
from tikv_sim.embedded import SimulatorThread


def test_stores_have_pd_shape_and_omit_zero_fields(pd: httpx.Client) -> None:
    response = pd.get("/stores")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    body = response.json()
    assert body["count"] == 3 == len(body["stores"])
    for info in body["stores"]:
        check_store_info(info)
        assert info["store"]["state_name"] == "Up"
        assert "state" not in info["store"]
        for absent in ("pending_peer_count", "learner_count", "is_busy", "sending_snap_count"):
            assert absent not in info["status"]
    first = by_id(body)[1]
    assert first["status"]["capacity"] == "100GiB"
    assert first["status"]["available"] == "70GiB"
    assert first["status"]["leader_weight"] == 1
    assert '"leader_weight": 1,' in response.text
    assert [label["key"] for label in first["store"]["labels"]] == ["zone", "host"]


def test_status_address_is_the_real_metrics_endpoint(sim: SimulatorThread, pd: httpx.Client) -> None:
    stores = {s["store"]["id"]: s["store"] for s in pd.get("/stores").json()["stores"]}
    for store_id, meta in stores.items():
        assert sim.metrics_url(store_id) == f"http://{meta['status_address']}/metrics"
        assert httpx.get(sim.metrics_url(store_id), timeout=5).status_code == 200


def test_uptime_and_heartbeat_times_follow_heartbeats(pd: httpx.Client, clock: ManualClock) -> None:
    started = clock.now_ns()  # the manual clock has not moved since the stores started
    clock.advance(3600 + 25)  # a heartbeat every 10 s: the last one was 3620 s after start
    info = pd.get("/stores").json()["stores"][0]
    status, meta = info["status"], info["store"]
    assert meta["start_timestamp"] == started // 10**9
    assert meta["last_heartbeat"] == started + 3620 * 10**9
    assert status["uptime"] == "1h0m20s"
    assert status["start_ts"] == "2025-11-24T16:00:00Z"
    assert status["last_heartbeat_ts"] == "2025-11-24T17:00:20Z"


def test_state_filter_leaves_tombstones_out_unless_asked(sim: SimulatorThread, pd: httpx.Client) -> None:
    sim.fault({"fault": "store-state", "store": 3, "state": "Tombstone"})
    sim.fault({"fault": "store-state", "store": 2, "state": "Offline"})
    default = by_id(pd.get("/stores").json())
    assert sorted(default) == [1, 2]
    offline = default[2]["store"]
    assert offline["state"] == 1
    assert offline["state_name"] == "Offline"
    tombstones = pd.get("/stores", params={"state": 2}).json()
    assert tombstones["count"] == 1
    assert tombstones["stores"][0]["store"]["state"] == 2
    assert tombstones["stores"][0]["store"]["state_name"] == "Tombstone"
    both = pd.get("/stores", params=[("state", "0"), ("state", "2")]).json()
    assert {s["store"]["id"] for s in both["stores"]} == {1, 3}
    bad = pd.get("/stores", params={"state": "x"})
    assert bad.status_code == 500  # real PD: a bad ?state is an internal error, not a 400
    assert "invalid syntax" in bad.json()


def test_member_ids_are_uint64_json_integers_above_2_pow_53(pd: httpx.Client) -> None:
    health = pd.get("/health")
    assert [m["name"] for m in health.json()] == ["pd-0", "pd-1", "pd-2"]  # three PD members, as deployed
    member = health.json()[0]
    assert set(member) == {"name", "member_id", "client_urls", "health"}
    assert member["health"] is True
    assert isinstance(member["member_id"], int)
    assert 2**53 < member["member_id"] < 2**64
    # A JSON integer, not a string or a float in e-notation: float parsers would lose digits.
    assert re.search(rf'"member_id": {member["member_id"]}\b', health.text)

    members = pd.get("/members").json()
    assert set(members) == {"header", "members", "leader", "etcd_leader"}
    assert len({m["member_id"] for m in members["members"]}) == 3
    assert isinstance(members["header"]["cluster_id"], int)
    assert set(members["leader"]) == MEMBER_KEYS
    assert members["leader"]["member_id"] == member["member_id"]
    assert pd.get("/leader").json() == members["leader"]


def test_cluster_status_and_replication_config(pd: httpx.Client) -> None:
    status = pd.get("/cluster/status").json()
    assert status["is_initialized"] is True
    assert re.match(RFC3339_PATTERN, status["raft_bootstrap_time"])
    assert "replication_status" in status
    config = pd.get("/config/replicate").json()
    assert config["max-replicas"] == 3
    # Booleans and label lists are strings in this endpoint.
    assert config["location-labels"] == "zone,host"
    assert config["strictly-match-label"] == "false"
    assert config["enable-placement-rules"] == "true"


def test_region_checks_list_the_regions_pd_counts(sim: SimulatorThread, pd: httpx.Client) -> None:
    for kind in ("miss-peer", "down-peer", "pending-peer", "offline-peer", "extra-peer", "empty-region"):
        assert pd.get(f"/regions/check/{kind}").json() == {"count": 0, "regions": []}
    sim.fault({"fault": "stop-store", "store": 2})
    sim.fault({"fault": "regions", "miss-peer": 150, "down-peer": 2, "pending-peer": 1})
    miss = pd.get("/regions/check/miss-peer").json()
    assert miss["count"] == 150 == len(miss["regions"])
    region = miss["regions"][0]
    assert {"id", "start_key", "end_key", "epoch", "peers", "leader", "approximate_size"} <= set(region)
    assert len(region["peers"]) == 2  # one replica short of max-replicas 3
    assert region["leader"]["role_name"] == "Voter"
    down = pd.get("/regions/check/down-peer").json()
    assert down["count"] == 2
    assert down["regions"][0]["down_peers"][0]["peer"]["store_id"] == 2  # the stopped store
    assert down["regions"][0]["down_peers"][0]["down_seconds"] >= 600
    pending = pd.get("/regions/check/pending-peer").json()
    assert len(pending["regions"][0]["pending_peers"]) == 1
    assert pd.get("/regions/check/empty-region").json()["count"] == 0


def test_region_stats(pd: httpx.Client) -> None:
    stats = pd.get("/stats/region").json()
    assert stats["count"] == 60
    assert stats["store_leader_count"] == {"1": 20, "2": 20, "3": 20}
    assert set(stats) >= {"count", "empty_count", "storage_size", "storage_keys", "store_peer_count"}


def test_answers_are_indented_like_pd(pd: httpx.Client) -> None:
    text = pd.get("/leader").text
    assert text.startswith('{\n  "name": ')
    assert text.endswith("}\n")
    assert json.loads(text)["binary_version"].startswith("v")
