"""One soak run against a running platform: the fleet of simulated clusters, their TiKVClusters, two operator
replicas, the ticket watch, then the plan of bench.soak.schedule played in real time, then the final
comparison with Alertmanager, the oracle and the report.

Time is compressed about tenfold (SOAK_TIMING and the TiKVClusters' spec): PD calls a silent store
Disconnected after 2 s and Down after 12 s, grace periods are 6 s instead of 1m, checks run every 2 s, so
a 30-minute run holds the faults of some five hours of production."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness.platform import REPO, PlatformInfo, wait_crds

from bench.common import RUN_DIR, KubeApi, load, log, run_id, wait_for
from bench.soak import people
from bench.soak.disruptions import CrashWatch, Pauses, Replicas
from bench.soak.ground_truth import Fault, Outage, Record, StatusSample, StoreStep
from bench.soak.oracle import Settings, Verdict, judge
from bench.soak.schedule import Event, Rates, plan
from bench.soak.tenants import HOSTILE_KINDS, HOSTILE_PD_MODES, cluster_manifest, hostile_manifest, hosts, tenant_name
from bench.soak.ticket_watch import NON_RESOLVED, TicketWatch

SETTINGS = Settings()
# The resume of a paused API server: the operator's requests and watches need a moment to come back.
APISERVER_RECOVERY_S = 5.0
WATCHDOG = "TiKVOperatorWatchdog"


@dataclass
class Options:
    duration_s: float = 1800.0
    seed: int = 19
    clusters: int = 20
    stores: int = 3
    rates: Rates = field(default_factory=Rates)
    settle_s: float = 30.0
    keep_namespace: bool = False
    hostile: tuple[str, ...] = HOSTILE_KINDS  # the hostile tenants beside the clusters (bench.soak.tenants)


class Fleet:
    """bench.soak.fleet in a subprocess, and its control APIs."""

    def __init__(self, platform: PlatformInfo, run: str, options: Options, log_dir: Path) -> None:
        state_file = log_dir / "fleet.json"
        argv = [sys.executable, "-m", "bench.soak.fleet", "--clusters", str(options.clusters), "--stores",
                str(options.stores), "--run", run, "--file-sd-dir", str(platform.file_sd_dir), "--state-file",
                str(state_file), "--seed", str(options.seed), "--max-seconds", str(options.duration_s + 900)]
        argv += [arg for kind in options.hostile if kind in HOSTILE_PD_MODES
                 for arg in ("--hostile-pd", HOSTILE_PD_MODES[kind])]
        with (log_dir / "fleet.log").open("ab") as out:
            self.process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

        def ready() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"the fleet exited {self.process.returncode} (log {log_dir / 'fleet.log'})")
            return json.loads(state_file.read_text()) if state_file.exists() else None

        self.state: dict[str, Any] = wait_for(ready, 120, "the simulated fleet")
        self.clusters = {c["name"]: c for c in self.state["clusters"]}
        self.hostile_pds: dict[str, str] = dict(self.state.get("hostile_pds", {}))
        self.http = httpx.Client(timeout=10)

    def fault(self, cluster: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(f"{self.clusters[cluster]['control_url']}/api/v1/faults", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{body} -> HTTP {response.status_code}: {response.text[:300]}")
        return dict(response.json())

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def clear_body(event: Event, store: dict[str, Any] | None) -> dict[str, Any]:
    """The fault that ends `event`: the store, disk, latency, regions or PD back as they were."""
    if event.kind == "stop-store":
        return {"fault": "start-store", "store": event.store}
    if event.kind == "disk":
        return {"fault": "disk", "store": event.store, "percent": (store or {}).get("disk_used_percent", 30.0)}
    if event.kind == "latency":
        return {"fault": "latency", "store": event.store, "p99_ms": (store or {}).get("p99_ms", 10.0)}
    if event.kind == "regions":
        return {"fault": "regions", "miss-peer": 0}
    return {"fault": "pd", "mode": "ok"}


def inject_body(event: Event) -> dict[str, Any]:
    if event.kind == "pd-error":
        return {"fault": "pd", **event.params}
    body: dict[str, Any] = {"fault": event.kind, **event.params}
    if event.store is not None:
        body["store"] = event.store
    return body


class Soak:
    def __init__(self, platform: PlatformInfo, options: Options) -> None:
        self.platform, self.options = platform, options
        self.run = run_id("soak")
        self.log_dir = RUN_DIR / self.run
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.kube = KubeApi.from_kubeconfig(Path(platform.kubeconfig))
        self.pauses = Pauses(platform)
        self.record = Record(seed=options.seed, clusters={}, stores={}, started=0.0, settings=asdict(SETTINGS))
        self.skipped: dict[str, int] = {}
        self.lateness: list[float] = []
        self._fault_ids: dict[int, Fault] = {}

    # --- set-up ---------------------------------------------------------------------------------
    def kubectl(self, *args: str) -> None:
        result = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=self.platform.env(),
                                timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr[-500:]}")

    def set_up(self) -> None:
        self.kubectl("apply", "-f", str(REPO / "crds"))
        wait_crds()
        self.kube.create_namespace(self.run)
        log(f"soak {self.run}: {self.options.clusters} clusters, seed {self.options.seed}, logs in {self.log_dir}")
        self.fleet = Fleet(self.platform, self.run, self.options, self.log_dir)
        targets = sum(len(c["targets"]) for c in self.fleet.clusters.values())
        query = f'count(count_over_time(up{{soak_run="{self.run}"}}[1m]) >= 3)'

        def scraped() -> bool:
            response = httpx.get(f"{self.platform.prometheus_url}/api/v1/query", params={"query": query}, timeout=10)
            result = response.json()["data"]["result"]
            return bool(result) and int(float(result[0]["value"][1])) >= targets

        wait_for(scraped, 120, f"Prometheus to scrape {targets} targets three times", interval=1)
        for name, cluster in self.fleet.clusters.items():
            self.record.clusters[name] = cluster["convention"]
            self.record.stores[name] = len(cluster["stores"])
        manifests = [cluster_manifest(name, c["pd_url"], self.platform.prometheus_url, self.run, SETTINGS)
                     for name, c in self.fleet.clusters.items()]
        hosted = hosts(self.options.hostile, list(self.fleet.clusters))
        for kind in self.options.hostile:
            manifests.append(hostile_manifest(
                kind, run=self.run, prometheus_url=self.platform.prometheus_url,
                alertmanager_url=self.platform.alertmanager_url, s=SETTINGS, hostile_pds=self.fleet.hostile_pds,
                host_pd_urls={n: c["pd_url"] for n, c in self.fleet.clusters.items()}, host=hosted.get(kind)))
            self.record.hostile[tenant_name(kind)] = kind
        if hosted:
            self.record.notes.append("hostile tenants watching a well-behaved cluster's PD and series: "
                                     + ", ".join(f"{kind} -> {host}" for kind, host in sorted(hosted.items())))
        self.kube.create_clusters(self.run, manifests)
        self.watch = TicketWatch(self.kube, self.run).start()
        self.statuses = StatusWatch(self.kube, self.run, self.record).start()
        self.replicas = Replicas(self.platform, self.run, self.log_dir, self.record, self.platform.alertmanager_url,
                                 f"{SETTINGS.interval_s:g}s")
        self.replicas.start()

        def healthy() -> bool:  # the well-behaved ones: a hostile tenant is never Healthy, or not at once
            items = [i for i in self.kube.list_objects(self.run, "tikvclusters")
                     if i["metadata"]["name"] in self.fleet.clusters]
            return sum((i.get("status") or {}).get("health") == "Healthy" for i in items) == len(self.fleet.clusters)

        try:
            wait_for(healthy, 120, "every TiKVCluster Healthy", interval=1)
        except TimeoutError as error:
            self.record.notes.append(f"not every cluster was Healthy before the faults began: {error}"[:300])

    # --- the plan -------------------------------------------------------------------------------
    def actions(self, events: list[Event]) -> list[tuple[float, int, Callable[[], None]]]:
        out: list[tuple[float, int, Callable[[], None]]] = []
        for index, event in enumerate(events):
            out.append((event.at, 2 * index + 1, lambda e=event, i=index: self.begin(i, e)))
            if event.duration and event.kind not in ("rolling-restart", "scale-in"):
                out.append((event.end, 2 * index, lambda e=event, i=index: self.finish(i, e)))
        return sorted(out, key=lambda a: (a[0], a[1]))

    def play(self, events: list[Event]) -> None:
        start = time.monotonic()
        self.record.started = time.time()
        self.crash_watch = CrashWatch(self.platform, self.record, first_id=len(events)).start()
        for done, (at, _, action) in enumerate(self.actions(events), start=1):
            wait = at - (time.monotonic() - start)
            if wait > 0:
                time.sleep(wait)
            self.lateness.append(max(0.0, -wait))
            try:
                action()
            except Exception as error:  # one failed step is recorded, the run goes on
                self.record.notes.append(f"step at {at:.1f}s failed: {error!r}"[:400])
                log(f"soak: step at {at:.1f}s failed: {error!r}"[:400])
            if done % 200 == 0:
                log(f"soak: {done} steps, {time.monotonic() - start:.0f}s of {self.options.duration_s:.0f}s, "
                    f"{len(self.watch.current)} tickets, load {load()[0]:.2f}")
        left = self.options.duration_s - (time.monotonic() - start)
        if left > 0:
            time.sleep(left)

    def begin(self, index: int, event: Event) -> None:
        now = time.time()
        if event.kind == "person":
            if self.pauses.paused("kube-apiserver"):
                self.skipped["apiserver paused"] = self.skipped.get("apiserver paused", 0) + 1
                return
            # People act on the well-behaved clusters' tickets, the ones the oracle judges.
            tickets = {n: t for n, t in self.watch.snapshot().items() if t["cluster"] not in self.record.hostile}
            entry = people.act(self.platform.env(), self.run, index, event.params["action"], event.params["pick"],
                               tickets)
            if entry is None:
                self.skipped[f"no ticket to {event.params['action']}"] = \
                    self.skipped.get(f"no ticket to {event.params['action']}", 0) + 1
            else:
                self.record.add("actions", entry)
            return
        fault = Fault(index, event.kind, event.cluster, event.store, now, params=dict(event.params),
                      requested=now)
        self._fault_ids[index] = fault
        self.record.add("faults", fault)
        if event.kind in ("prometheus-down", "apiserver-pause"):
            try:
                self.pauses.pause("prometheus" if event.kind == "prometheus-down" else "kube-apiserver",
                                  event.duration)
            except ProcessLookupError as error:  # it crashed: the crash watch restarts it and records that
                fault.error = str(error)[:300]
                return
            fault.on = time.time()
            return
        if event.kind.startswith("operator-"):
            fault.params["target"] = self.replicas.disrupt(event.kind, float(event.params["restart_after"]))
            fault.off = fault.on
            return
        assert event.cluster is not None
        try:
            answer = self.fleet.fault(event.cluster, inject_body(event))
        except (RuntimeError, httpx.HTTPError) as error:
            fault.error = str(error)[:300]
            return
        fault.on = time.time()
        self._steps(event, fault, answer)

    def _steps(self, event: Event, fault: Fault, answer: dict[str, Any]) -> None:
        cluster = event.cluster or ""
        if event.kind == "stop-store" and event.store is not None:
            self.record.add("steps", StoreStep(cluster, event.store, fault.on, "stop", event.kind))
        elif event.kind == "rolling-restart":
            for step in answer.get("steps", []):
                what = {"stop-store": "stop", "start-store": "start"}.get(step["fault"])
                if what:
                    self.record.add("steps", StoreStep(cluster, int(step["store"]), fault.on + float(step["at"]),
                                                       what, event.kind))
            fault.off = fault.on + max((float(s["at"]) for s in answer.get("steps", [])), default=0.0)
        elif event.kind == "scale-in" and event.store is not None:
            self.record.add("steps", StoreStep(cluster, event.store, fault.on, "offline", event.kind))
            self.record.add("steps", StoreStep(cluster, event.store, fault.on + event.duration, "removed", event.kind))
            fault.off = fault.on + event.duration
        elif event.kind == "pd-leader-change":
            fault.off = fault.on + float(event.params.get("election_seconds", 3.0)) + 2

    def finish(self, index: int, event: Event) -> None:
        fault = self._fault_ids.get(index)
        if fault is None or fault.error:
            return
        fault.clearing = time.time()
        if event.kind in ("prometheus-down", "apiserver-pause"):
            self.pauses.resume("prometheus" if event.kind == "prometheus-down" else "kube-apiserver")
            fault.off = time.time()
            if event.kind == "apiserver-pause":
                self.record.add("outages", Outage(event.kind, fault.on, fault.off + APISERVER_RECOVERY_S))
            return
        assert event.cluster is not None
        stores = {s["id"]: s for s in self.fleet.clusters[event.cluster]["stores"]}
        self.fleet.fault(event.cluster, clear_body(event, stores.get(event.store)))
        fault.off = time.time()
        if event.kind == "stop-store" and event.store is not None:
            self.record.add("steps", StoreStep(event.cluster, event.store, fault.off, "start", event.kind))

    # --- the end --------------------------------------------------------------------------------
    def final_alerts(self, timeout: float = 30.0) -> dict[str, Any]:
        """Alertmanager's alerts of the run's namespace (active and silenced, no watchdog) and the tickets
        that are not Resolved, once they agree for the well-behaved clusters or after `timeout` (deliveries
        take a second or two). Both lists name the hostile tenants' tickets too; the oracle leaves them out."""
        params = [("filter", f'namespace="{self.run}"'), ("active", "true"), ("silenced", "true"),
                  ("inhibited", "true"), ("unprocessed", "true")]
        started = time.monotonic()
        while True:
            snapshot = self.watch.snapshot()
            open_names = sorted(n for n, t in snapshot.items() if t["phase"] in NON_RESOLVED)
            response = httpx.get(f"{self.platform.alertmanager_url}/api/v2/alerts", params=params, timeout=10)
            response.raise_for_status()
            alerts = sorted(a["labels"].get("ticket", "") for a in response.json()
                            if a["labels"].get("alertname") != WATCHDOG)
            hostile = {n for n, t in snapshot.items() if t["cluster"] in self.record.hostile}
            hostile |= {a["labels"].get("ticket", "") for a in response.json()
                        if a["labels"].get("tikv_cluster") in self.record.hostile}
            agree = [n for n in alerts if n not in hostile] == [n for n in open_names if n not in hostile]
            if agree or time.monotonic() - started > timeout:
                return {"open": open_names, "alerts": alerts, "waited_s": round(time.monotonic() - started, 1)}
            time.sleep(1)

    def tear_down(self) -> None:
        with contextlib.suppress(Exception):
            self.crash_watch.stop()
        with contextlib.suppress(Exception):
            self.statuses.stop()
        ended = time.time()
        for fault in self.record.faults:
            if fault.params.get("cause") == "crashed" and fault.off is None:
                fault.off = fault.clearing = ended  # it never came back: down until the end
        self.pauses.resume_all()
        with contextlib.suppress(Exception):
            self.watch.stop()
        # TiKVClusters go while an operator still runs, so it releases their finalizers.
        with contextlib.suppress(Exception):
            self.kube.delete_all(self.run, "tikvclusters", timeout=60)
        with contextlib.suppress(Exception):
            self.replicas.stop()
        with contextlib.suppress(Exception):
            self.fleet.stop()
        if not self.options.keep_namespace:
            with contextlib.suppress(Exception):
                self.kube.delete_namespace(self.run)
        self.kube.close()


class StatusWatch:
    """Every TiKVCluster's status, listed every `period` seconds into Record.statuses: the hostile tenants'
    verdicts (bench.soak.oracle G10) and each kind of tenant's health for the report."""

    def __init__(self, kube: KubeApi, namespace: str, record: Record, period: float = 5.0) -> None:
        self.kube, self.namespace, self.record, self.period = kube, namespace, record, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-watch", daemon=True)

    def start(self) -> StatusWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                items = self.kube.list_objects(self.namespace, "tikvclusters")
            except (httpx.HTTPError, OSError, ValueError):
                continue  # a paused API server: the next look
            now = time.time()
            for item in items:
                status = item.get("status") or {}
                conditions = status.get("conditions") or []
                self.record.add("statuses", StatusSample(
                    item["metadata"]["name"], now, str(status.get("health") or ""),
                    str(status.get("lastCheckTime") or ""),
                    {str(c.get("type")): str(c.get("status")) for c in conditions},
                    {str(c.get("type")): str(c.get("message") or "")[:160] for c in conditions
                     if c.get("status") != "True"}))


@dataclass
class Outcome:
    record: Record
    versions: list[dict[str, Any]]
    verdict: Verdict
    events: list[Event]
    skipped: dict[str, int]
    lateness: list[float]
    watch_gaps: int
    record_file: Path
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    tracebacks: dict[str, int] = field(default_factory=dict)  # operator log -> Python tracebacks in it


def tracebacks(log_dir: Path) -> dict[str, int]:
    """Tracebacks the replicas logged: a bug that cost a check (ClusterLoop catches it) shows here."""
    return {path.name: path.read_text(errors="replace").count("Traceback (most recent call last)")
            for path in sorted(log_dir.glob("operator-*.log"))}


def soak(platform: PlatformInfo, options: Options) -> Outcome:
    runner = Soak(platform, options)
    load_before = load()
    try:
        runner.set_up()
        names = [(name, c_stores) for name, c_stores in runner.record.stores.items()]
        events = plan(options.seed, options.duration_s, names, options.rates, options.settle_s)
        log(f"soak {runner.run}: {len(events)} events over {options.duration_s:.0f}s")
        runner.play(events)
        runner.record.alertmanager = runner.final_alerts()
        runner.record.ended = time.time()
        runner.watch.stop()
        versions = runner.watch.all_versions()
        gaps = len(runner.watch.gaps)
    finally:
        load_after = load()
        runner.tear_down()
    record_file = runner.log_dir / "record.json"
    runner.record.save(record_file, versions)
    verdict = judge(runner.record, versions, SETTINGS)
    return Outcome(runner.record, versions, verdict, events, runner.skipped, runner.lateness, gaps, record_file,
                   load_before, load_after, tracebacks(runner.log_dir))
