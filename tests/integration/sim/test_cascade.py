"""A real `tikv-sim run --cascade` process on a scaled clock: one stopped store, and what PD and the other
stores show next over HTTP (PD's /stores, /regions/check/down-peer and gauges, TiKV's /metrics)."""

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

TIKV_SIM = str(Path(sys.executable).parent / "tikv-sim")
SCALE = 0.003  # PD's 30 minutes of max-store-down-time in 5.4 s, TiKV's 10 minutes of max-peer-down-duration in 1.8 s
WAIT_S = 30.0


def _until(read: Callable[[], Any], ready: Callable[[Any], bool], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    seen = None
    while time.monotonic() < deadline:
        seen = read()
        if ready(seen):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last seen {seen!r}")


def _samples(url: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    text = httpx.get(url, timeout=5).text
    return {frozenset(s.labels.items()): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name == name}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The state file's summary: the control URL and the cluster's URLs."""
    state = tmp_path / "state.json"
    process = subprocess.Popen(
        [TIKV_SIM, "run", "--stores", "4", "--cascade", "--time-scale", str(SCALE), "--state-file", str(state),
         "--no-shuffle-stores", "--grpc-series", "lean", "--duration", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _until(lambda: state.exists() and state.stat().st_size > 0, bool, "the state file")
        yield json.loads(state.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr


def _fault(control_url: str, **fault: Any) -> None:
    """Through the control API (`tikv-sim fault` posts the same; a CLI start costs seconds on a busy machine)."""
    response = httpx.post(f"{control_url}/api/v1/faults", json=fault, timeout=10)
    assert response.status_code == 200, response.text


def test_a_stopped_store_cascades_and_heals(running: dict[str, Any]) -> None:
    summary, control = running["clusters"][0], running["control_url"]
    pd = f"{summary['pd_url']}/pd/api/v1"

    def stores() -> dict[int, dict[str, Any]]:
        return {s["store"]["id"]: s for s in httpx.get(f"{pd}/stores", timeout=5).json()["stores"]}

    def leaders() -> dict[int, int]:
        return {i: s["status"]["leader_count"] for i, s in stores().items()}

    assert leaders() == {1: 20, 2: 20, 3: 20, 4: 20}
    _fault(control, fault="stop-store", store=4)

    # The election timeout (30 ms here): store 4's leaders are on the three others, in PD and in TiKV's gauge.
    moved = _until(leaders, lambda v: v[4] == 0, "store 4's leaders to move")
    assert sum(moved.values()) == 80
    gauge = _samples(summary["stores"][0]["metrics_url"], "tikv_raftstore_region_count")
    assert gauge[frozenset({("type", "leader")})] == moved[1] > 20

    # max-peer-down-duration: the leaders report store 4's 60 peers down.
    def down_peers() -> dict[str, Any]:
        return httpx.get(f"{pd}/regions/check/down-peer", timeout=5).json()

    down = _until(down_peers, lambda v: v["count"] > 0, "down peers")
    assert down["count"] == 60
    assert {r["down_peers"][0]["peer"]["store_id"] for r in down["regions"]} == {4}
    gauges = _samples(f"{summary['pd_url']}/metrics", "pd_regions_status")
    assert gauges[frozenset({("type", "down-peer-region-count")})] == 60

    # max-store-down-time: Down, and PD rebuilds the 60 peers on the three other stores.
    _until(lambda: stores()[4]["store"]["state_name"], lambda v: v == "Down", "store 4 to be Down")
    rebuilt = _until(stores, lambda v: v[4]["status"]["region_count"] == 0, "store 4's peers to be rebuilt")
    assert sum(s["status"]["region_count"] for s in rebuilt.values()) == 240  # 80 regions x 3 replicas
    assert _until(down_peers, lambda v: v["count"] == 0, "no down peers")["count"] == 0

    # The store comes back: Up at once, its leaders back over balance-leader's while.
    _fault(control, fault="start-store", store=4)
    _until(leaders, lambda v: v[4] == 20, "store 4's leaders to come back")
    assert stores()[4]["store"]["state_name"] == "Up"

    # The ground truth: each symptom once, in the order PD and TiKV produce them, all caused by stop-store.
    log = httpx.get(f"{control}/api/v1/clusters/basic/cascade", timeout=5).json()["symptoms"]
    seen = [s["symptom"] for s in log if s["store"] == 4]
    assert seen == ["store-stopped", "leaders-moved", "store-disconnected", "down-peer", "store-down",
                    "replica-rebuild", "replica-rebuilt", "store-restarted", "leaders-rebalanced"]
    assert {s["cause"] for s in log} == {"stop-store"}
    assert {s["store"] for s in log if s["symptom"] == "latency-raised"} == {1, 2, 3}
