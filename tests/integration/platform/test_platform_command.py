"""`hack/platform up|down|env|status`, used the way a developer does."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from harness.platform import PLATFORM, PlatformInfo


def run_platform(directory: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIKV_PLATFORM_DIR": str(directory)}
    return subprocess.run([str(PLATFORM), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_env_exports_work_when_evaluated_in_a_shell(platform: PlatformInfo) -> None:
    script = (
        f'eval "$({PLATFORM} env)" && '
        'kubectl get namespace default -o name && '
        'helm version --short >/dev/null && command -v prometheus >/dev/null && '
        'amtool --alertmanager.url="$ALERTMANAGER_URL" silence query >/dev/null && '
        'test -f "$ALERTMANAGER_WEBHOOK_LOG" && echo "$PROMETHEUS_URL"'
    )
    env = {**os.environ, "TIKV_PLATFORM_DIR": str(platform.directory)}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["namespace/default", platform.prometheus_url]


def test_up_twice_then_down_leaves_nothing_running(tmp_path: Path) -> None:
    directory = tmp_path / "platform"

    first = run_platform(directory, "up")
    assert first.returncode == 0, first.stderr
    state = json.loads((directory / "state.json").read_text())
    pids = {p["name"]: p["pid"] for p in state["procs"]}
    try:
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "prometheus", "webhook",
                             "alertmanager"}
        status = run_platform(directory, "status")
        assert status.returncode == 0
        assert status.stdout.count(" ready ") == 6, status.stdout
        assert f"alertmanager http://127.0.0.1:{state['procs'][-1]['port']} " in status.stdout

        second = run_platform(directory, "up")
        assert second.returncode == 0
        assert "already up" in second.stderr
        assert {p["name"]: p["pid"] for p in json.loads((directory / "state.json").read_text())["procs"]} == pids
    finally:
        down = run_platform(directory, "down")

    assert down.returncode == 0, down.stderr
    assert [name for name, pid in pids.items() if alive(pid)] == []
    after = run_platform(directory, "status")
    assert after.returncode == 3
    assert after.stdout.startswith("platform: down")
    assert run_platform(directory, "env").returncode == 1
