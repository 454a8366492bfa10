"""The platform's bookkeeping: `down` must stop exactly what `up` started, and `env` must be eval-able."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lp() -> ModuleType:
    spec = importlib.util.spec_from_file_location("localplatform", REPO / "hack" / "localplatform.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["localplatform"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def sleeper(lp: ModuleType, tmp_path: Path, name: str = "sleeper"):
    return lp.spawn(name, ["sleep", "60"], 0, tmp_path / "logs")


def test_stop_ends_the_processes_it_recorded(lp: ModuleType, tmp_path: Path) -> None:
    procs = [sleeper(lp, tmp_path, "a"), sleeper(lp, tmp_path, "b")]
    state = lp.State(str(tmp_path), "", "", "", "", procs)

    stopped = lp.stop(state)

    assert stopped == ["b", "a"]  # newest first, like the platform's dependency order
    assert not any(lp.is_alive(p) for p in procs)


def test_stop_leaves_alone_a_process_that_reuses_a_recorded_pid(lp: ModuleType, tmp_path: Path) -> None:
    proc = sleeper(lp, tmp_path)
    # Same pid, different start time: what a recycled pid looks like after the original exited.
    impostor = lp.Proc(proc.name, proc.pid, proc.start_ticks + 1, 0, proc.log)
    try:
        assert lp.stop(lp.State(str(tmp_path), "", "", "", "", [impostor])) == []
        assert lp.is_alive(proc)
    finally:
        lp.stop(lp.State(str(tmp_path), "", "", "", "", [proc]))
    assert not lp.is_alive(proc)


def test_a_process_that_ignores_sigterm_is_killed(lp: ModuleType, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(lp, "STOP_TIMEOUT_S", 0.5)
    proc = lp.spawn("stubborn", ["bash", "-c", "trap '' TERM; sleep 60 & wait; sleep 60"], 0, tmp_path / "logs")

    assert lp.stop(lp.State(str(tmp_path), "", "", "", "", [proc])) == ["stubborn"]
    assert not lp.is_alive(proc)


def test_state_survives_a_save_and_load(lp: ModuleType, tmp_path: Path) -> None:
    state = lp.State(str(tmp_path), "/k", "http://127.0.0.1:9", "/sd", "https://127.0.0.1:6443",
                     [lp.Proc("etcd", 12, 34, 2379, "/l")])
    state.save()

    assert lp.State.load(tmp_path) == state
    assert lp.State.load(tmp_path / "absent") is None


def test_env_output_can_be_evaluated_by_a_shell(lp: ModuleType, tmp_path: Path, monkeypatch, capsys) -> None:
    odd = tmp_path / "dir with 'quotes' and $dollars"
    odd.mkdir()
    monkeypatch.setenv("TIKV_PLATFORM_DIR", str(odd))
    lp.State(str(odd), str(odd / "kubeconfig"), "http://127.0.0.1:9090", str(odd / "sd"), "https://x",
             [lp.Proc("etcd", 1, 1, 1, "")]).save()

    assert lp.main(["env"]) == 0
    exports = capsys.readouterr().out
    shown = subprocess.run(["bash", "-c", exports + 'printf "%s\\n" "$KUBECONFIG" "$PROMETHEUS_URL"'],
                           capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]}).stdout
    assert shown.splitlines() == [str(odd / "kubeconfig"), "http://127.0.0.1:9090"]


def test_env_and_status_say_when_the_platform_is_down(lp: ModuleType, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TIKV_PLATFORM_DIR", str(tmp_path))

    assert lp.main(["env"]) == 1
    assert "the platform is not up" in capsys.readouterr().err
    assert lp.main(["status"]) == 3
    assert capsys.readouterr().out.startswith("platform: down")


def test_free_ports_are_on_loopback_and_bindable(lp: ModuleType) -> None:
    import socket

    port = lp.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert 1024 < port < 65536


def test_a_state_from_before_alertmanager_loads_and_is_not_up(lp: ModuleType, tmp_path: Path) -> None:
    old = {"directory": str(tmp_path), "kubeconfig": "/k", "prometheus_url": "http://127.0.0.1:9", "file_sd_dir": "/sd",
           "apiserver_url": "https://127.0.0.1:6443",
           "procs": [{"name": n, "pid": 1, "start_ticks": 1, "port": 0, "log": ""}
                     for n in ("etcd", "kube-apiserver", "kube-controller-manager", "prometheus")]}
    (tmp_path / "state.json").write_text(json.dumps(old))

    state = lp.State.load(tmp_path)

    assert state.alertmanager_url == ""
    # Its component set lacks webhook and alertmanager: `up` restarts it rather than calling it up.
    assert not lp.is_up(state, {n: "ready" for n in lp.COMPONENTS})


def test_the_webhook_sink_logs_each_post_as_one_line_and_stops_on_sigterm(lp: ModuleType, tmp_path: Path) -> None:
    port, log_file = lp.free_port(), tmp_path / "webhook.jsonl"
    proc = lp.spawn("webhook", lp.webhook_sink_argv(port, log_file), port, tmp_path / "logs")
    try:
        lp.wait_ready(proc, lambda: lp.http_ok(f"http://127.0.0.1:{port}/"), "GET /")
        for status in ("firing", "resolved"):
            body = json.dumps({"version": "4", "status": status, "alerts": [{"labels": {"a": "b"}}]}, indent=2)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body.encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback http)
                assert response.status == 200

        lines = log_file.read_text().splitlines()
        assert [json.loads(line)["status"] for line in lines] == ["firing", "resolved"]
    finally:
        stopped = lp.stop(lp.State(str(tmp_path), "", "", "", "", [proc]))
    assert stopped == ["webhook"]
    assert not lp.is_alive(proc)
    assert "ignored SIGTERM" not in (tmp_path / "logs" / "webhook.log").read_text()


def test_restart_starts_a_component_that_died_the_same_way(lp: ModuleType, tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    monkeypatch.setenv("TIKV_PLATFORM_DIR", str(tmp_path))
    port = lp.free_port()
    proc = lp.spawn("webhook", lp.webhook_sink_argv(port, tmp_path / "webhook.jsonl"), port, tmp_path / "logs")
    state = lp.State(str(tmp_path), str(tmp_path / "kubeconfig"), "", "", "", [proc])
    state.save()
    try:
        lp.wait_ready(proc, lambda: lp.http_ok(f"http://127.0.0.1:{port}/"), "GET /")
        assert lp.main(["restart", "webhook"]) == 0
        assert "is running" in capsys.readouterr().err
        os.kill(proc.pid, signal.SIGKILL)
        os.waitpid(proc.pid, 0)

        assert lp.main(["restart", "webhook"]) == 0

        (again,) = lp.State.load(tmp_path).procs
        assert again.pid != proc.pid
        assert lp.is_alive(again)
        assert (again.argv, again.port) == (proc.argv, port)
        assert lp.http_ok(f"http://127.0.0.1:{port}/")  # ready before restart returned
        assert lp.main(["restart", "prometheus"]) == 1
        assert "no component 'prometheus': webhook" in capsys.readouterr().err
    finally:
        assert lp.stop(lp.State.load(tmp_path)) in (["webhook"], [])
