"""Detection and resolution latency: interval 2 s, Prometheus scraping every 1 s. Faults are injected
one store at a time into a 5-store simulated cluster; the time is taken from the fault to the ticket
being visible (status.phase Open) in a GET of the OperatorTicket list, polled every 100 ms straight from
the API server (what `kubectl get operatortickets` reads), and from the recovery to that ticket's phase
being Resolved.

Two kinds of store fault, 20 faults and 20 recoveries each:
- stop-store -> store_down (read from PD). The simulator's PD, like the real one, calls a store
  Disconnected after `disconnect_after` without a heartbeat and Down after max-store-down-time; a Down
  store opens its ticket at once, a Disconnected one only after store_down's grace period (1m). It runs
  with heartbeat 0.5 s, disconnect_after 1.5 s and down_after 2 s, so PD shows Down 1.5-2 s after the
  stop. That part is measured on its own (PD's /stores polled every 20 ms) and subtracted in the
  "after PD" columns.
- disk 85 % -> low_disk_space (read from Prometheus, grace 0): the scrape delay (<= 1 s) is measured on
  its own the same way (Prometheus polled every 50 ms).
Faults start at a random offset (0-2 s, seeded) after the previous recovery, so they fall anywhere in
the operator's check cycle.

`--stack 2.42,victoriametrics,...` measures the same per monitoring stack (docs/monitoring-stacks.md): the
cluster's spec.prometheus.url names a Prometheus (or VictoriaMetrics) of that release started beside the
platform's, scraping the same targets (harness.stack), or the platform's own when it runs that release; the
figures go to their own section (detection_latency_stacks)."""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from harness.operator_process import OperatorProcess
from harness.stack import PROMETHEUS_RELEASES, ExtraPrometheus

from bench.common import (
    RUN_DIR,
    KubeApi,
    Platform,
    SimHost,
    cluster_manifest,
    load,
    load_text,
    log,
    run_id,
    section_header,
    sim_host,
    table,
    wait_for,
    wait_for_scrapes,
)
from bench.runner import benchmark, publish
from bench.stats import fmt, summarize

API_POLL_S = 0.1
PD_POLL_S = 0.02
PROM_POLL_S = 0.05
INTERVAL_S = 2.0
SCRAPE_S = 1.0
STORES = 5


@dataclass
class Event:
    kind: str  # "stop-store" or "disk"
    store: int
    detect_s: float
    source_down_s: float  # when PD / Prometheus first showed the fault
    resolve_s: float
    source_up_s: float


@dataclass
class Result:
    kind: str
    events: list[Event] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    failures: list[str] = field(default_factory=list)


def race(t0: float, probes: dict[str, tuple[Callable[[], bool], float]], timeout: float) -> dict[str, float]:
    """Poll each probe at its own interval until each has said yes once; seconds since t0 at which the
    first successful poll of each completed. Missing keys: timed out."""
    found: dict[str, float] = {}
    due = dict.fromkeys(probes, time.monotonic())
    deadline = time.monotonic() + timeout
    while len(found) < len(probes) and time.monotonic() < deadline:
        for name, (probe, interval) in probes.items():
            now = time.monotonic()
            if name in found or now < due[name]:
                continue
            due[name] = now + interval
            try:
                ok = probe()
            except httpx.HTTPError:
                ok = False
            if ok:
                found[name] = time.monotonic() - t0
        pending = [due[n] for n in probes if n not in found]
        if pending:
            time.sleep(max(0.0, min(pending) - time.monotonic()))
    return found


class Probes:
    def __init__(self, kube: KubeApi, namespace: str, host: SimHost, prometheus_url: str) -> None:
        self.kube, self.namespace, self.host, self.prometheus_url = kube, namespace, host, prometheus_url
        self.cluster = host.clusters[0]
        self.http = httpx.Client(timeout=5)
        self.seen: set[str] = set()

    def pd_state(self, store: int) -> str:
        body = self.http.get(f"{self.cluster['pd_url']}/pd/api/v1/stores").json()
        for entry in body["stores"]:
            if int(entry["store"]["id"]) == store:
                return str(entry["store"].get("state_name", ""))
        return ""

    def instance(self, store: int) -> str:
        return next(s["instance"] for s in self.cluster["stores"] if int(s["id"]) == store)

    def prom_used(self, store: int) -> float | None:
        matchers = ",".join(f'{k}="{v}"' for k, v in self.host.matchers(self.cluster["name"]).items())
        selector = f'instance="{self.instance(store)}",{matchers}'
        expr = (f'1 - tikv_store_size_bytes{{type="available",{selector}}} '
                f'/ on (instance) tikv_store_size_bytes{{type="capacity",{selector}}}')
        result = self.http.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr}).json()
        values = result["data"]["result"]
        return float(values[0]["value"][1]) if values else None

    def open_ticket(self, invariant: str, store: int) -> str | None:
        for ticket in self.kube.list_objects(self.namespace, "operatortickets"):
            name = ticket["metadata"]["name"]
            if (name not in self.seen and ticket["spec"].get("invariant") == invariant
                    and str(ticket["spec"].get("store", "")) == str(store)
                    and (ticket.get("status") or {}).get("phase") == "Open"):
                return str(name)
        return None

    def phase(self, name: str) -> str:
        response = self.kube.client.get(self.kube.path(self.namespace, "operatortickets", name))
        response.raise_for_status()
        return str((response.json().get("status") or {}).get("phase", ""))


def run_kind(kind: str, probes: Probes, faults: int, rng: random.Random, timeout: float) -> Result:
    result = Result(kind, load_before=load())
    invariant = "store_down" if kind == "stop-store" else "low_disk_space"
    cluster = probes.cluster["name"]
    for index in range(faults):
        store = 2 + index % (STORES - 1)
        time.sleep(rng.uniform(0, INTERVAL_S))
        ticket: dict[str, str] = {}

        def detected(store: int = store, ticket: dict[str, str] = ticket) -> bool:
            name = probes.open_ticket(invariant, store)
            if name:
                ticket["name"] = name
            return name is not None

        if kind == "stop-store":
            def source_down(store: int = store) -> bool:
                return probes.pd_state(store) == "Down"

            def source_up(store: int = store) -> bool:
                return probes.pd_state(store) == "Up"

            fault: dict[str, Any] = {"fault": "stop-store"}
            recovery: dict[str, Any] = {"fault": "start-store"}
            poll = PD_POLL_S
        else:
            def source_down(store: int = store) -> bool:
                used = probes.prom_used(store)
                return used is not None and used > 0.8

            def source_up(store: int = store) -> bool:
                used = probes.prom_used(store)
                return used is not None and used < 0.5

            # tikv_sim's stores start at 30 % + 1.5 % per store index.
            fault = {"fault": "disk", "percent": 85}
            recovery = {"fault": "disk", "percent": 30 + 1.5 * (store - 1)}
            poll = PROM_POLL_S
        t0 = time.monotonic()
        probes.host.fault(**fault, store=store, cluster=cluster)
        down = race(t0, {"ticket": (detected, API_POLL_S), "source": (source_down, poll)}, timeout)
        if "ticket" not in down:
            result.failures.append(f"fault {index + 1} (store {store}): no ticket within {timeout:g}s")
            probes.host.fault(**recovery, store=store, cluster=cluster)
            time.sleep(INTERVAL_S * 2)
            continue
        name = ticket["name"]
        probes.seen.add(name)
        time.sleep(rng.uniform(0, INTERVAL_S))
        t1 = time.monotonic()
        probes.host.fault(**recovery, store=store, cluster=cluster)
        def resolved(name: str = name) -> bool:
            return probes.phase(name) == "Resolved"

        up = race(t1, {"resolved": (resolved, API_POLL_S), "source": (source_up, poll)}, timeout)
        if "resolved" not in up:
            result.failures.append(f"recovery {index + 1} (store {store}): {name} not Resolved within {timeout:g}s")
            continue
        result.events.append(Event(kind, store, down["ticket"], down.get("source", float("nan")),
                                   up["resolved"], up.get("source", float("nan"))))
        log(f"latency {kind} #{index + 1} store {store}: ticket {down['ticket']:.2f}s "
            f"(source {down.get('source', float('nan')):.2f}s), resolved {up['resolved']:.2f}s")
    result.load_after = load()
    return result


def run(platform: Platform, faults: int, kinds: list[str], seed: int, timeout: float,
        prometheus_url: str | None = None) -> list[Result]:
    """`prometheus_url`: the Prometheus the cluster is read through (default: the platform's)."""
    prometheus_url = prometheus_url or platform.prometheus_url
    kube = platform.kube()
    namespace = run_id("bench-latency")
    kube.create_namespace(namespace)
    file_sd = platform.file_sd_dir / f"{namespace}.json"
    operator: OperatorProcess | None = None
    results = []
    try:
        with sim_host(stores=STORES, name="lat", labels={"bench_run": namespace}, file_sd=file_sd,
                      heartbeat_interval=0.5, disconnect_after=1.5, down_after=2.0) as host:
            wait_for_scrapes(prometheus_url, host.instances(), ("bench_run", namespace))
            cluster = host.clusters[0]
            kube.create_clusters(namespace, [cluster_manifest(
                cluster["name"], cluster["pd_url"], prometheus_url, host.matchers(cluster["name"]),
                # Each store takes the fault every 4th round, seconds after its last ticket resolved: with the
                # default flapping window (10m) that ticket would be reopened, not a new one opened. The window
                # is shrunk below a round so every fault measures a first detection.
                interval=f"{INTERVAL_S:g}s", flapping={"window": "1s"})])
            RUN_DIR.mkdir(parents=True, exist_ok=True)
            operator = OperatorProcess(platform.env, (namespace,), RUN_DIR / f"{namespace}-operator.log",
                                       default_interval=f"{INTERVAL_S:g}s").start()
            wait_for(lambda: any((c.get("status") or {}).get("health") == "Healthy"
                                 for c in kube.list_objects(namespace, "tikvclusters")), 60, "a Healthy TiKVCluster")
            probes = Probes(kube, namespace, host, prometheus_url)
            rng = random.Random(seed)  # noqa: S311  (jitter of a benchmark, not a secret)
            for kind in kinds:
                log(f"latency: {faults} {kind} faults and recoveries")
                results.append(run_kind(kind, probes, faults, rng, timeout))
            listed = platform.kubectl("get", "operatortickets", "-n", namespace, "--no-headers").stdout
            log(f"latency: kubectl get operatortickets lists {len(listed.splitlines())} tickets")
            kube.delete_all(namespace, "tikvclusters", timeout=30)
    finally:
        if operator is not None:
            operator.stop()
        kube.delete_all(namespace, "tikvclusters", timeout=5)
        kube.delete_namespace(namespace)
        kube.close()
    return results


def render(results: list[Result], started: datetime, argv: list[str]) -> str:
    budget = INTERVAL_S + SCRAPE_S + 1
    lines = section_header("2. Detection and resolution latency", "detection_latency", started, argv)
    lines += [
        f"One 5-store simulated cluster, `spec.interval: {INTERVAL_S:g}s`, Prometheus scrape interval "
        f"{SCRAPE_S:g} s. Fault -> ticket visible with phase Open, recovery -> phase Resolved, polled every "
        f"{API_POLL_S * 1000:.0f} ms from the API server (the list `kubectl get operatortickets` reads; "
        "resolution of a figure: the poll interval plus one request, ~0.1 s). PD is tikv_sim with heartbeat "
        "0.5 s, disconnect_after 1.5 s and down_after 2 s (PD's defaults are 10 s, 20 s and 30 min): "
        "\"source\" is when PD (for stop-store) or Prometheus (for disk) first showed the change, polled every "
        "20 / 50 ms; \"after source\" = total - source, the operator's own share. Seconds.",
        "",
    ]
    rows = []
    for r in results:
        ev = r.events
        invariant = "store_down" if r.kind == "stop-store" else "low_disk_space"
        for label, values in (
            ("detection (fault -> Open)", [e.detect_s for e in ev]),
            ("  source shows the fault", [e.source_down_s for e in ev]),
            ("  detection after source", [e.detect_s - e.source_down_s for e in ev]),
            ("resolution (recovery -> Resolved)", [e.resolve_s for e in ev]),
            ("  source shows the recovery", [e.source_up_s for e in ev]),
            ("  resolution after source", [e.resolve_s - e.source_up_s for e in ev]),
        ):
            s = summarize(values)
            rows.append([f"{r.kind} ({invariant})", label, str(s.n), fmt(s.p50), fmt(s.p99), fmt(s.minimum),
                         fmt(s.maximum), f"{load_text(r.load_before)} → {load_text(r.load_after)}"])
    lines.append(table(["fault", "figure", "n", "p50 s", "p99 s", "min s", "max s", "load 1/5/15 before → after"],
                       rows))
    lines += ["", f"Targets (p99 <= interval + scrape + 1 s = {budget:g} s):", ""]
    for r in results:
        for label, values in (("detection", [e.detect_s for e in r.events]),
                              ("resolution", [e.resolve_s for e in r.events])):
            p99 = summarize(values).p99
            verdict = "MET" if p99 <= budget else f"MISSED by {p99 - budget:.2f} s"
            lines.append(f"- {r.kind} {label} p99 {p99:.2f} s: {verdict}.")
        for failure in r.failures:
            lines.append(f"- FAILED: {failure}")
    lines += ["", "p99 of 20 samples is interpolated between the two largest (numpy's linear method): "
              "read it as \"about the worst of 20\"."]
    return "\n".join(lines)


def run_stacks(platform: Platform, stacks: list[str], faults: int, kinds: list[str], seed: int, timeout: float
               ) -> dict[str, list[Result]]:
    """The same measurement per monitoring stack, one after the other (each on an idle machine of its own)."""
    results: dict[str, list[Result]] = {}
    for stack in stacks:
        if stack == platform.info.prometheus_release:
            results[stack] = run(platform, faults, kinds, seed, timeout)
            continue
        with ExtraPrometheus(stack, platform.file_sd_dir, RUN_DIR / f"prometheus-{stack}") as extra:
            log(f"latency: {stack} at {extra.url}")
            results[stack] = run(platform, faults, kinds, seed, timeout, prometheus_url=extra.url)
    return results


def render_stacks(results: dict[str, list[Result]], platform_release: str, started: datetime,
                  argv: list[str]) -> str:
    lines = section_header("2b. Detection latency per monitoring stack", "detection_latency", started, argv)
    lines += [
        "As section 2 (interval 2 s, scrape 1 s, tikv_sim's fast PD), with the TiKVCluster reading a Prometheus of "
        f"each release started beside the platform's ({platform_release}), scraping the same targets. "
        "VictoriaMetrics keeps its default -search.latencyOffset (30 s): its data is that old (rule 25). Seconds.",
        "",
    ]
    rows = []
    for stack, per_kind in results.items():
        for r in per_kind:
            invariant = "store_down" if r.kind == "stop-store" else "low_disk_space"
            for label, values in (("fault -> Open", [e.detect_s for e in r.events]),
                                  ("recovery -> Resolved", [e.resolve_s for e in r.events])):
                s = summarize(values)
                rows.append([stack, invariant, label, str(s.n), fmt(s.p50), fmt(s.maximum),
                             str(len(r.failures)), f"{load_text(r.load_before)} → {load_text(r.load_after)}"])
    lines.append(table(["stack", "invariant", "figure", "n", "p50 s", "max s", "failed", "load 1/5/15 before → after"],
                       rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faults", type=int, default=20, help="faults (and recoveries) per kind")
    parser.add_argument("--kinds", default="stop-store,disk")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=20.0, help="give up on one event after this long")
    parser.add_argument("--stack", default="", help=f"comma-separated releases of {', '.join(PROMETHEUS_RELEASES)}: "
                        "measure each (section detection_latency_stacks); a 30 s latency offset needs --timeout 60")
    args = parser.parse_args(argv)
    if args.stack:
        stacks = args.stack.split(",")
        unknown = [s for s in stacks if s not in PROMETHEUS_RELEASES]
        if unknown:
            parser.error(f"--stack {','.join(unknown)}: not one of {', '.join(PROMETHEUS_RELEASES)}")
        with benchmark("detection_latency", argv) as session:
            per_stack = run_stacks(session.platform, stacks, args.faults, args.kinds.split(","), args.seed,
                                   args.timeout)
            release = session.platform.info.prometheus_release
        return publish("detection_latency_stacks", render_stacks(per_stack, release, session.started, session.argv))
    with benchmark("detection_latency", argv) as session:
        results = run(session.platform, args.faults, args.kinds.split(","), args.seed, args.timeout)
    return publish("detection_latency", render(results, session.started, session.argv))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
