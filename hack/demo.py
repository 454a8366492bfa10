"""`make demo`: the whole product on this machine, as a short story told through kubectl.

Starts the local platform (its own state directory), a 3-store tikv-sim cluster scraped by the platform's
Prometheus, and the operator; then the routine operations of a real cluster (a PD leader change, a rolling
restart) open no ticket; a store goes down, its ticket opens as a warning and escalates when PD calls the
store Down, and the page reaches the platform's Alertmanager and its webhook receiver (the pager); it is
held, the store comes back, the ticket is unheld and auto-resolves (the page is resolved); a disk fills, an
SRE acknowledges that ticket (Alertmanager silences it), and resolves it by hand (the silence expires).

PD's clocks run fast (heartbeat 1 s, Disconnected after 3 s, Down after 20 s instead of 30 min) and
store_down's grace period is 10 s instead of 1 m, so the story takes two minutes, not an hour. Everything started
is stopped at the end, unless KEEP=1 (then it prints the exports to explore with kubectl).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
NAMESPACE = "tikv-demo"
STEP_TIMEOUT_S = 60
GRACE = "10s"  # store_down's grace period for a Disconnected store (1m by default)
# store_restarted counts restarts within this window (10m by default); the story restarts store 2 twice
# (the rolling restart, then its comeback), which within 10m would rightly read as a crash loop.
RESTART_WINDOW = "20s"


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


class Demo:
    def __init__(self) -> None:
        self.dir = Path(os.environ.get("TIKV_PLATFORM_DIR", REPO / ".platform-demo")).resolve()
        self.env = {**os.environ, "TIKV_PLATFORM_DIR": str(self.dir)}
        self.processes: list[subprocess.Popen[bytes]] = []

    # --- running things -------------------------------------------------------------------------
    def sh(self, *argv: str, show: bool = True, check: bool = True) -> str:
        """Run a command as a user would type it; show the command and its output."""
        if show:
            print(f"$ {shlex.join(argv)}", flush=True)
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        if show:
            print((result.stdout + result.stderr).rstrip(), flush=True)
        if check and result.returncode != 0:
            raise SystemExit(f"demo: `{shlex.join(argv)}` failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def kubectl(self, *args: str, show: bool = True) -> str:
        return self.sh("kubectl", "-n", NAMESPACE, *args, show=show)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", show=False))

    def start(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.dir / log).open("wb") as out:
            process = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.processes.append(process)
        return process

    def wait(self, what: str, probe: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.5)
        raise SystemExit(f"demo: gave up waiting for {what} after {STEP_TIMEOUT_S}s")

    # --- the story ----------------------------------------------------------------------------
    def up(self) -> None:
        say("Starting the local platform (etcd, kube-apiserver, controller-manager, Prometheus)")
        subprocess.run([str(REPO / "hack" / "platform"), "up"], env=self.env, check=True, timeout=1200)
        exports = json.loads(subprocess.run([str(REPO / "hack" / "platform"), "env", "--json"], env=self.env,
                                            capture_output=True, text=True, check=True).stdout)
        self.env.update(exports)
        self.env["PATH"] = f"{BIN}{os.pathsep}{self.env['PATH']}"
        self.sh("kubectl", "apply", "-f", str(REPO / "crds"))
        self.sh(str(REPO / "hack" / "platform"), "wait-crds", show=False)
        self.sh("kubectl", "create", "namespace", NAMESPACE, show=False, check=False)

        say("Starting a simulated TiKV cluster: PD and 3 stores, scraped by Prometheus")
        state = self.dir / "tikv-sim.json"
        state.unlink(missing_ok=True)
        file_sd = Path(self.env["PROMETHEUS_FILE_SD_DIR"]) / "tikv-demo.json"
        self.start([str(BIN / "tikv-sim"), "run", "--stores", "3", "--file-sd", str(file_sd), "--state-file",
                    str(state), "--heartbeat-interval", "1", "--disconnect-after", "3", "--down-after", "20"],
                   "tikv-sim.log")
        self.wait("tikv-sim", lambda: state.exists() and state.stat().st_size > 0)
        self.env["TIKV_SIM_STATE"] = str(state)
        self.pd_url = json.loads(state.read_text())["clusters"][0]["pd_url"]

        self.alertmanager = self.env["ALERTMANAGER_URL"]
        self.pager = Path(self.env["ALERTMANAGER_WEBHOOK_LOG"])
        self.pages_seen = 0
        say("Starting the operator: tikv-operator run --namespace tikv-demo --default-interval 2s "
            f"--alertmanager-url {self.alertmanager}")
        self.health_port, self.metrics_port = free_port(), free_port()
        self.start([str(BIN / "tikv-operator"), "run", "--namespace", NAMESPACE, "--default-interval", "2s",
                    "--bind-address", "127.0.0.1", "--health-port", str(self.health_port),
                    "--metrics-port", str(self.metrics_port), "--alertmanager-url", self.alertmanager,
                    "--alert-resend-interval", "5s"], "operator.log")
        self.wait("the operator's /healthz", self.healthy)

        say("Telling the operator about the cluster: a TiKVCluster")
        manifest = (f"apiVersion: tikvops.io/v1alpha1\nkind: TiKVCluster\nmetadata:\n  name: basic\nspec:\n"
                    f"  pd:\n    url: {self.pd_url}\n  prometheus:\n    url: {self.env['PROMETHEUS_URL']}\n"
                    f"  invariants:\n    store_down:\n      gracePeriod: {GRACE}\n"
                    f"    store_restarted:\n      window: {RESTART_WINDOW}\n")
        print(manifest, flush=True)
        subprocess.run(["kubectl", "-n", NAMESPACE, "apply", "-f", "-"], input=manifest, text=True, env=self.env,
                       check=True, timeout=60)
        self.wait("the first check", lambda: self.cluster_status().get("health") == "Healthy")
        self.kubectl("get", "tikvclusters")

    def healthy(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.health_port), timeout=1):
                return True
        except OSError:
            return False

    def cluster_status(self) -> dict[str, Any]:
        return dict(self.json("get", "tikvcluster", "basic").get("status") or {})

    def open_ticket(self, invariant: str, store: str) -> dict[str, Any] | None:
        for t in self.json("get", "operatortickets")["items"]:
            if ((t["spec"]["invariant"], t["spec"].get("store", "")) == (invariant, store)
                    and (t.get("status") or {}).get("phase") == "Open"):
                return dict(t)
        return None

    def pages(self) -> list[str]:
        """What the pager (the platform's webhook receiver, behind Alertmanager) received for the demo."""
        lines = []
        text = self.pager.read_text() if self.pager.exists() else ""
        for line in text.splitlines():
            notification = json.loads(line)
            for alert in notification["alerts"]:
                labels = alert["labels"]
                if labels.get("namespace") == NAMESPACE:
                    lines.append(f"PAGE {notification['status']:8} {labels['alertname']} severity={labels['severity']}"
                                 f" ticket={labels['ticket']}: {alert['annotations'].get('summary', '')}")
        return lines

    def show_new_pages(self, what: str, probe: Callable[[list[str]], bool]) -> None:
        pages = self.wait(what, lambda: (p := self.pages()) and probe(p[self.pages_seen:]) and p)
        for line in pages[self.pages_seen:]:
            print(line, flush=True)
        self.pages_seen = len(pages)

    def amtool(self, *args: str) -> str:
        return self.sh("amtool", f"--alertmanager.url={self.alertmanager}", *args)

    def phase(self, name: str) -> str:
        return str((self.json("get", "operatorticket", name).get("status") or {}).get("phase"))

    def timelines_running(self) -> int:
        control = json.loads(Path(self.env["TIKV_SIM_STATE"]).read_text())["control_url"]
        return int(httpx.get(f"{control}/api/v1/clusters", timeout=5).json()["timelines_running"])

    def story(self) -> None:
        say("1. Routine operations: a PD leader change, then a rolling restart of every store")
        self.sh(str(BIN / "tikv-sim"), "fault", "pd-leader-change")
        self.sh(str(BIN / "tikv-sim"), "fault", "rolling-restart", "--downtime", "5", "--gap", "2")
        self.wait("the rolling restart to finish", lambda: self.timelines_running() == 0
                  and self.cluster_status().get("storesUp") == "3/3")
        time.sleep(4)  # two more checks
        print(f"(each store was silent for 5 s, inside store_down's {GRACE} grace period: no ticket)")
        self.kubectl("get", "operatortickets")
        self.kubectl("get", "tikvclusters")

        say("2. Store 2 goes down and stays down: a warning ticket, critical once PD calls it Down")
        self.sh(str(BIN / "tikv-sim"), "fault", "stop-store", "2")
        ticket = self.wait("a store_down ticket", lambda: self.open_ticket("store_down", "2"))
        down = ticket["metadata"]["name"]
        self.kubectl("get", "operatortickets")
        self.wait("the ticket to escalate", lambda: (self.json("get", "operatorticket", down).get("status") or {})
                  .get("severity") == "critical")
        self.kubectl("get", "operatortickets")
        self.kubectl("get", "tikvclusters")
        print("The ticket is an alert in Alertmanager, and the pager got it (the warning page, then the "
              "critical one as it escalated):")
        self.show_new_pages("the critical page", lambda new: any("firing   store_down severity=critical" in p
                                                                 for p in new))
        self.amtool("alert", "query", f"namespace={NAMESPACE}", "alertname=store_down")

        say("3. An SRE holds the ticket: it will not auto-resolve")
        self.kubectl("patch", "operatorticket", down, "--type=merge", "-p", '{"spec":{"held":true}}')
        self.wait("the held label", lambda: self.json("get", "operatorticket", down)["metadata"]["labels"]
                  .get("tikvops.io/held") == "true")
        self.kubectl("get", "operatortickets", "-l", "tikvops.io/held=true")

        say("4. Store 2 comes back: the held ticket stays open")
        self.sh(str(BIN / "tikv-sim"), "fault", "start-store", "2")
        self.wait("all stores Up", lambda: self.cluster_status().get("storesUp") == "3/3")
        time.sleep(4)  # two more checks see the store Up
        self.kubectl("get", "operatortickets")

        say("5. Unhold: the ticket auto-resolves at the next check")
        self.kubectl("patch", "operatorticket", down, "--type=merge", "-p", '{"spec":{"held":false}}')
        self.wait("the ticket to resolve", lambda: self.phase(down) == "Resolved")
        self.kubectl("get", "operatortickets")
        print("The page is resolved: the pager gets the all-clear")
        self.show_new_pages("the resolved page", lambda new: any("resolved store_down severity=critical" in p
                                                                 for p in new))

        say("6. Store 1's disk fills to 85 %: low_disk_space opens")
        self.sh(str(BIN / "tikv-sim"), "fault", "disk", "1", "--percent", "85")
        disk = self.wait("a low_disk_space ticket", lambda: self.open_ticket("low_disk_space", "1"))
        name = disk["metadata"]["name"]
        self.kubectl("get", "operatortickets", "-l", "tikvops.io/phase=open")
        print(f"message: {disk['status']['message']}")

        self.show_new_pages("the disk page", lambda new: any("low_disk_space" in p for p in new))

        say("7. An SRE acknowledges it: Alertmanager silences its pages")
        self.sh(str(BIN / "tikv-operator"), "tickets", "ack", name, "--namespace", NAMESPACE)
        self.wait("the silence", lambda: (self.json("get", "operatorticket", name).get("status") or {})
                  .get("silences"))
        self.amtool("silence", "query", f"ticket={name}")

        say("8. A person resolves it by hand: the silence expires")
        self.kubectl("patch", "operatorticket", name, "--subresource=status", "--type=merge",
                     "-p", '{"status":{"phase":"Resolved"}}')
        self.wait("the manual resolution", lambda: (self.json("get", "operatorticket", name).get("status") or {})
                  .get("resolution") == "manual")
        self.kubectl("get", "operatortickets")
        self.kubectl("describe", "operatorticket", name)
        self.wait("the silence to expire", lambda: not (self.json("get", "operatorticket", name).get("status")
                                                        or {}).get("silences"))
        self.amtool("silence", "query", "--expired", f"ticket={name}")
        say("Story complete: every step above went through the Kubernetes API, as kubectl shows it.")

    def down(self, keep: bool) -> None:
        if keep:
            say("KEEP=1: everything is still running. Explore with:")
            print(f"export TIKV_PLATFORM_DIR={self.dir}")
            print(f'eval "$({REPO}/hack/platform env)"')
            print(f"export TIKV_SIM_STATE={self.env.get('TIKV_SIM_STATE', '')}")
            print(f"kubectl -n {NAMESPACE} get tikvclusters,operatortickets")
            print(f"When done: kill {' '.join(str(p.pid) for p in self.processes)}; hack/platform down")
            return
        say("Stopping everything the demo started")
        if any(p.poll() is None for p in self.processes[1:]):
            # The operator releases its finalizer on the TiKVCluster before it goes.
            self.sh("kubectl", "-n", NAMESPACE, "delete", "tikvclusters", "--all", "--timeout=30s",
                    show=False, check=False)
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
        subprocess.run([str(REPO / "hack" / "platform"), "down"], env=self.env, check=False, timeout=120)
        print("demo: stopped the operator, tikv-sim and the platform", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    keep = os.environ.get("KEEP", "") not in ("", "0")
    demo = Demo()
    demo.dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        demo.up()
        demo.story()
    except BaseException:
        demo.down(keep=False)
        raise
    demo.down(keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
