"""API writes per check in steady state, counted at the API server's door: a counting reverse proxy
(bench/kube_proxy.py) sits between the operator process and kube-apiserver, and every POST, PUT, PATCH
and DELETE is counted by resource. (a) 50 healthy clusters; (b) the same 50 clusters, each holding one
open, unchanging violation (store 3 stopped: a store_down ticket that stays open).

Steady state = after a warm-up longer than the refresh interval (the finalizers, the first status writes
and the ticket creations are over); the window is then several refresh intervals long."""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.operator_process import OperatorProcess

from bench.common import (
    RUN_DIR,
    Platform,
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
from bench.kube_proxy import CountingProxy, Recorded
from bench.runner import benchmark, publish
from bench.stats import parse_samples


@dataclass
class Window:
    label: str
    seconds: float
    checks: int
    writes: dict[tuple[str, str], int]
    records: list[Recorded]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def checks_total(operator: OperatorProcess) -> int:
    return int(sum(v for _, v in parse_samples(operator.metrics(), "tikv_operator_checks_total")))


def measure(label: str, proxy: CountingProxy, operator: OperatorProcess, seconds: float) -> Window:
    log(f"api writes: measuring '{label}' for {seconds:g}s")
    before_load, before_checks, start = load(), checks_total(operator), time.monotonic()
    time.sleep(seconds)
    end, after_checks = time.monotonic(), checks_total(operator)
    writes = proxy.writes_between(start, end)
    return Window(label, end - start, after_checks - before_checks, _counts(writes), writes, before_load, load())


def _counts(records: list[Recorded]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for record in records:
        counts[(record.request.method, record.request.resource)] += 1
    return dict(counts)


def _writes_text(counts: dict[tuple[str, str], int]) -> str:
    return ", ".join(f"{m} {r}: {n}" for (m, r), n in sorted(counts.items())) or "none"


def max_per_object(records: list[Recorded], resource_prefix: str, refresh_s: float, seconds: float
                   ) -> tuple[float, float]:
    """(most writes any one object got per refresh interval, smallest gap in seconds between two writes
    of the same object; inf when no object was written twice)."""
    by_name: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.request.resource.startswith(resource_prefix):
            by_name[record.request.name].append(record.at)
    most = max((len(times) for times in by_name.values()), default=0)
    gaps = [b - a for times in by_name.values() for a, b in itertools.pairwise(sorted(times))]
    return most / (seconds / refresh_s), min(gaps, default=float("inf"))


def between_refreshes(records: list[Recorded], resource_prefix: str, refresh_s: float) -> int:
    """Writes of an object less than a refresh interval (minus 10 %) after its previous write in the window."""
    by_name: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.request.resource.startswith(resource_prefix):
            by_name[record.request.name].append(record.at)
    early = 0
    for times in by_name.values():
        times.sort()
        early += sum(1 for a, b in itertools.pairwise(times) if b - a < refresh_s * 0.9)
    return early


def run(platform: Platform, clusters: int, interval: str, refresh: str, warmup: float, window: float
        ) -> tuple[list[Window], dict[str, Any]]:
    kube = platform.kube()
    namespace = run_id("bench-writes")
    kube.create_namespace(namespace)
    proxy = CountingProxy(kube.server, kube.ca_file, kube.token).start()
    file_sd = platform.file_sd_dir / f"{namespace}.json"
    operator: OperatorProcess | None = None
    try:
        with sim_host(stores=3, clusters=clusters, name="w", labels={"bench_run": namespace}, file_sd=file_sd) as host:
            wait_for_scrapes(platform.prometheus_url, host.instances(), ("bench_run", namespace), timeout=120)
            manifests = [cluster_manifest(c["name"], c["pd_url"], platform.prometheus_url, host.matchers(c["name"]),
                                          interval=interval, tickets={"refreshInterval": refresh})
                         for c in host.clusters]
            kube.create_clusters(namespace, manifests)
            RUN_DIR.mkdir(parents=True, exist_ok=True)
            kubeconfig = proxy.write_kubeconfig(RUN_DIR / f"{namespace}.kubeconfig", namespace)
            env = {**platform.env, "KUBECONFIG": str(kubeconfig)}
            operator = OperatorProcess(env, (namespace,), RUN_DIR / f"{namespace}-operator.log",
                                       default_interval=interval).start()

            def all_healthy() -> bool:
                items = kube.list_objects(namespace, "tikvclusters")
                return sum((i.get("status") or {}).get("health") == "Healthy" for i in items) == clusters

            wait_for(all_healthy, 120, f"{clusters} Healthy TiKVClusters", interval=1)
            startup = _counts(proxy.writes_between(0, time.monotonic()))
            log(f"api writes: all healthy; warm-up {warmup:g}s")
            time.sleep(warmup)
            healthy = measure(f"(a) {clusters} healthy clusters", proxy, operator, window)

            for cluster in host.clusters:
                host.fault(fault="stop-store", store=3, cluster=cluster["name"])

            def all_ticketed() -> bool:
                tickets = kube.list_objects(namespace, "operatortickets", "tikvops.io/phase=open")
                return sum(t["spec"]["invariant"] == "store_down" for t in tickets) == clusters

            wait_for(all_ticketed, 120, f"{clusters} open store_down tickets", interval=1)
            log(f"api writes: {clusters} tickets open; warm-up {warmup:g}s")
            time.sleep(warmup)
            violated = measure(f"(b) {clusters} clusters, one open unchanging violation each", proxy, operator,
                               window)
            tickets = kube.list_objects(namespace, "operatortickets")
            extra = {"tickets": len(tickets), "startup": startup,
                     "open": sum((t.get("status") or {}).get("phase") == "Open" for t in tickets)}
            kube.delete_all(namespace, "tikvclusters", timeout=60)
    finally:
        if operator is not None:
            operator.stop()
        proxy.stop()
        kube.delete_all(namespace, "tikvclusters", timeout=5)
        kube.delete_namespace(namespace)
        kube.close()
    return [healthy, violated], extra


def render(windows: list[Window], extra: dict[str, Any], clusters: int, interval_s: float, refresh_s: float,
           started: datetime, argv: list[str]) -> str:
    lines = section_header("3. API writes per check in steady state", "api_writes", started, argv)
    lines += [
        f"{clusters} TiKVClusters of 3 simulated stores each, `spec.interval: {interval_s:g}s`, "
        f"`spec.tickets.refreshInterval: {refresh_s:g}s` (shortened from the default 1m so that a window holds "
        "several refreshes), real Prometheus. Writes are counted at a counting reverse proxy in front of "
        "kube-apiserver (`bench/kube_proxy.py`; the operator's kubeconfig points at it). Checks are the "
        "operator's own `tikv_operator_checks_total` over the same window. Nothing else writes through the proxy.",
        "",
    ]
    rows = []
    for w in windows:
        writes = _writes_text(w.writes)
        total = sum(w.writes.values())
        ticket_writes = sum(n for (_, r), n in w.writes.items() if r.startswith("operatortickets"))
        status_writes = sum(n for (_, r), n in w.writes.items() if r == "tikvclusters/status")
        status_per_refresh, status_gap = max_per_object(w.records, "tikvclusters/status", refresh_s, w.seconds)
        ticket_per_refresh, ticket_gap = max_per_object(w.records, "operatortickets", refresh_s, w.seconds)
        rows.append([
            w.label, f"{w.seconds:.0f}", str(w.checks), writes, f"{total / max(w.checks, 1):.4f}",
            str(ticket_writes), str(between_refreshes(w.records, "operatortickets", refresh_s)),
            f"{ticket_per_refresh:.2f}" + (f" (min gap {ticket_gap:.1f}s)" if ticket_gap != float("inf") else ""),
            str(status_writes), f"{status_per_refresh:.2f}" + (
                f" (min gap {status_gap:.1f}s)" if status_gap != float("inf") else ""),
            f"{load_text(w.load_before)} → {load_text(w.load_after)}",
        ])
    lines.append(table(
        ["phase", "window s", "checks", "writes by verb and resource", "writes/check", "ticket writes",
         "ticket writes between refreshes", "max ticket writes per ticket per refresh interval",
         "TiKVCluster status writes", "max status writes per cluster per refresh interval",
         "load 1/5/15 before → after"], rows))
    lines += ["", f"At the end of (b): {extra.get('tickets')} tickets, {extra.get('open')} Open. For comparison, "
              f"the start-up (operator start until every cluster is Healthy) wrote: "
              f"{_writes_text(extra.get('startup', {}))}.", "", "Targets:", ""]
    for w in windows:
        early = between_refreshes(w.records, "operatortickets", refresh_s)
        per_refresh, _ = max_per_object(w.records, "tikvclusters/status", refresh_s, w.seconds)
        # A window of k refresh intervals can hold k + 1 writes of one object when its phase straddles the edges.
        allowed = (w.seconds / refresh_s + 1) / (w.seconds / refresh_s)
        lines.append(f"- {w.label}: zero ticket writes per check between refreshes: "
                     f"{'MET' if early == 0 else 'MISSED'} ({early}); at most one status write per cluster per "
                     f"refresh interval: {'MET' if per_refresh <= allowed else 'MISSED'} "
                     f"(max {per_refresh:.2f} per interval; a window of {w.seconds / refresh_s:.1f} intervals "
                     f"allows {allowed:.2f} for edge effects).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--interval", type=float, default=5.0, help="spec.interval of every cluster, seconds")
    parser.add_argument("--refresh", type=float, default=30.0, help="spec.tickets.refreshInterval, seconds")
    parser.add_argument("--window", type=float, default=120.0, help="measurement window per phase, seconds")
    args = parser.parse_args(argv)
    with benchmark("api_writes", argv) as session:
        windows, extra = run(session.platform, args.clusters, f"{args.interval:g}s", f"{args.refresh:g}s",
                             warmup=args.refresh + 5, window=args.window)
    return publish("api_writes", render(windows, extra, args.clusters, args.interval, args.refresh,
                                        session.started, session.argv))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
