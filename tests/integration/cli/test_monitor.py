"""`tikv-operator monitor` in a terminal: configuration at start, a heartbeat per check, clean SIGTERM."""

from __future__ import annotations

import selectors
import signal
import subprocess
import time

from harness.kube import Cli
from harness.operator_process import VENV_BIN, SimulatedCluster, start_simulated_cluster, wait_for_ticket
from harness.platform import PlatformInfo
from harness.prometheus import Prometheus, ScrapeTargets


def read_lines(process: subprocess.Popen[str], until: str, count: int, timeout: float) -> list[str]:
    """Lines of stdout until `until` was seen `count` times (bounded by `timeout`)."""
    lines: list[str] = []
    selector = selectors.DefaultSelector()
    assert process.stdout is not None
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while sum(until in line for line in lines) < count:
        if time.monotonic() > deadline or process.poll() is not None:
            raise AssertionError(f"{until!r} not seen {count} times; output so far:\n" + "".join(lines))
        if selector.select(timeout=0.5):
            lines.append(process.stdout.readline())
    return lines


def test_monitor_prints_its_config_and_a_heartbeat_per_check_and_stops_cleanly_on_sigterm(
    platform: PlatformInfo, kubectl: Cli, namespace: str, tikvops_crds: None, prometheus: Prometheus,
    prom_targets: ScrapeTargets,
) -> None:
    tikv: SimulatedCluster = start_simulated_cluster(prometheus, prom_targets)
    env = {**platform.env(), "PD_ENDPOINT": tikv.pd_url, "PROMETHEUS_URL": prometheus.url}
    process = subprocess.Popen(
        [str(VENV_BIN / "tikv-operator"), "monitor", "--interval", "1", "--name", "mon", "-n", namespace],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        lines = read_lines(process, "check complete", 2, timeout=40)
        output = "".join(lines)
        assert f"Monitoring TiKVCluster {namespace}/mon" in output
        assert f"PD endpoint:    {tikv.pd_url}" in output
        assert f"Prometheus:     {prometheus.url}" in output
        assert "Interval:       1s" in output
        assert "check complete: 18 invariants" in output
        # The platform exports ALERTMANAGER_URL, as PROMETHEUS_URL: the monitor's tickets page through it.
        assert f"Alertmanager:   {platform.alertmanager_url}" in output
        spec = kubectl.json("get", "tkc", "mon")["spec"]
        assert (spec["pd"]["url"], spec["interval"]) == (tikv.pd_url, "1s")
        assert spec["alertmanager"]["urls"] == [platform.alertmanager_url]

        tikv.fault(kind="stop-store", store=1)
        wait_for_ticket(kubectl, "store_down", "1")
        read_lines(process, "1 violation", 1, timeout=20)
        # Deleted while the monitor runs, so it releases its finalizer as an operator would.
        kubectl("delete", "tkc", "mon", "--timeout=30s")
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
        tikv.sim.__exit__(None, None, None)
    assert process.returncode == 0, rest
    assert "Traceback" not in rest
    assert "Monitor stopped." in rest


def test_monitor_without_endpoints_says_what_is_missing(platform: PlatformInfo) -> None:
    env = {k: v for k, v in platform.env().items() if k not in ("PD_ENDPOINT", "PROMETHEUS_URL")}
    result = subprocess.run([str(VENV_BIN / "tikv-operator"), "monitor"], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert "give --pd and --prometheus (or set PD_ENDPOINT and PROMETHEUS_URL)" in result.stderr
