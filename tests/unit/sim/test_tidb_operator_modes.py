"""What tidb-operator tests need from the simulator: PD on a chosen loopback address (so that a
`<tc>-pd.<ns>` name in /etc/hosts reaches it on port 2379), a host-network deployment whose stores PD
lists at IP addresses, and the `status.tikv` tidb-operator writes."""

import json
import random
import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.sim.conftest import TIMING
from tests.unit.sim.shapes import by_id
from tikv_sim.clock import ManualClock
from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.embedded import SimulatorThread
from tikv_sim.simulator import SimConfig
from tikv_sim.tidb_status import store_pattern

K8S_TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


def _loopback_host(ports: tuple[int, ...]) -> str:
    """A random 127.x.y.z where nothing listens on `ports` yet (a test of its own, even next to others)."""
    for _ in range(20):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(2, 254)}"  # noqa: S311
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return host
    raise AssertionError("no free loopback address")


def _stores(url: str) -> dict[int, dict[str, Any]]:
    return by_id(httpx.get(f"{url}/pd/api/v1/stores", timeout=5).json())


def test_pd_listens_on_the_chosen_host_and_port_and_metrics_stay_on_127_0_0_1(clock: ManualClock) -> None:
    host = _loopback_host((2379, 2380))
    config = SimConfig(stores=2, clusters=2, pd_host=host, pd_port=2379, control_port=None, grpc_series="lean")
    with SimulatorThread(config, clock=clock) as sim:
        urls = [sim.simulator.pd_url(name) for name in ("basic-1", "basic-2")]
        assert urls == [f"http://{host}:2379", f"http://{host}:2380"]
        for url in urls:
            assert len(_stores(url)) == 2
            members = httpx.get(f"{url}/pd/api/v1/members", timeout=5).json()
            assert members["leader"]["client_urls"] == [url]
        assert sim.metrics_url(1, "basic-1").startswith("http://127.0.0.1:")
        summary = sim.summary()["clusters"]
        assert [c["pd_url"] for c in summary] == urls
        assert all(m["metrics_url"].startswith("http://127.0.0.1:") for c in summary for m in c["pd_members"])
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{urls[0]}/pd/api/v1/stores", timeout=2)  # closed with the simulator


def test_pd_on_a_free_port_of_the_chosen_host(clock: ManualClock) -> None:
    host = _loopback_host(())
    with SimulatorThread(SimConfig(stores=1, pd_host=host, control_port=None), clock=clock) as sim:
        assert re.fullmatch(rf"http://{re.escape(host)}:\d+", sim.pd_url)
        assert len(_stores(sim.pd_url)) == 1


def test_the_default_pd_host_is_127_0_0_1(sim: SimulatorThread) -> None:
    assert sim.pd_url.startswith("http://127.0.0.1:")


def test_host_network_pd_lists_ips_while_prometheus_sees_pod_names(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "targets.json"
    config = SimConfig(stores=3, clusters=2, instance_label=InstanceLabel.POD_NAME, host_network=True,
                       file_sd=path, control_port=None, grpc_series="lean")  # fmt: skip
    with SimulatorThread(config, clock=clock) as sim:
        first, second = _stores(sim.simulator.pd_url("basic-1")), _stores(sim.simulator.pd_url("basic-2"))
        text = httpx.get(sim.metrics_url(2, "basic-1"), timeout=5).text
        summary = {s["id"]: s for s in sim.summary()["clusters"][0]["stores"]}
    assert [(m["store"]["address"], m["store"]["status_address"]) for _, m in sorted(first.items())] == [
        (f"10.0.0.{n}:20160", f"10.0.0.{n}:20180") for n in (10, 11, 12)
    ]
    assert second[1]["store"]["address"] == "10.0.1.10:20160"  # another cluster, other nodes
    assert first[1]["store"]["peer_address"] == "10.0.0.10:20160"
    assert {"key": "host", "value": "basic-1-tikv-0"} in first[1]["store"]["labels"]
    assert "tikv_store_size_bytes" in text
    groups = [g for g in json.loads(path.read_text()) if g["labels"]["component"] == "tikv"]
    assert [(g["labels"]["instance"], g["labels"]["tidb_cluster"]) for g in groups[:3]] == [
        (f"basic-1-tikv-{i}", "tidb-basic-1") for i in range(3)
    ]
    # No address PD gives names the pod that Prometheus' instance label names.
    addresses = {m["store"][key] for m in first.values() for key in ("address", "status_address", "peer_address")}
    assert not any(g["labels"]["instance"] in address for g in groups[:3] for address in addresses)
    assert summary[1]["instance"] == "basic-1-tikv-0"
    assert summary[1]["address"] == "10.0.0.10:20160"


def test_host_network_with_pod_labels_keeps_the_node_ip_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    config = SimConfig(stores=2, instance_label=InstanceLabel.POD_LABEL, host_network=True, file_sd=path,
                       control_port=None, grpc_series="lean")  # fmt: skip
    with SimulatorThread(config) as sim:
        before = json.loads(path.read_text())[0]
        sim.fault({"fault": "restart-store", "store": 1, "downtime": 0})
        after = json.loads(path.read_text())[0]
        address = _stores(sim.pd_url)[1]["store"]["address"]
    assert before["labels"]["__meta_kubernetes_pod_ip"] == after["labels"]["__meta_kubernetes_pod_ip"] == "10.0.0.10"
    assert before["targets"] == after["targets"]
    assert address == "10.0.0.10:20160"


@pytest.mark.parametrize("label", [InstanceLabel.STATUS_ADDRESS])
def test_host_network_needs_a_kubernetes_instance_label(label: InstanceLabel) -> None:
    with pytest.raises(ValueError, match="host_network"):
        SimConfig(instance_label=label, host_network=True).validate()
    with pytest.raises(ValueError, match="at most 100"):
        SimConfig(stores=101, instance_label=InstanceLabel.POD_NAME, host_network=True).validate()


def test_status_tikv_stores_as_tidb_operator_writes_them(clock: ManualClock) -> None:
    config = SimConfig(stores=3, tiflash=1, instance_label=InstanceLabel.POD_NAME, timing=TIMING,
                       control_port=None, grpc_series="lean")  # fmt: skip
    with SimulatorThread(config, clock=clock) as sim:
        first = sim.tidb_tikv_status()
        leaders = {i: s["status"]["leader_count"] for i, s in _stores(sim.pd_url).items()}
        sim.fault({"fault": "stop-store", "store": 2})
        clock.advance(TIMING.disconnect_after + 1)
        second = sim.tidb_tikv_status(previous=first)
        sim.fault({"fault": "scale-in", "store": 3, "drain_seconds": 0})
        sim.settle()
        third = sim.tidb_tikv_status(previous=second)
    stores = first["stores"]
    assert first["bootStrapped"] is True
    assert set(first) == {"synced", "phase", "bootStrapped", "stores"}  # empty maps are left out
    assert sorted(stores) == ["1", "2", "3"]  # the TiFlash store (4) is status.tiflash's
    assert stores["1"] == {
        "id": "1",
        "podName": "basic-tikv-0",
        "ip": "basic-tikv-0.basic-tikv-peer.tidb.svc",  # the host part of the address, not an IP
        "leaderCount": leaders[1],
        "state": "Up",
        "lastTransitionTime": stores["1"]["lastTransitionTime"],
    }
    assert re.match(K8S_TIME, stores["1"]["lastTransitionTime"])
    assert [s["podName"] for s in stores.values()] == ["basic-tikv-0", "basic-tikv-1", "basic-tikv-2"]
    assert second["stores"]["2"]["state"] == "Disconnected"
    assert second["stores"]["2"]["lastTransitionTime"] != stores["2"]["lastTransitionTime"]
    assert second["stores"]["1"]["lastTransitionTime"] == stores["1"]["lastTransitionTime"]  # no change
    assert "3" not in third["stores"]
    assert third["tombstoneStores"]["3"]["state"] == "Tombstone"
    assert third["tombstoneStores"]["3"]["podName"] == "basic-tikv-2"


def test_status_stores_under_host_network(clock: ManualClock) -> None:
    config = SimConfig(stores=2, instance_label=InstanceLabel.POD_NAME, host_network=True, control_port=None,
                       grpc_series="lean")  # fmt: skip
    with SimulatorThread(config, clock=clock) as sim:
        faithful = sim.tidb_tikv_status()
        exact = sim.tidb_stores(pod_name_from="pod")
    # tidb-operator itself would not recognise these addresses as its own (and would name the pod "10").
    assert "stores" not in faithful
    assert faithful["peerStores"]["1"]["podName"] == "10"
    assert {k: (v["podName"], v["ip"]) for k, v in exact.items()} == {
        "1": ("basic-tikv-0", "10.0.0.10"),
        "2": ("basic-tikv-1", "10.0.0.11"),
    }


def test_a_replaced_store_and_its_replacement_name_the_same_pod(clock: ManualClock) -> None:
    config = SimConfig(stores=3, instance_label=InstanceLabel.POD_NAME, control_port=None, grpc_series="lean")
    with SimulatorThread(config, clock=clock) as sim:
        sim.fault({"fault": "replace-store", "store": 2})
        stores = sim.tidb_stores()
        exact = sim.tidb_stores(pod_name_from="pod")
    assert (stores["2"]["state"], stores["4"]["state"]) == ("Offline", "Up")
    assert stores["2"]["podName"] == stores["4"]["podName"] == "basic-tikv-1"
    assert exact == stores  # DNS-name addresses: the address gives the real pod


def test_the_store_pattern_is_tidb_operators() -> None:
    pattern = store_pattern("basic", "tidb", "cluster.local")
    assert pattern.fullmatch("basic-tikv-0.basic-tikv-peer.tidb.svc:20160")
    assert pattern.fullmatch("basic-tikv-12.basic-tikv-peer.tidb.svc.cluster.local:20160")
    assert not pattern.fullmatch("basic-tikv-0.basic-tikv-peer.other.svc:20160")
    assert not pattern.fullmatch("10.0.0.10:20160")
    assert not store_pattern("basic", "tidb").fullmatch("basic-tikv-0.basic-tikv-peer.tidb.svc.cluster.local:20160")
