"""The operator as a user runs it: the `tikv-operator run` process, and a simulated TiKV cluster
scraped by the platform's Prometheus for it to watch."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness.kube import Cli, eventually
from harness.prometheus import Prometheus, ScrapeTargets
from tikv_operator.tickets.core.ticket import state_labels
from tikv_sim.embedded import SimulatorThread
from tikv_sim.simulator import SimConfig
from tikv_sim.store_model import Timing

VENV_BIN = Path(sys.executable).parent
# PD's clocks shrunk so a stopped store is Disconnected within ~2 s instead of 20 s, and Down (which opens
# store_down at once; Disconnected waits out a 1m grace period) after 3 s instead of 30 min.
FAST_PD = Timing(heartbeat_interval=0.5, disconnect_after=1.5, down_after=3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OperatorProcess:
    """`tikv-operator run -n NS` in a subprocess; its output goes to a log file the test can read."""

    env: Mapping[str, str]
    namespaces: tuple[str, ...]
    log_path: Path
    default_interval: str = "1s"
    extra_args: tuple[str, ...] = ()
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def argv(self) -> list[str]:
        scope = [arg for ns in self.namespaces for arg in ("--namespace", ns)] or ["--all-namespaces"]
        return [str(VENV_BIN / "tikv-operator"), "run", *scope, "--default-interval", self.default_interval,
                "--bind-address", "127.0.0.1", "--health-port", str(self.health_port),
                "--metrics-port", str(self.metrics_port), *self.extra_args]

    def start(self) -> OperatorProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, env=dict(self.env), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        eventually(self.healthy, timeout=30, what=f"the operator's /healthz (log: {self.log_path})")
        return self

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the operator exited {self.process.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (every label set), as `sum(name)` would give."""
        return sum(sample.value for family in text_string_to_metric_families(self.metrics())
                   for sample in family.samples if sample.name == name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def identity(self) -> str:
        """Its name as a Lease holder, from the line it logs when it joins the election."""
        found = eventually(lambda: re.search(r"leader election on lease \S+ as (\S+) ", self.log()), timeout=30,
                           what=f"the operator to join the election (log: {self.log_path})")
        return found.group(1)

    def pause(self) -> None:
        """SIGSTOP: the process is frozen as by a network partition or a stalled node; SIGCONT resumes it."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as Kubernetes stops a pod; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"the operator ignored SIGTERM for {timeout}s:\n{self.log()}") from None
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as when a node dies."""
        assert self.process is not None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@dataclass
class SimulatedCluster:
    """A tikv_sim cluster whose stores the platform's Prometheus scrapes under this test's label."""

    sim: SimulatorThread
    targets: ScrapeTargets

    @property
    def pd_url(self) -> str:
        return self.sim.pd_url

    def fault(self, **fault: Any) -> None:
        self.sim.fault({"fault": fault.pop("kind"), **fault})

    def stores(self) -> list[dict[str, Any]]:
        return list(self.sim.summary()["clusters"][0]["stores"])


def start_simulated_cluster(prometheus: Prometheus, targets: ScrapeTargets, stores: int = 3,
                            labels: Mapping[str, str] | None = None, **config: Any) -> SimulatedCluster:
    """A simulator whose targets file is `targets.path` (the simulator rewrites it when a target moves, as
    a restarted pod does under kube-prometheus), once Prometheus has scraped every target; `labels` adds
    target labels (a TidbMonitor's tidb_cluster). The `lean`
    gRPC profile unless told: the whole histogram is 4.6k series a store, too many for a test suite."""
    config.setdefault("timing", FAST_PD)
    config.setdefault("grpc_series", "lean")
    sim = SimulatorThread(SimConfig(stores=stores, control_port=None, extra_labels={**targets.labels, **(labels or {})},
                                    file_sd=targets.path, **config))
    sim.__enter__()
    try:
        groups = sim.call(sim.simulator.target_groups)
        prometheus.wait_for_addresses({address for g in groups for address in g["targets"]}, timeout=30)
    except BaseException:
        sim.__exit__(None, None, None)
        raise
    return SimulatedCluster(sim, targets)


def cluster_manifest(name: str, pd_url: str, prometheus_url: str, matchers: Mapping[str, str],
                     **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tikvops.io/v1alpha1",
        "kind": "TiKVCluster",
        "metadata": {"name": name},
        "spec": {**spec, "pd": {"url": pd_url, "timeout": "1s"},
                 # `prometheus=` adds to (or replaces) the fields that point at the platform's Prometheus.
                 "prometheus": {"url": prometheus_url, "labelMatchers": dict(matchers), "timeout": "2s",
                                **spec.get("prometheus", {})}},
    }


def tickets(kubectl: Cli, *selector: str) -> list[dict[str, Any]]:
    return list(kubectl.json("get", "operatortickets", *selector)["items"])


def open_tickets(kubectl: Cli, invariant: str | None = None, store: str | None = None) -> list[dict[str, Any]]:
    return [t for t in tickets(kubectl)
            if (t.get("status") or {}).get("phase") not in (None, "Resolved")
            and (invariant is None or t["spec"]["invariant"] == invariant)
            and (store is None or t["spec"].get("store", "") == store)]


def wait_for_ticket(kubectl: Cli, invariant: str, store: str = "", timeout: float = 30) -> dict[str, Any]:
    found = eventually(lambda: open_tickets(kubectl, invariant, store), timeout=timeout,
                       what=f"an open {invariant} ticket for store {store or '-'}")
    return found[0]


def ticket(kubectl: Cli, name: str) -> dict[str, Any]:
    return dict(kubectl.json("get", "operatorticket", name))


def settled(t: dict[str, Any]) -> bool:
    """The ticket's labels agree with its status and spec. The operator writes a transition's status first
    and its labels in a second request, so a reader may catch the moment in between; a user's
    `kubectl get -l` sees them agree right after."""
    status, held = t.get("status") or {}, bool((t.get("spec") or {}).get("held"))
    return all(t["metadata"].get("labels", {}).get(k) == v
               for k, v in state_labels(status.get("phase", "Open"), held, status.get("severity")).items())


def wait_for_phase(kubectl: Cli, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
    """The ticket in `phase`, its labels in step."""
    return eventually(lambda: (t := ticket(kubectl, name)).get("status", {}).get("phase") == phase and settled(t)
                      and t, timeout=timeout, what=f"ticket {name} to be {phase}")


def event_reasons(kubectl: Cli, kind: str, name: str) -> list[str]:
    events = kubectl.json("get", "events", "--field-selector", f"involvedObject.name={name},involvedObject.kind={kind}")
    return [e["reason"] for e in events["items"]]


def still(probe: Any, seconds: float, interval: float = 0.5) -> None:
    """Assert that `probe()` stays truthy for `seconds` (for "nothing happens" claims, bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = probe()
        assert value, f"the condition stopped holding: {value!r}"
        time.sleep(interval)
