"""What the check's Prometheus queries cost against a realistic number of series: 30 stores exporting
TiKV's whole gRPC histogram (tikv_sim's `full` profile: 50 request types x 4 priorities x 23 buckets,
about 4.6k bucket series per store), scraped every 15 s as tiup and TidbMonitor do, by the platform's real
Prometheus.

- before: the queries of commit 7e8b876: one p99 over every request type but kv_gc, `by (instance, le)`
  over [1m], plus capacity and available as two more queries;
- after: `tikv_operator.checks.core.queries.base_queries()` (the latency and disk queries of check_queries();
  the raft, RocksDB and PD union queries are not compared here): p99 per foreground type, then the
  worst type of each store, over the default rateWindow (2m) and, to separate the query's shape from its
  window, over 1m; capacity and available in one query.

Measured per variant, interleaved round by round: Prometheus' own evaluation time and the samples it
touched (`stats=all` on /api/v1/query, one request per query), and the operator's CPU for the
Prometheus part of a check (`query_metrics`, worker threads included) plus `evaluate` where it applies.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from bench.common import (
    load,
    load_text,
    log,
    run_id,
    section_header,
    sim_host,
    table,
    wait_for,
)
from bench.runner import benchmark, publish
from bench.stats import fmt, summarize
from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.observation import Observation
from tikv_operator.checks.core.queries import base_queries, selector
from tikv_operator.checks.core.settings import configure
from tikv_operator.checks.pd_client import read_stores
from tikv_operator.checks.prometheus_client import query_metrics
from tikv_operator.model.cluster_resource import TiKVClusterSpec

SCRAPE_INTERVAL = "15s"


def queries_before(matchers: Mapping[str, str]) -> dict[str, str]:
    """The three queries the operator sent up to commit 7e8b876 (core/queries.py there)."""
    buckets = selector("tikv_grpc_msg_duration_seconds_bucket", matchers, 'type!="kv_gc"')
    capacity = selector("tikv_store_size_bytes", matchers, 'type="capacity"')
    available = selector("tikv_store_size_bytes", matchers, 'type="available"')
    return {
        "p99_latency_seconds": f"histogram_quantile(0.99, sum by (instance, le) (rate({buckets}[1m])))",
        "capacity_bytes": f"sum by (instance) ({capacity})",
        "available_bytes": f"sum by (instance) ({available})",
    }


@dataclass
class Variant:
    name: str
    queries: dict[str, str]
    evaluates: bool
    eval_ms: dict[str, list[float]] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    series: dict[str, int] = field(default_factory=dict)
    check_cpu_ms: list[float] = field(default_factory=list)


def prometheus_stats(url: str, expr: str) -> tuple[float, int, int]:
    """(evaluation ms, samples touched, result series) as Prometheus itself reports them."""
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr, "stats": "all"}, timeout=60).json()
    data = body["data"]
    stats = data["stats"]
    return (stats["timings"]["evalTotalTime"] * 1000, int(stats["samples"]["totalQueryableSamples"]),
            len(data["result"]))


def bucket_series(url: str, matchers: Mapping[str, str]) -> int:
    expr = f"count({selector('tikv_grpc_msg_duration_seconds_bucket', matchers)})"
    result = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=60).json()["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stores", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    run = run_id("qcost")
    with benchmark("query_cost", argv) as session:
        platform = session.platform
        file_sd = platform.file_sd_dir / f"bench-{run}.json"
        with sim_host(stores=args.stores, name="qcost", labels={"bench_run": run}, file_sd=file_sd,
                      scrape_interval=SCRAPE_INTERVAL, grpc_series="full") as host:
            cluster = host.clusters[0]
            matchers = host.matchers(cluster["name"])
            url = platform.prometheus_url
            # A 2m window at a 15 s scrape holds 8 samples once 2 minutes of scrapes are in.
            log(f"query cost: waiting for 2m15s of {SCRAPE_INTERVAL} scrapes of {args.stores} stores")
            up = f'count_over_time(up{{bench_run="{run}"}}[3m]) >= 9'
            wait_for(lambda: len(httpx.get(f"{url}/api/v1/query", params={"query": up}, timeout=30)
                                 .json()["data"]["result"]) >= args.stores, 300, "9 scrapes of every store",
                     interval=5)
            series = bucket_series(url, matchers)
            spec = TiKVClusterSpec.model_validate({"pd": {"url": cluster["pd_url"]},
                                                   "prometheus": {"url": url, "labelMatchers": matchers}})
            variants = [
                Variant("before (7e8b876): mixed types, by instance, [1m]", queries_before(matchers), False),
                Variant("after: per type then worst, [1m]", base_queries(matchers, "1m"), True),
                Variant("after: per type then worst, [2m] (default)", base_queries(matchers), True),
            ]
            loop = asyncio.new_event_loop()
            pd = loop.run_until_complete(read_stores(cluster["pd_url"], 10.0))
            for variant in variants:  # warm-up: connection pools, Prometheus' caches
                loop.run_until_complete(query_metrics(url, variant.queries, 60.0))
            load_before = load()
            for _ in range(args.rounds):
                for variant in variants:
                    for name, expr in variant.queries.items():
                        ms, samples, result = prometheus_stats(url, expr)
                        variant.eval_ms.setdefault(name, []).append(ms)
                        variant.samples[name], variant.series[name] = samples, result
                    cpu = time.process_time()
                    metrics = loop.run_until_complete(query_metrics(url, variant.queries, 60.0))
                    if variant.evaluates:
                        evaluate(Observation(cluster["name"], datetime.now(UTC), pd, metrics), configure(spec))
                    variant.check_cpu_ms.append((time.process_time() - cpu) * 1000)
            load_after = load()
            loop.close()
    return publish("query_cost", render(variants, args, series, load_before, load_after, session.started,
                                        session.argv))


def render(variants: list[Variant], args: argparse.Namespace, series: int, load_before: tuple[float, float, float],
           load_after: tuple[float, float, float], started: datetime, argv: list[str]) -> str:
    lines = section_header("5. Prometheus query cost against realistic series", "query_cost", started, argv)
    lines += [
        f"{args.stores} simulated stores with TiKV's whole gRPC histogram: {series} bucket series in all "
        f"({series // max(1, args.stores)} per store), scraped every {SCRAPE_INTERVAL}, the platform's real "
        "Prometheus. Each round asks every query of every variant once with `stats=all` (Prometheus' own "
        "evalTotalTime and totalQueryableSamples), then runs the variant's whole Prometheus side of a check in "
        f"this process (`query_metrics` + `evaluate`, CPU of all threads). {args.rounds} rounds, medians; "
        f"load 1/5/15 {load_text(load_before)} → {load_text(load_after)}.",
        "",
    ]
    rows = []
    for v in variants:
        for name in v.queries:
            ms = summarize(v.eval_ms[name])
            rows.append([v.name, name, fmt(ms.p50), fmt(ms.p99), str(v.samples[name]), str(v.series[name])])
    lines.append(table(["variant", "query", "Prometheus eval ms p50", "p99", "samples touched", "result series"],
                       rows))
    lines += ["", "Per check:", ""]
    base_eval = sum(summarize(x).p50 for x in variants[0].eval_ms.values())
    base_cpu = summarize(variants[0].check_cpu_ms).p50
    check_rows = []
    for v in variants:
        total = sum(summarize(x).p50 for x in v.eval_ms.values())
        cpu = summarize(v.check_cpu_ms).p50
        check_rows.append([v.name, str(len(v.queries)), fmt(total), f"{total / base_eval:.2f}x",
                           fmt(cpu), f"{cpu / base_cpu:.2f}x", str(sum(v.samples.values()))])
    lines.append(table(["variant", "queries/check", "Prometheus eval ms (sum of medians)", "vs before",
                        "operator CPU ms p50", "vs before", "samples touched"], check_rows))
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
