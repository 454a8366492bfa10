"""Deployment conventions: pod-label targets, several namespaces, TiFlash stores, replaced stores, and
PD's /stores order."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.sim.conftest import TIMING
from tests.unit.sim.shapes import by_id, check_store_info
from tikv_sim.clock import ManualClock
from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.embedded import SimulatorThread
from tikv_sim.simulator import SimConfig


def _stores(sim: SimulatorThread, cluster: str | None = None) -> dict[int, dict[str, Any]]:
    url = sim.simulator.pd_url(cluster)
    return by_id(httpx.get(f"{url}/pd/api/v1/stores", timeout=5).json())


def test_pod_label_targets_carry_kubernetes_meta_labels_and_no_instance(tmp_path: Path) -> None:
    path = tmp_path / "kubernetes" / "targets.json"
    config = SimConfig(stores=2, namespace="prod", instance_label=InstanceLabel.POD_LABEL, file_sd=path,
                       extra_labels={"test_id": "t3"}, control_port=None)  # fmt: skip
    with SimulatorThread(config) as sim:
        groups = json.loads(path.read_text())
        stores = _stores(sim)
        summary = sim.summary()["clusters"][0]["stores"]
    store, pd = groups[0], groups[2]
    assert store["targets"] == [summary[0]["instance"]]
    assert store["targets"][0].startswith("127.0.0.1:")
    labels = store["labels"]
    assert "instance" not in labels
    assert labels == {
        "__meta_kubernetes_namespace": "prod",
        "__meta_kubernetes_pod_name": "basic-tikv-0",
        "__meta_kubernetes_pod_container_name": "tikv",
        "__meta_kubernetes_service_name": "basic-tikv-peer",
        "__meta_kubernetes_endpoint_port_name": "status",
        "__meta_kubernetes_pod_ip": labels["__meta_kubernetes_pod_ip"],
        "test_id": "t3",
    }
    assert labels["__meta_kubernetes_pod_ip"].startswith("10.244.")
    assert groups[1]["labels"]["__meta_kubernetes_pod_ip"] != labels["__meta_kubernetes_pod_ip"]
    assert [g["labels"]["__meta_kubernetes_pod_name"] for g in groups[2:]] == ["basic-pd-0", "basic-pd-1", "basic-pd-2"]
    assert len({g["labels"]["__meta_kubernetes_pod_ip"] for g in groups}) == 5  # a pod IP each
    assert pd["labels"]["__meta_kubernetes_pod_container_name"] == "pd"
    assert pd["labels"]["__meta_kubernetes_service_name"] == "basic-pd"
    assert pd["labels"]["__meta_kubernetes_endpoint_port_name"] == "client"
    assert stores[1]["store"]["address"] == "basic-tikv-0.basic-tikv-peer.prod.svc:20160"
    assert stores[1]["store"]["status_address"] == "basic-tikv-0.basic-tikv-peer.prod.svc:20180"
    assert summary[0]["pod"] == "basic-tikv-0"


def test_pod_label_restart_moves_the_pod_to_a_new_address(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    config = SimConfig(stores=2, instance_label=InstanceLabel.POD_LABEL, file_sd=path, control_port=None,
                       grpc_series="lean")  # fmt: skip
    with SimulatorThread(config) as sim:
        before = json.loads(path.read_text())[0]
        old_url = sim.metrics_url(1)
        sim.fault({"fault": "stop-store", "store": 1})
        assert json.loads(path.read_text())[0] == before  # a stopped pod keeps its target (scrapes fail)
        sim.fault({"fault": "start-store", "store": 1})
        after = json.loads(path.read_text())[0]
        new_url = sim.metrics_url(1)
        summary = sim.summary()["clusters"][0]["stores"][0]
        assert httpx.get(new_url, timeout=2).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(old_url, timeout=2)
        stores = _stores(sim)
    assert after["targets"] != before["targets"]
    assert after["labels"]["__meta_kubernetes_pod_ip"] != before["labels"]["__meta_kubernetes_pod_ip"]
    assert after["labels"]["__meta_kubernetes_pod_name"] == "basic-tikv-0"
    assert summary["instance"] == after["targets"][0]
    assert stores[1]["store"]["status_address"].startswith("basic-tikv-0.")  # PD knows only the DNS name


def test_no_status_address(clock: ManualClock) -> None:
    config = SimConfig(stores=1, status_address=False, instance_label=InstanceLabel.POD_NAME, control_port=None)
    with SimulatorThread(config, clock=clock) as sim:
        meta = _stores(sim)[1]["store"]
    assert "status_address" not in meta
    assert meta["address"] == "basic-tikv-0.basic-tikv-peer.tidb.svc:20160"


def test_two_namespaces_with_the_same_pod_names(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    config = SimConfig(stores=2, namespaces=("alpha", "beta"), instance_label=InstanceLabel.POD_NAME,
                       file_sd=path, grpc_series="lean")  # fmt: skip
    with SimulatorThread(config) as sim:
        summary = sim.summary()["clusters"]
        assert [(c["key"], c["name"], c["namespace"]) for c in summary] == [
            ("alpha/basic", "basic", "alpha"),
            ("beta/basic", "basic", "beta"),
        ]
        assert _stores(sim, "beta/basic")[1]["store"]["address"] == "basic-tikv-0.basic-tikv-peer.beta.svc:20160"
        sim.fault({"fault": "stop-store", "store": 2, "cluster": "beta/basic"})
        running = {c["key"]: [s["running"] for s in c["stores"]] for c in sim.summary()["clusters"]}
        assert running == {"alpha/basic": [True, True], "beta/basic": [True, False]}
        ambiguous = httpx.post(f"{sim.control_url}/api/v1/faults",
                               json={"fault": "stop-store", "store": 1, "cluster": "basic"}, timeout=5)  # fmt: skip
        assert ambiguous.status_code == 404
        assert "ambiguous" in ambiguous.json()["error"]
        one = httpx.get(f"{sim.control_url}/api/v1/clusters/beta/basic", timeout=5).json()
        assert one["key"] == "beta/basic"
    groups = json.loads(path.read_text())
    pods = [(g["labels"]["kubernetes_namespace"], g["labels"]["instance"]) for g in groups]
    members = ["basic-pd-0", "basic-pd-1", "basic-pd-2"]
    assert pods == [(ns, pod) for ns in ("alpha", "beta") for pod in ["basic-tikv-0", "basic-tikv-1", *members]]
    assert {g["labels"]["tidb_cluster"] for g in groups} == {"alpha-basic", "beta-basic"}
    assert {g["labels"]["cluster"] for g in groups} == {"basic"}


def test_unique_names_keep_plain_keys() -> None:
    config = SimConfig(stores=1, clusters=2, namespaces=("a", "b"), control_port=None, grpc_series="lean")
    keys = [key for _, _, key in config.plan()]
    assert keys == ["a/basic-1", "a/basic-2", "b/basic-1", "b/basic-2"]
    assert [key for _, _, key in SimConfig(clusters=2).plan()] == ["basic-1", "basic-2"]


def _families(url: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(httpx.get(url, timeout=5).text)}


def test_tiflash_stores(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "targets.json"
    config = SimConfig(stores=3, tiflash=1, instance_label=InstanceLabel.POD_NAME, file_sd=path, timing=TIMING)
    with SimulatorThread(config, clock=clock) as sim:
        stores = _stores(sim)
        tiflash = stores[4]
        check_store_info(tiflash)
        families = _families(sim.metrics_url(4))
        text = httpx.get(sim.metrics_url(4), timeout=5).text
        sim.fault({"fault": "rolling-restart", "downtime": 5, "gap": 1})
        plan = sim.summary()["timelines_running"]
        sim.fault({"fault": "stop-store", "store": 4})
        clock.advance(TIMING.disconnect_after + 1)
        assert _stores(sim)[4]["store"]["state_name"] == "Disconnected"
        sim.fault({"fault": "start-store", "store": 4})
        assert _stores(sim)[4]["store"]["state_name"] == "Up"
    meta = tiflash["store"]
    assert {"key": "engine", "value": "tiflash"} in meta["labels"]
    assert not any(label["key"] == "engine" for label in stores[1]["store"]["labels"])
    assert meta["address"] == "basic-tiflash-0.basic-tiflash-peer.tidb.svc:3930"
    assert meta["status_address"] == "basic-tiflash-0.basic-tiflash-peer.tidb.svc:20292"
    assert meta["version"] == "v8.5.0"
    assert not any(name.startswith("tikv_") for name in families)
    assert "tiflash_proxy_tikv_store_size_bytes" in families
    assert "tiflash_proxy_process_start_time_seconds" in families
    assert 'tiflash_proxy_tikv_store_size_bytes{type="capacity"}' in text
    assert plan == 1
    groups = json.loads(path.read_text())
    assert groups[3]["labels"]["instance"] == "basic-tiflash-0"
    assert groups[3]["labels"]["component"] == "tiflash"


def test_tiflash_in_tiup_mode_listens_on_loopback(clock: ManualClock) -> None:
    config = SimConfig(stores=2, tiflash=1, control_port=None, grpc_series="lean")
    with SimulatorThread(config, clock=clock) as sim:
        meta = _stores(sim)[3]["store"]
        assert meta["address"] == "127.0.0.1:20162"
        assert sim.metrics_url(3) == f"http://{meta['status_address']}/metrics"


def test_replace_store_registers_a_new_store_on_the_same_address(sim: SimulatorThread, clock: ManualClock) -> None:
    clock.advance(100)
    url = sim.metrics_url(2)
    old_start = httpx.get(url, timeout=5).text
    sim.fault({"fault": "replace-store", "store": 2})
    stores = _stores(sim)
    assert sorted(stores) == [1, 2, 3, 4]
    old, new = stores[2]["store"], stores[4]["store"]
    assert (old["state_name"], old["physically_destroyed"], old["node_state"]) == ("Offline", True, 2)
    assert new["state_name"] == "Up"
    assert "physically_destroyed" not in new
    assert (new["address"], new["status_address"], new["labels"]) == (old["address"], old["status_address"],
                                                                       old["labels"])  # fmt: skip
    assert sim.metrics_url(4) == url  # the same pod serves the new store's metrics
    text = httpx.get(url, timeout=5).text
    assert "process_start_time_seconds 1764000100" in text
    assert text != old_start
    clock.advance(TIMING.down_after * 2)
    stores = _stores(sim)
    assert stores[2]["store"]["state_name"] == "Offline"  # it never heartbeats again
    assert stores[4]["store"]["state_name"] == "Up"
    summary = {s["id"]: s for s in sim.summary()["clusters"][0]["stores"]}
    assert summary[2]["running"] is False
    assert summary[2]["metrics_url"] is None
    assert summary[4]["pod"] == summary[2]["pod"] == "basic-tikv-1"
    with pytest.raises(KeyError):
        sim.metrics_url(2)
    again = httpx.post(f"{sim.control_url}/api/v1/faults", json={"fault": "replace-store", "store": 2}, timeout=5)
    assert again.status_code == 400


def test_stores_come_in_a_new_order_on_every_call(sim: SimulatorThread) -> None:
    orders = {
        tuple(i["store"]["id"] for i in httpx.get(f"{sim.pd_url}/pd/api/v1/stores", timeout=5).json()["stores"])
        for _ in range(30)
    }
    assert len(orders) > 1  # 3 stores: 6 orders; 30 calls all alike would be a 1 in 6**29 event


def _orders(config: SimConfig, calls: int = 8) -> list[tuple[int, ...]]:
    with SimulatorThread(config) as sim:
        return [tuple(_stores_in_order(sim)) for _ in range(calls)]


def _stores_in_order(sim: SimulatorThread) -> list[int]:
    return [i["store"]["id"] for i in httpx.get(f"{sim.pd_url}/pd/api/v1/stores", timeout=5).json()["stores"]]


def test_a_seed_makes_the_order_repeatable_and_shuffling_can_be_turned_off() -> None:
    seeded = SimConfig(stores=4, seed=7, control_port=None, grpc_series="lean")
    assert _orders(seeded) == _orders(seeded)
    assert len(set(_orders(seeded))) > 1
    plain = SimConfig(stores=4, shuffle_stores=False, control_port=None, grpc_series="lean")
    assert set(_orders(plain)) == {(1, 2, 3, 4)}
