"""The control API and the `tikv-sim fault` commands change what PD and the stores show."""

import json

import httpx
from typer.testing import CliRunner

from tikv_sim.cli import app
from tikv_sim.embedded import SimulatorThread

runner = CliRunner()


def _post(sim: SimulatorThread, body: object) -> httpx.Response:
    return httpx.post(f"{sim.control_url}/api/v1/faults", json=body, timeout=5)


def test_fault_through_the_control_api(sim: SimulatorThread, pd: httpx.Client) -> None:
    response = _post(sim, {"fault": "stop-store", "store": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["applied"] == {"fault": "stop-store", "store": 2}
    assert [s["running"] for s in body["cluster"]["stores"]] == [True, False, True]
    clusters = httpx.get(f"{sim.control_url}/api/v1/clusters", timeout=5).json()["clusters"]
    assert clusters[0]["name"] == "basic"
    assert clusters[0]["pd_url"] == sim.pd_url
    assert httpx.get(f"{sim.control_url}/api/v1/clusters/basic", timeout=5).json()["stores"][1]["running"] is False


def test_control_api_rejects_bad_faults_with_reasons(sim: SimulatorThread) -> None:
    cases = [
        ({"fault": "explode"}, 400, "unknown fault"),
        ({"fault": "disk", "store": 1}, 400, "needs percent"),
        ({"fault": "disk", "store": 1, "percent": 140}, 400, "0..100"),
        ({"fault": "disk", "store": 1, "percent": "lots"}, 400, "must be a float"),
        ({"fault": "pd", "mode": "sleepy"}, 400, "unknown PD mode"),
        ({"fault": "store-state", "store": 1, "state": "Gone"}, 400, "unknown store state"),
        ({"fault": "regions"}, 400, "at least one"),
        ({"fault": "stop-store", "store": 9}, 404, "no store 9"),
        ({"fault": "stop-store", "store": 1, "cluster": "nope"}, 404, "no cluster 'nope'"),
    ]
    for body, status, message in cases:
        response = _post(sim, body)
        assert response.status_code == status, body
        assert message in response.json()["error"], (body, response.json())
    bad_json = httpx.post(f"{sim.control_url}/api/v1/faults", content=b"{", timeout=5)
    assert bad_json.status_code == 400


def test_cli_fault_commands(sim: SimulatorThread, pd: httpx.Client) -> None:
    control = ["--control", str(sim.control_url)]
    result = runner.invoke(app, ["fault", "disk", "2", "--percent", "85", *control])
    assert result.exit_code == 0, result.output
    assert 'applied {"fault": "disk", "store": 2, "percent": 85.0} to cluster basic' in result.output
    assert runner.invoke(app, ["fault", "latency", "1", "--p99-ms", "250", *control]).exit_code == 0
    assert runner.invoke(app, ["fault", "regions", "--miss-peer", "150", *control]).exit_code == 0
    assert runner.invoke(app, ["fault", "store-state", "3", "Offline", *control]).exit_code == 0
    summary = sim.summary()["clusters"][0]
    assert summary["stores"][1]["disk_used_percent"] == 85
    assert summary["stores"][0]["p99_ms"] == 250
    assert summary["stores"][2]["state_name"] == "Offline"
    assert pd.get("/regions/check/miss-peer").json()["count"] == 150

    result = runner.invoke(app, ["fault", "pd", "--mode", "not-bootstrapped", *control])
    assert result.exit_code == 0, result.output
    assert pd.get("/stores").status_code == 500

    status = runner.invoke(app, ["status", *control])
    assert "mode=not-bootstrapped" in status.output
    assert "Offline" in status.output


def test_cli_reports_errors_and_unreachable_simulator(sim: SimulatorThread) -> None:
    result = runner.invoke(app, ["fault", "stop-store", "7", "--control", str(sim.control_url)])
    assert result.exit_code == 1
    assert "no store 7" in result.output
    gone = runner.invoke(app, ["fault", "stop-store", "1", "--control", "http://127.0.0.1:9"])
    assert gone.exit_code == 2
    assert "cannot reach tikv-sim" in gone.output


def test_cli_commands_for_timelines_and_deployment_faults(sim: SimulatorThread, pd: httpx.Client) -> None:
    control = ["--control", str(sim.control_url)]
    commands = [
        ["latency", "1", "--p99-ms", "2000", "--type", "kv_pessimistic_lock", "--weight", "80"],
        ["pd-leader-change", "--election-seconds", "0", "--not-bootstrapped-seconds", "0"],
        ["restart-store", "2", "--downtime", "600"],
        ["scale-in", "3", "--drain-seconds", "600"],
        ["replace-store", "1"],
        ["rolling-restart", "--downtime", "600", "--gap", "5"],
    ]
    outputs = []
    for command in commands:
        result = runner.invoke(app, ["fault", *command, *control])
        assert result.exit_code == 0, (command, result.output)
        outputs.append(result.output)
    assert '"type": "kv_pessimistic_lock"' in outputs[0]
    assert '"weight": 80' in outputs[0]
    assert 'at +600s: {"fault": "start-store", "cluster": "basic", "store": 2}' in outputs[2]
    summary = sim.summary()["clusters"][0]
    assert summary["pd_leader"] == "pd-1"
    stores = {s["id"]: s for s in summary["stores"]}
    assert stores[1]["grpc_p99_ms"]["kv_pessimistic_lock"] == 2000
    assert stores[1]["physically_destroyed"] is True
    assert stores[4]["running"] is True
    assert stores[2]["running"] is False
    assert stores[3]["meta_state"] == "Offline"
    assert sim.summary()["timelines_running"] == 3
    status = runner.invoke(app, ["status", *control])
    assert "leader=pd-1 (1 changes)" in status.output


def test_cli_rejects_bad_new_faults_before_sending(sim: SimulatorThread) -> None:
    control = ["--control", str(sim.control_url)]
    result = runner.invoke(app, ["fault", "latency", "1", "--p99-ms", "5", "--type", "kv_nothing", *control])
    assert result.exit_code != 0
    assert "unknown gRPC message type" in result.output
    result = runner.invoke(app, ["fault", "restart-store", "1", "--downtime", "-3", *control])
    assert result.exit_code != 0
    assert "cannot be negative" in result.output


def test_cli_commands_for_health_faults(sim: SimulatorThread) -> None:
    control = ["--control", str(sim.control_url)]
    help_text = runner.invoke(app, ["fault", "--help"]).output
    for name in ("leaders", "raft-log-lag", "raft-append", "raft-apply", "critical-error", "write-stall", "l0-avg"):
        assert name in help_text, name
    commands = [
        (["raft-log-lag", "1", "--entries", "6000"], {"fault": "raft-log-lag", "store": 1, "entries": 6000.0}),
        (["raft-append", "2", "--p99-ms", "1500"], {"fault": "raft-append", "store": 2, "p99_ms": 1500.0}),
        (["raft-apply", "2", "--p99-ms", "900"], {"fault": "raft-apply", "store": 2, "p99_ms": 900.0}),
        (["critical-error", "3"], {"fault": "critical-error", "store": 3}),
        (["critical-error", "3", "--type", "rocksdb iter", "--count", "2"],
         {"fault": "critical-error", "store": 3, "type": "rocksdb iter", "count": 2}),
        (["leaders", "1", "--count", "0"], {"fault": "leaders", "store": 1, "count": 0}),
        (["write-stall", "1", "--micros", "250"], {"fault": "write-stall", "store": 1, "micros": 250.0}),
        (["l0-avg", "1", "--files", "90"], {"fault": "l0-avg", "store": 1, "files": 90}),
        (["regions", "--miss-peer", "40", "--member", "followers"],
         {"fault": "regions", "miss-peer": 40, "member": "followers"}),
    ]  # fmt: skip
    for command, applied in commands:
        result = runner.invoke(app, ["fault", *command, *control])
        assert result.exit_code == 0, (command, result.output)
        assert f"applied {json.dumps(applied)} to cluster basic" in result.output
    text = httpx.get(sim.metrics_url(3), timeout=5).text
    assert 'tikv_critical_error_total{type="sst_corruption"} 1' in text
    assert 'tikv_critical_error_total{type="rocksdb iter"} 2' in text
    assert 'tikv_raftstore_region_count{type="leader"} 0' in httpx.get(sim.metrics_url(1), timeout=5).text
    assert "tikv_engine_write_stall{" in text
    follower = httpx.get(sim.summary()["clusters"][0]["pd_members"][1]["metrics_url"], timeout=5).text
    assert 'pd_regions_status{type="miss-peer-region-count"} 40' in follower
    status = runner.invoke(app, ["status", *control]).output
    assert "pd-0" in status
    assert "leader" in status
    assert "follower" in status

    bad = runner.invoke(app, ["fault", "raft-append", "1", "--p99-ms", "0", *control])
    assert bad.exit_code != 0
    assert "p99_ms must be a finite number above 0" in bad.output
