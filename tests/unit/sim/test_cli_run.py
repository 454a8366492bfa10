"""`tikv-sim run` as a user starts it: a real process, a state file, a scenario, Ctrl+C (SIGTERM)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

TIKV_SIM = str(Path(sys.executable).parent / "tikv-sim")


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.ConnectError:
        return True
    return False


def test_run_plays_a_scenario_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    targets = tmp_path / "sd" / "targets.json"
    scenario = tmp_path / "demo.yaml"
    scenario.write_text("- at: 0.3s\n  fault: stop-store\n  store: 1\n")
    process = subprocess.Popen(
        [TIKV_SIM, "run", "--stores", "2", "--state-file", str(state), "--file-sd", str(targets),
         "--scenario", str(scenario), "--label", "env=demo", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: state.exists() and state.stat().st_size > 0, 20, "the state file")
        summary = json.loads(state.read_text())
        cluster = summary["clusters"][0]
        assert httpx.get(f"{cluster['pd_url']}/pd/api/v1/stores", timeout=5).json()["count"] == 2
        assert {g["labels"]["env"] for g in json.loads(targets.read_text())} == {"demo"}
        _wait_for(lambda: _refused(cluster["stores"][0]["metrics_url"]), 10, "store 1 to stop")

        fault = subprocess.run(
            [TIKV_SIM, "fault", "disk", "2", "--percent", "85", "--state-file", str(state)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert fault.returncode == 0, fault.stderr
        metrics = httpx.get(cluster["stores"][1]["metrics_url"], timeout=5).text
        assert 'tikv_store_size_bytes{type="available"} 16106127360' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert f"control: {summary['control_url']}" in stdout
    assert '{"fault": "stop-store", "store": 1}' in stdout
    assert _refused(cluster["pd_url"])
