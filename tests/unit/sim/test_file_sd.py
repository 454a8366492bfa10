"""The scrape target file labels targets as tiup or tidb-operator deployments do."""

import json
from pathlib import Path

import httpx

from tests.unit.sim.shapes import by_id
from tikv_sim.cluster_model import InstanceLabel
from tikv_sim.embedded import SimulatorThread
from tikv_sim.simulator import SimConfig


def test_status_address_convention(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    config = SimConfig(stores=2, file_sd=path, extra_labels={"test_id": "t1"}, control_port=None)
    with SimulatorThread(config) as sim:
        groups = json.loads(path.read_text())
        body = httpx.get(f"{sim.pd_url}/pd/api/v1/stores", timeout=5).json()
    stores = [by_id(body)[store_id] for store_id in (1, 2)]
    assert len(groups) == 5  # two stores and three PD members
    for group, store in zip(groups, stores, strict=False):
        status_address = store["store"]["status_address"]
        assert group == {"targets": [status_address], "labels": {"instance": status_address, "test_id": "t1"}}
    for group in groups[2:]:  # tiup lists each PD member by its client address
        assert group["targets"][0].startswith("127.0.0.1:")
        assert group["labels"] == {"instance": group["targets"][0], "test_id": "t1"}
    assert len({g["targets"][0] for g in groups}) == 5
    assert not list(tmp_path.glob(".*tmp"))


def test_pod_name_convention(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    config = SimConfig(
        stores=2,
        namespace="prod",
        instance_label=InstanceLabel.POD_NAME,
        file_sd=path,
        extra_labels={"test_id": "t2"},
        control_port=None,
    )
    with SimulatorThread(config) as sim:
        groups = json.loads(path.read_text())
        stores = [by_id(httpx.get(f"{sim.pd_url}/pd/api/v1/stores", timeout=5).json())[1]]
        members = httpx.get(f"{sim.pd_url}/pd/api/v1/members", timeout=5).json()
    assert groups[0]["labels"] == {
        "instance": "basic-tikv-0",
        "component": "tikv",
        "tidb_cluster": "prod-basic",
        "cluster": "basic",
        "kubernetes_namespace": "prod",
        "test_id": "t2",
    }
    assert groups[0]["targets"][0].startswith("127.0.0.1:")
    assert [g["labels"]["instance"] for g in groups[2:]] == ["basic-pd-0", "basic-pd-1", "basic-pd-2"]
    assert {g["labels"]["component"] for g in groups[2:]} == {"pd"}
    assert groups[2]["labels"]["tidb_cluster"] == "prod-basic"
    first = stores[0]["store"]
    assert first["address"] == "basic-tikv-0.basic-tikv-peer.prod.svc:20160"
    assert first["status_address"] == "basic-tikv-0.basic-tikv-peer.prod.svc:20180"
    # The pod name is the first DNS label of the address: how an operator maps PD stores to instances.
    assert first["address"].split(".")[0] == groups[0]["labels"]["instance"]
    assert members["leader"]["name"] == "basic-pd-0"


def test_many_clusters_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    config = SimConfig(stores=5, clusters=20, file_sd=path, instance_label=InstanceLabel.POD_NAME)
    with SimulatorThread(config) as sim:
        summary = sim.summary()
        assert len(summary["clusters"]) == 20
        names = [c["name"] for c in summary["clusters"]]
        assert names[0] == "basic-1"
        assert names[-1] == "basic-20"
        pd_urls = {c["pd_url"] for c in summary["clusters"]}
        assert len(pd_urls) == 20
        last = summary["clusters"][-1]
        assert httpx.get(f"{last['pd_url']}/pd/api/v1/stores", timeout=5).json()["count"] == 5
        sim.fault({"fault": "stop-store", "store": 5, "cluster": "basic-20"})
        states = [s["running"] for c in sim.summary()["clusters"] for s in c["stores"]]
        assert states.count(False) == 1
    groups = json.loads(path.read_text())
    assert len(groups) == 20 * (5 + 3)
    assert len({(g["labels"]["tidb_cluster"], g["labels"]["instance"]) for g in groups}) == 160
