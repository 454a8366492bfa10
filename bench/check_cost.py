"""Cost of one check for simulated clusters of 3, 30 and 300 stores: PD requests, Prometheus queries,
CPU time and wall time of the operator's probe + evaluate path (`probe.observe` + `invariants.evaluate`),
against tikv_sim (in a process of its own) and the platform's real Prometheus, with the original tool's
approach (bench/baseline.py: five queries per store, one after another) as the baseline in the same
process and run, checks of every path interleaved. The operator's paths:

- operator: the whole catalogue, every built-in invariant at its defaults (a TiKVCluster that sets nothing);
- operator + 5 custom: the same plus five spec.customInvariants (CUSTOM_INVARIANTS below), which ride in
  one more query;
- operator, 5 original invariants: the invariants of the first catalogue's five only (the others
  disabled in spec.invariants), what the catalogue's growth is measured against in the same run.

Counting: requests' and httpx' send() are wrapped in this process (every request either library puts on
the wire, retries included), and cross-checked at the server with Prometheus' own
prometheus_http_requests_total{handler="/api/v1/query"}. CPU: time.process_time() of this process
(all threads, so prometheus-api-client's worker threads count); the simulator and Prometheus run in
other processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from bench.baseline import BaselineChecker
from bench.common import (
    Platform,
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
from bench.counting import RequestCounter
from bench.runner import benchmark, publish
from bench.stats import fmt, parse_samples, summarize
from tikv_operator.checks.core.catalogue import ENTRIES
from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.settings import ClusterSettings, configure, queries_for
from tikv_operator.checks.pd_client import read_stores
from tikv_operator.checks.probe import observe
from tikv_operator.checks.prometheus_client import query_metrics
from tikv_operator.model.cluster_resource import TiKVClusterSpec

PD_PATH = "/pd/api/v1/stores"
QUERY_PATH = "/api/v1/query"

MAX_DISK_PERCENT = 99.0
# The first catalogue (RESULTS.md of 2026-12-03 measured these five).
ORIGINAL_INVARIANTS = ("store_down", "high_latency", "low_disk_space", "pd_unreachable", "prometheus_unreachable")
# Five custom invariants in the style of TiKV's official alert rules, each empty on a healthy simulated
# cluster (so each is judged ok, not unknown): three store-scoped, two cluster-scoped.
CUSTOM_INVARIANTS = [
    {"name": "tikv_channel_full", "scope": "store", "severity": "critical",
     "expr": "sum by (instance) (rate(tikv_channel_full_total{$matchers}[5m])) > 0"},
    {"name": "tikv_scheduler_busy", "scope": "store",
     "expr": "sum by (instance) (rate(tikv_scheduler_too_busy_total{$matchers}[1m])) > 0"},
    {"name": "tikv_store_not_scraped", "scope": "store", "expr": "up{$matchers} == 0"},
    {"name": "tikv_too_many_regions", "scope": "cluster",
     "expr": 'sum(tikv_raftstore_region_count{type="region",$matchers}) > 1000000'},
    {"name": "tikv_server_report_failures", "scope": "cluster",
     "expr": "sum(rate(tikv_server_report_failure_msg_total{$matchers}[5m])) > 10"},
]
# Published for the first catalogue (RESULTS.md, 2026-12-03 07:11 UTC, commit 7e8b876, 5 invariants, same machine):
# stores -> (Prometheus queries/check, CPU ms p50 of the operator's check, CPU ms p50 of the baseline's). The
# baseline's code has not changed since: its ratio to then says how much slower the machine is now.
BEFORE_ISSUE_15 = {3: (2, 5.69, 8.41), 30: (2, 10.3, 80.3), 300: (2, 28.7, 865.0)}


@dataclass
class Sample:
    cpu_s: float
    wall_s: float
    pd_requests: int
    queries: int
    server_queries: int
    verdicts: dict[str, int]


@dataclass
class SizeResult:
    stores: int
    operator: list[Sample]
    custom: list[Sample]
    original: list[Sample]
    baseline: list[Sample]
    queries: dict[str, int]  # path -> len(queries_for(...)), what the probe intends to ask
    parts: dict[str, list[Sample]]
    async_library_calls: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def server_queries(prometheus_url: str) -> int:
    """Prometheus' own count of /api/v1/query requests (all codes)."""
    text = httpx.get(f"{prometheus_url}/metrics", timeout=10).text
    return int(sum(v for labels, v in parse_samples(text, "prometheus_http_requests_total")
                   if labels.get("handler") == QUERY_PATH))


def measure(run: Callable[[], dict[str, int]], prometheus_url: str) -> Sample:
    counter = RequestCounter()
    before_server = server_queries(prometheus_url)
    with counter.installed():
        cpu, wall = time.process_time(), time.perf_counter()
        verdicts = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after_server = server_queries(prometheus_url)
    return Sample(cpu, wall, counter.total(PD_PATH), counter.total(QUERY_PATH), after_server - before_server,
                  verdicts)


def measure_size(platform: Platform, stores: int, checks: int, baseline_checks: int) -> SizeResult:
    run = run_id("cost")
    file_sd = platform.file_sd_dir / f"bench-{run}.json"
    with sim_host(stores=stores, name=f"cost{stores}", labels={"bench_run": run}, file_sd=file_sd) as host:
        cluster = host.clusters[0]
        # tikv_sim's disk layout (store i 30 + 1.5 (i - 1) % full) passes 100 % from store 48 on: PD would show
        # a negative available size, which the operator reads as none (store_low_space unknown). Full is full.
        for store in cluster["stores"]:
            if store["disk_used_percent"] > MAX_DISK_PERCENT:
                host.fault(fault="disk", store=store["id"], percent=MAX_DISK_PERCENT)
        wait_for_scrapes(platform.prometheus_url, host.instances(), ("bench_run", run), timeout=90, samples=3)
        matchers = host.matchers(cluster["name"])
        base = {
            "pd": {"url": cluster["pd_url"], "timeout": "10s"},
            "prometheus": {"url": platform.prometheus_url, "labelMatchers": matchers, "timeout": "30s"},
        }
        spec = TiKVClusterSpec.model_validate(base)
        custom_spec = TiKVClusterSpec.model_validate({**base, "customInvariants": CUSTOM_INVARIANTS})
        original_spec = TiKVClusterSpec.model_validate({**base, "invariants": {
            name: {"enabled": False} for name in ENTRIES if name not in ORIGINAL_INVARIANTS}})
        loop = asyncio.new_event_loop()

        unknown: dict[str, str] = {}  # invariant -> why, of the last check that had unknowns (for the log)

        def checker(spec: TiKVClusterSpec) -> Callable[[], dict[str, int]]:
            settings = ClusterSettings.of(spec)  # as the operator: once per spec, not once per check

            def check() -> dict[str, int]:
                observation = loop.run_until_complete(observe(cluster["name"], settings, None, datetime.now(UTC)))
                findings = evaluate(observation, settings.configs)
                tally: dict[str, int] = {}
                for finding in findings:
                    tally[finding.verdict] = tally.get(finding.verdict, 0) + 1
                    if finding.verdict == "unknown":
                        unknown[finding.invariant] = finding.message
                return tally

            return check

        operator_check, custom_check, original_check = checker(spec), checker(custom_spec), checker(original_spec)
        intended = {name: len(queries_for(s, configure(s))[0])
                    for name, s in (("operator", spec), ("custom", custom_spec), ("original", original_spec))}

        baseline = BaselineChecker(cluster["pd_url"], platform.prometheus_url, matchers, timeout_s=30)

        def baseline_check() -> dict[str, int]:
            result = baseline.check()
            return {"ok": result.ok, "violated": result.violated, "unknown": result.unknown}

        # Every store and invariant must be judged: a check that finds no metrics is cheaper and meaningless
        # (the raft p99s need two scrapes inside rateWindow, PD's gauges its members scraped).
        def judged() -> bool:
            unknown.clear()
            done = all(c().get("unknown", 0) == 0 for c in (operator_check, custom_check, original_check))
            if unknown:
                log(f"check cost: {stores} stores: still unknown: " + "; ".join(
                    f"{name}: {why[:200]}" for name, why in sorted(unknown.items())))
            return done

        wait_for(judged, 150, "every invariant judged (metrics of every store and PD member in Prometheus)",
                 interval=5)
        for _ in range(2):  # warm-up: imports, connection pools, Prometheus' caches
            operator_check()
            custom_check()
            original_check()
        baseline_check()
        load_before = load()
        operator: list[Sample] = []
        custom: list[Sample] = []
        original: list[Sample] = []
        baseline_samples: list[Sample] = []
        paths: list[tuple[Callable[[], dict[str, int]], list[Sample]]] = [
            (operator_check, operator), (custom_check, custom), (original_check, original)]
        for index in range(checks):
            # Each round starts with another path, so no path always follows the baseline.
            rotated = paths[index % len(paths):] + paths[:index % len(paths)]
            if index < baseline_checks:
                rotated.insert(index % (len(paths) + 1), (baseline_check, baseline_samples))
            for check, samples in rotated:
                samples.append(measure(check, platform.prometheus_url))
        load_after = load()
        # Where the operator's check CPU goes: each part of it alone.
        settings = ClusterSettings.of(spec)
        observation = loop.run_until_complete(observe(cluster["name"], settings, None, datetime.now(UTC)))
        queries, _ = queries_for(spec, configure(spec))
        parts_run: dict[str, Callable[[], dict[str, int]]] = {
            "PD read (read_stores)": lambda: _done(loop.run_until_complete(
                read_stores(cluster["pd_url"], 10.0))),
            f"Prometheus queries (query_metrics, {len(queries)} threads)": lambda: _done(loop.run_until_complete(
                query_metrics(platform.prometheus_url, queries, 30.0))),
            "evaluate + configure": lambda: _done(evaluate(observation, configure(spec))),
            "PD read, then the queries (not at the same time)": lambda: _done((
                loop.run_until_complete(read_stores(cluster["pd_url"], 10.0)),
                loop.run_until_complete(query_metrics(platform.prometheus_url, queries, 30.0)))),
        }
        parts = {name: [measure(run, platform.prometheus_url) for _ in range(checks)]
                 for name, run in parts_run.items()}
        tally: list[int] = []
        with counting_async_library_calls(tally):
            operator_check()
        baseline.close()
        loop.close()
    return SizeResult(stores, operator, custom, original, baseline_samples, intended, parts, len(tally),
                      load_before, load_after)


def _done(_: object) -> dict[str, int]:
    return {}


def sniffio_probe() -> float:
    """httpcore asks `current_async_library()` on every lock it takes (an `import sniffio` each time).
    CPU ms per call."""
    from httpcore import _synchronization

    original = _synchronization.current_async_library
    cpu = time.process_time()
    for _ in range(200):
        with contextlib.suppress(RuntimeError):
            original()
    return (time.process_time() - cpu) / 200 * 1000


@contextlib.contextmanager
def counting_async_library_calls(tally: list[int]) -> Iterator[None]:
    from httpcore import _synchronization

    original = _synchronization.current_async_library

    def counted() -> str:
        tally.append(1)
        return original()

    _synchronization.current_async_library = counted  # type: ignore[assignment]
    try:
        yield
    finally:
        _synchronization.current_async_library = original  # type: ignore[assignment]


def _consistent(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def _verdicts(samples: list[Sample]) -> str:
    last = samples[-1].verdicts
    return ", ".join(f"{k} {last[k]}" for k in sorted(last))


PATHS = (("operator", "operator"), ("custom", "operator + 5 custom"), ("original", "operator, 5 original invariants"),
         ("baseline", "baseline"))


def _samples(r: SizeResult, path: str) -> list[Sample]:
    return {"operator": r.operator, "custom": r.custom, "original": r.original, "baseline": r.baseline}[path]


def _p50(samples: list[Sample], value: Callable[[Sample], float]) -> float:
    return summarize([value(s) for s in samples]).p50


def render(results: list[SizeResult], sniffio_ms: float, started: datetime, argv: list[str]) -> str:
    lines = section_header("1. Cost of one check", "check_cost", started, argv)
    intended = results[0].queries if results else {}
    lines += [
        "The operator's path is `probe.observe` + `invariants.evaluate` (PD and Prometheus asked concurrently; "
        "`queries_for()` writes the queries, whatever the number of stores), in three variants: **operator**, "
        f"the whole catalogue ({len(ENTRIES)} built-in invariants, every one on by default: "
        f"{intended.get('operator', '?')} queries, the latency and disk queries plus the `store_health` and "
        "`pd_health` unions); **operator + 5 custom**, the same with five `spec.customInvariants` (three "
        "store-scoped, two cluster-scoped, each empty on a healthy cluster: `CUSTOM_INVARIANTS` in "
        f"bench/check_cost.py), which share one more query ({intended.get('custom', '?')}); **operator, 5 original "
        "invariants**, the first catalogue's only (store_down, high_latency, low_disk_space, "
        "pd_unreachable, prometheus_unreachable; the others disabled in `spec.invariants`: "
        f"{intended.get('original', '?')} queries), what the catalogue's growth costs in the same run. The "
        "baseline is `bench/baseline.py`: PD's store list, then 5 queries per store (p99 latency, capacity, "
        "available, up, region count, each with `instance=\"<addr>\"`) one after another through "
        "prometheus-api-client. The paths are interleaved check by check in one process against the same "
        "simulator (`bench.sim_host`, its own process; its PD members are scraped too, for `pd_health`) and the "
        "platform's Prometheus (scrape interval 1 s). Requests are counted in-process at requests'/httpx' "
        "`send()` (every request put on the wire, not `len(queries)`); \"server\" is Prometheus' own "
        "`prometheus_http_requests_total{handler=\"/api/v1/query\"}` delta, which agrees unless something else "
        "queries the same Prometheus meanwhile (a shared platform: then it is higher, and a range). CPU = "
        "`time.process_time()` of the benchmark process (all threads). Medians over the checks (n); verdicts of "
        "the last check show every store and invariant was judged, none unknown (the violations at 30 and 300 "
        "stores are the simulator's disk layout, store i being 30 + 1.5 (i - 1) % full, capped at "
        f"{MAX_DISK_PERCENT:g} % (beyond 100 % PD would show a negative available size), which low_disk_space "
        "and, from PD's sizes, store_low_space both see).",
        "",
    ]
    rows = []
    for r in results:
        for path, label in PATHS:
            samples = _samples(r, path)
            cpu = summarize([s.cpu_s * 1000 for s in samples])
            wall = summarize([s.wall_s * 1000 for s in samples])
            rows.append([
                str(r.stores), label, str(len(samples)),
                _consistent([s.pd_requests for s in samples]),
                _consistent([s.queries for s in samples]),
                _consistent([s.server_queries for s in samples]),
                fmt(cpu.p50), fmt(cpu.p99), fmt(wall.p50), fmt(wall.p99),
                _verdicts(samples), f"{load_text(r.load_before)} → {load_text(r.load_after)}",
            ])
    lines.append(table(
        ["stores", "path", "n", "PD requests/check", "Prometheus queries/check", "server-counted queries/check",
         "CPU ms p50", "CPU ms p99", "wall ms p50", "wall ms p99", "verdicts (last check)",
         "load 1/5/15 before → after"], rows))
    lines += ["", "Ratios (baseline ÷ operator, medians):", ""]
    ratio_rows = []
    for r in results:
        for path, label in PATHS[:2]:
            ops = _samples(r, path)
            ratio_rows.append([
                str(r.stores), label,
                f"{_p50(r.baseline, lambda s: s.queries) / _p50(ops, lambda s: s.queries):.0f}x",
                f"{_p50(r.baseline, lambda s: s.cpu_s) / _p50(ops, lambda s: s.cpu_s):.2f}x",
                f"{_p50(r.baseline, lambda s: s.wall_s) / _p50(ops, lambda s: s.wall_s):.2f}x"])
    lines.append(table(["stores", "path", "queries", "CPU", "wall"], ratio_rows))
    lines += ["", "What the catalogue's growth costs (medians of this run; the last columns: the figures published "
              "for the first catalogue, 2026-12-03, 5 invariants, same machine, and the baseline's CPU now ÷ "
              "then, its code unchanged: how much slower the shared machine is now; \"corrected\" divides by it):", ""]
    growth_rows = []
    for r in results:
        before = BEFORE_ISSUE_15.get(r.stores)
        full, custom, original = (_p50(_samples(r, p), lambda s: s.cpu_s * 1000)
                                  for p in ("operator", "custom", "original"))
        drift = _p50(r.baseline, lambda s: s.cpu_s * 1000) / before[2] if before else math.nan
        growth_rows.append([
            str(r.stores), fmt(original), fmt(full), f"{full / original:.2f}x", fmt(custom),
            f"{custom / full:.2f}x",
            f"{before[0]} queries, {fmt(before[1])} ms (baseline {fmt(before[2])} ms)" if before else "n/a",
            f"{full / before[1]:.2f}x" if before else "n/a", f"{drift:.2f}x" if before else "n/a",
            f"{full / before[1] / drift:.2f}x" if before else "n/a"])
    lines.append(table(["stores", "5 original: CPU ms", f"all {len(ENTRIES)}: CPU ms", "all ÷ 5 original",
                        "+ 5 custom: CPU ms", "+ 5 custom ÷ all", "published 2026-12-03 (5 invariants)",
                        "all ÷ published", "baseline now ÷ then", "all ÷ published, corrected"], growth_rows))
    lines += ["", "Targets:", ""]
    lines += targets(results)
    lines += ["", "Where the operator's check CPU goes (the whole catalogue): each part alone, same process and run "
              "(CPU ms, median):", ""]
    part_rows = []
    for r in results:
        whole = summarize([x.cpu_s * 1000 for x in r.operator]).p50
        part_rows.append([str(r.stores), *(fmt(summarize([x.cpu_s * 1000 for x in v]).p50) for v in r.parts.values()),
                          fmt(whole), f"{r.async_library_calls} x {sniffio_ms:.2f} ms"])
    names = list(results[0].parts) if results else []
    lines.append(table(["stores", *names, "whole check", "httpcore current_async_library() calls per check"],
                       part_rows))
    if results:
        r = results[0]
        alone = sum(summarize([x.cpu_s * 1000 for x in v]).p50 for v in list(r.parts.values())[:3])
        whole = summarize([x.cpu_s * 1000 for x in r.operator]).p50
        lines += ["", f"At {r.stores} stores the parts alone add up to {alone:.1f} ms, the whole check costs "
                  f"{whole:.1f} ms: `probe.observe` runs the PD read and the queries at the same time (the "
                  "event loop plus a worker thread per query); the difference is what running them together costs. "
                  "The baseline asks one query at a time on one kept-alive session. The last column: httpcore (under "
                  "httpx, the PD client) calls `current_async_library()` for each lock it takes, which tries "
                  "`import sniffio`. Without sniffio each try searched sys.path (about 0.03 ms here, yet 5 % of the "
                  "operator's samples in the 1000-cluster profile of section 4), so sniffio is a dependency and "
                  "the import is a dictionary lookup."]
    return "\n".join(lines)


QUERY_BUDGET = 5  # docs/design.md: every Prometheus query of one check, union sub-queries counted as one


def targets(results: list[SizeResult]) -> list[str]:
    out = []
    for path, label in PATHS[:3]:
        queries = sorted({s.queries for r in results for s in _samples(r, path)})
        constant = len(queries) == 1 and queries[0] <= QUERY_BUDGET
        out.append(f"- {label}: Prometheus queries per check constant and <= {QUERY_BUDGET}: "
                   f"{'MET' if constant else 'MISSED'} (seen: {', '.join(map(str, queries))} at "
                   f"{', '.join(str(r.stores) for r in results)} stores).")
    pd = sorted({s.pd_requests for r in results for path, _ in PATHS[:3] for s in _samples(r, path)})
    out.append(f"- one PD request per check: {'MET' if pd == [1] else 'MISSED'} (seen: {', '.join(map(str, pd))}).")
    for r in results:
        if r.stores == 30:
            ratio = _p50(r.baseline, lambda s: s.queries) / _p50(r.operator, lambda s: s.queries)
            out.append(f"- >= 25x fewer queries than the baseline at 30 stores: "
                       f"{'MET' if ratio >= 25 else 'MISSED'} ({ratio:.0f}x).")
    for r in results:
        cpu_op = _p50(r.operator, lambda s: s.cpu_s)
        cpu_base = _p50(r.baseline, lambda s: s.cpu_s)
        verdict = "MET" if cpu_op < cpu_base else "MISSED"
        out.append(f"- lower CPU per check than the baseline at {r.stores} stores: {verdict} "
                   f"({cpu_op * 1000:.1f} ms vs {cpu_base * 1000:.1f} ms median).")
    return out


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="3,30,300", help="stores per simulated cluster, comma separated")
    parser.add_argument("--checks", type=int, default=20, help="operator checks per size")
    parser.add_argument("--baseline-budget", type=int, default=3000,
                        help="at most this many baseline queries per size (bounds the 300-store baseline)")
    args = parser.parse_args(argv)
    results = []
    with benchmark("check_cost", argv) as session:
        for stores in (int(s) for s in args.sizes.split(",")):
            baseline_checks = max(3, min(args.checks, args.baseline_budget // (5 * stores)))
            log(f"check cost: {stores} stores, {args.checks} operator and {baseline_checks} baseline checks")
            results.append(measure_size(session.platform, stores, args.checks, baseline_checks))
        sniffio_ms = sniffio_probe()
    return publish("check_cost", render(results, sniffio_ms, session.started, session.argv))




if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
