"""`python -m bench.sim_host`: tikv_sim clusters in a process of their own (so their CPU is never
counted as the operator's or the benchmark's), with

- a file_sd file whose store and PD member targets carry `<cluster-label>=<cluster name>` plus extra
  labels, so that one TiKVCluster's labelMatchers pick out its own cluster's series (tikv_sim's own
  file_sd gives every cluster the same labels); the PD members are there because a check reads PD's
  gauges (region health through the leader gate, leader changes: the pd_health query);
- optionally `__scrape_interval__` on those targets (Prometheus >= 2.27 honours it per target);
- optionally the fake Prometheus query API of bench/fake_prometheus.py;
- the simulator's control API for faults.

It writes a JSON state file (URLs of PD per cluster, control API, fake Prometheus) and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bench import fake_prometheus
from tikv_sim.file_sd import write_atomically
from tikv_sim.simulator import SimConfig, Simulator
from tikv_sim.store_model import Timing

ALL_LABEL_KEY = "bench_cluster"


def _labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = value
    return out


def target_groups(summary: dict[str, Any], cluster_label: str, labels: dict[str, str],
                  scrape_interval: str | None) -> list[dict[str, Any]]:
    groups = []
    extra = {"__scrape_interval__": scrape_interval} if scrape_interval else {}
    for cluster in summary["clusters"]:
        for store in cluster["stores"]:
            netloc = urlsplit(store["metrics_url"]).netloc
            groups.append({"targets": [netloc], "labels": {
                "instance": store["instance"], **labels, cluster_label: cluster["name"], **extra}})
        for member in cluster.get("pd_members", []):
            netloc = urlsplit(member["metrics_url"]).netloc
            groups.append({"targets": [netloc], "labels": {
                **labels, cluster_label: cluster["name"], **extra}})
    return groups


class FakePrometheus:
    def __init__(self, sim: Simulator, cluster_label: str, labels: dict[str, str]) -> None:
        self.sim = sim
        self.cluster_label = cluster_label
        self.labels = labels
        self.queries = 0

    def _stores(self, query: fake_prometheus.Query) -> list[fake_prometheus.StoreSeries]:
        wanted = query.matchers.get(self.cluster_label)
        clusters = self.sim.clusters
        names = [wanted] if wanted is not None else list(clusters)
        out = []
        for name in names:
            cluster = clusters.get(name)
            if cluster is None:
                continue
            for store in cluster.stores.values():
                raft = getattr(store, "raft_p99", {})  # the set p99s; the defaults: a healthy store's
                healthy = fake_prometheus.StoreSeries
                out.append(fake_prometheus.StoreSeries(
                    cluster=name, instance=store.spec.status_address, running=store.running,
                    p99_seconds=store.spec.p99_seconds, capacity_bytes=store.spec.capacity_bytes,
                    available_bytes=store.available_bytes,
                    raft_log_lag_p99=raft.get("log-lag", healthy.raft_log_lag_p99),
                    raft_append_p99_seconds=raft.get("append", healthy.raft_append_p99_seconds),
                    raft_apply_p99_seconds=raft.get("apply", healthy.raft_apply_p99_seconds),
                    write_stall_micros=getattr(store, "write_stall_micros", healthy.write_stall_micros),
                    l0_files_avg=getattr(store, "l0_avg", healthy.l0_files_avg)))
        return out

    async def query(self, request: web.Request) -> web.Response:
        self.queries += 1
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        expr = params.get("query", "")
        try:
            parsed = fake_prometheus.parse_query(expr)
            stores = self._stores(parsed)
        except fake_prometheus.UnsupportedQuery:
            stores = []
        status, body = fake_prometheus.answer(expr, stores, self.cluster_label, self.labels, time.time())
        return web.json_response(body, status=status)

    async def healthy(self, _request: web.Request) -> web.Response:
        return web.Response(text="Prometheus is Healthy.\n")

    async def count(self, _request: web.Request) -> web.Response:
        return web.json_response({"queries": self.queries})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/api/v1/query", self.query)
        app.router.add_route("POST", "/api/v1/query", self.query)
        app.router.add_get("/-/healthy", self.healthy)
        app.router.add_get("/bench/queries", self.count)
        return app


async def serve(args: argparse.Namespace) -> None:
    labels = _labels(args.label)
    timing = Timing(heartbeat_interval=args.heartbeat_interval, disconnect_after=args.disconnect_after,
                    down_after=args.down_after)
    # "lean" unless told: the scale benchmarks run hundreds of stores through one Prometheus.
    config = SimConfig(stores=args.stores, clusters=args.clusters, name=args.name, control_port=0,
                       timing=timing, extra_labels=labels, grpc_series=args.grpc_series)
    sim = Simulator(config)
    started = time.monotonic()
    await sim.start()
    runner: web.AppRunner | None = None
    prometheus_url = None
    if args.fake_prometheus:
        fake = FakePrometheus(sim, args.cluster_label, labels)
        runner = web.AppRunner(fake.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        prometheus_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    summary = sim.summary()
    if args.file_sd:
        write_atomically(Path(args.file_sd), target_groups(summary, args.cluster_label, labels, args.scrape_interval))
    state = {
        "pid_started_in_s": round(time.monotonic() - started, 3),
        "control_url": summary["control_url"],
        "prometheus_url": prometheus_url,
        "cluster_label": args.cluster_label,
        "labels": labels,
        "clusters": [{"name": c["name"], "pd_url": c["pd_url"],
                      "stores": [{"id": s["id"], "instance": s["instance"], "disk_used_percent": s["disk_used_percent"]}
                                 for s in c["stores"]]}
                     for c in summary["clusters"]],
    }
    try:
        await publish_and_wait(Path(args.state_file), state, args.max_seconds)
    finally:
        if args.file_sd:
            await asyncio.to_thread(Path(args.file_sd).unlink, missing_ok=True)
        if runner is not None:
            await runner.cleanup()
        await sim.stop()


async def publish_and_wait(state_file: Path, state: dict[str, Any], max_seconds: float) -> None:
    """Write the state file the parent waits for (atomically), then serve until SIGINT/SIGTERM or
    `max_seconds` (a host never outlives a crashed benchmark for long)."""
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(state_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=1)
    parser.add_argument("--name", default="bench")
    parser.add_argument("--cluster-label", default=ALL_LABEL_KEY)
    parser.add_argument("--label", action="append", default=[], help="extra k=v on every target")
    parser.add_argument("--file-sd", default=None)
    parser.add_argument("--scrape-interval", default=None, help="__scrape_interval__ of the targets, e.g. 15s")
    parser.add_argument("--fake-prometheus", action="store_true")
    parser.add_argument("--heartbeat-interval", type=float, default=0.5)
    parser.add_argument("--disconnect-after", type=float, default=1.5)
    parser.add_argument("--down-after", type=float, default=1800.0)
    parser.add_argument("--grpc-series", choices=("full", "lean"), default="lean",
                        help="tikv_sim's gRPC histogram profile (full: about 4.6k series per store)")
    parser.add_argument("--state-file", required=True)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
