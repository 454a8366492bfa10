"""Scale: one operator process watching 100, 300 and 1000 TiKVClusters of 5 simulated stores each, at
interval 30 s. Average and peak CPU and RSS of the operator process (/proc/PID/stat and status sampled
every second), and the lag between a check's scheduled time and its start, from the operator's own
tikv_operator_check_lag_seconds histogram (the difference of two scrapes around the window).

Metrics side: up to --real-prometheus-max clusters (100), the platform's real Prometheus scrapes every
store (per-target `__scrape_interval__` 15 s, the TidbMonitor default, so that 500 targets do not make
Prometheus the thing measured); above that, bench/fake_prometheus.py (in the simulator's process)
answers the operator's queries (latency, disk, and the store_health and pd_health unions of the whole
catalogue at its defaults) from the simulator's model."""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from harness.operator_process import OperatorProcess

from bench.common import (
    REPO,
    RUN_DIR,
    KubeApi,
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
from bench.procstat import ProcSampler, cpu_cores, top_frames
from bench.runner import benchmark, publish
from bench.stats import bucket_delta, fmt, fraction_at_most, histogram_buckets, histogram_quantile, parse_samples
from tikv_operator.checks.core.catalogue import ENTRIES

INTERVAL = "30s"
STORES = 5
PY_SPY_DEFAULT = "/tmp/pyspy-venv/bin/py-spy"  # noqa: S108  (a throwaway venv: uv pip install py-spy)
# Which invariants the TiKVClusters run: every built-in (the default, nothing in spec.invariants), or only the
# five of the first catalogue (the others disabled), the same-run comparison of the catalogue's cost.
ALL = "all 18"
ORIGINAL = "5 original"
ORIGINAL_INVARIANTS = ("store_down", "high_latency", "low_disk_space", "pd_unreachable", "prometheus_unreachable")
ORIGINAL_ONLY = {name: {"enabled": False} for name in ENTRIES if name not in ORIGINAL_INVARIANTS}
# clusters -> (CPU avg cores, RSS peak MiB) published for the first catalogue (2026-12-03 14:11 UTC, commit e1a6c01).
BEFORE_ISSUE_15 = {100: (0.0365, 140), 300: (0.0987, 171), 1000: (0.324, 229)}



@dataclass
class ScaleResult:
    clusters: int
    catalogue: str  # ALL, ORIGINAL, or "commit <c>" (the operator of another commit, its defaults)
    metrics_side: str
    window_s: float
    first_round_s: float
    checks: int
    failures: int
    cpu_avg: float
    cpu_peak: float
    rss_avg_mib: float
    rss_peak_mib: float
    hwm_mib: float
    lag_p50: float
    lag_p99: float
    lag_le_1s: float
    lag_max_bucket: str
    duration_p50: float
    duration_p99: float
    pd_errors: int
    prometheus_errors: int
    queries_per_check: float  # counted by the fake Prometheus over the window; NaN with the real one
    healthy_after: int
    deletion_s: float
    deletion_left: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    profile: list[str] = field(default_factory=list)


def _metrics(operator: OperatorProcess) -> str:
    return httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=30).text


def _total(text: str, name: str) -> int:
    return int(sum(v for _, v in parse_samples(text, name)))


def _fake_queries(prometheus_url: str | None) -> int:
    """Requests to the fake Prometheus' /api/v1/query so far (every one it received); 0 without one."""
    if not prometheus_url:
        return 0
    return int(httpx.get(f"{prometheus_url}/bench/queries", timeout=30).json()["queries"])


def _errors(text: str, target: str) -> int:
    return int(sum(v for labels, v in parse_samples(text, "tikv_operator_probe_errors_total")
                   if labels.get("target") == target))


def _max_bucket(buckets: list[tuple[float, float]]) -> str:
    """The smallest bound that holds every observation."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return "n/a"
    for bound, count in buckets:
        if count >= total:
            return "+Inf" if math.isinf(bound) else f"<= {bound:g} s"
    return "n/a"


def operator_tree(commit: str) -> Path:
    """operator/ of `commit` (git archive, nothing in the checkout changes), for PYTHONPATH: the venv's
    dependencies with that commit's tikv_operator."""
    out = RUN_DIR / f"operator-{commit}"
    if not (out / "operator" / "tikv_operator").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "operator"], capture_output=True,
                                 check=True, timeout=60).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True, timeout=60)
    return out / "operator"


def profile(pid: int, seconds: float, py_spy: str) -> list[str]:
    """py-spy (sampling, from outside the process) for `seconds`: top functions, self and inclusive."""
    out = RUN_DIR / f"py-spy-{pid}.txt"
    result = subprocess.run([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50",
                             "--threads", "--format", "raw", "--output", str(out), "--nonblocking"],
                            capture_output=True, text=True, timeout=seconds + 60, check=False)
    if result.returncode != 0 or not out.exists():
        return [f"py-spy failed ({result.returncode}): {result.stderr.strip()[-300:]}"]
    total, own, inclusive = top_frames(out.read_text(), 15)
    lines = [f"py-spy, {seconds:g} s at 50 Hz, {total} non-idle thread samples (py-spy counts a thread "
             "waiting for the GIL as busy, so this overstates CPU; /proc above is the CPU figure)."]
    lines += ["", "Top functions by own samples:", ""]
    lines += [f"- {n / total:.1%} `{name}`" for name, n in own] if total else []
    lines += ["", "Top functions by inclusive samples (counted below the event loop's callback dispatch and the "
              "pool threads' work items):", ""]
    lines += [f"- {n / total:.1%} `{name}`" for name, n in inclusive] if total else []
    return lines


def measure(platform: Platform, clusters: int, real_max: int, warmup: float, window: float,
            py_spy: str | None, catalogue: str = ALL, tree: Path | None = None) -> ScaleResult:
    kube: KubeApi = platform.kube()
    namespace = run_id(f"bench-scale{clusters}")
    kube.create_namespace(namespace)
    real = clusters <= real_max
    file_sd = platform.file_sd_dir / f"{namespace}.json" if real else None
    operator: OperatorProcess | None = None
    try:
        with sim_host(stores=STORES, clusters=clusters, name="s", labels={"bench_run": namespace}, file_sd=file_sd,
                      fake_prometheus=not real, scrape_interval="15s" if real else None,
                      heartbeat_interval=10, disconnect_after=20) as host:
            if real:
                wait_for_scrapes(platform.prometheus_url, host.instances(), ("bench_run", namespace), timeout=180)
                prometheus_url = platform.prometheus_url
            else:
                prometheus_url = host.state["prometheus_url"]
            # The CRD's default timeouts (PD 5 s, Prometheus 10 s), as a user would have them.
            extra = {"invariants": ORIGINAL_ONLY} if catalogue == ORIGINAL else {}
            manifests = [cluster_manifest(c["name"], c["pd_url"], prometheus_url, host.matchers(c["name"]),
                                          pd_timeout=None, prometheus_timeout=None, **extra)
                         for c in host.clusters]
            log(f"scale {clusters}: creating {clusters} TiKVClusters ({catalogue})")
            kube.create_clusters(namespace, manifests)
            RUN_DIR.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            env = {**platform.env, "PYTHONPATH": str(tree)} if tree is not None else platform.env
            operator = OperatorProcess(env, (namespace,), RUN_DIR / f"{namespace}-operator.log",
                            default_interval=INTERVAL).start()
            assert operator.process is not None
            sampler = ProcSampler(operator.process.pid).start()

            def first_round_done() -> bool:
                return _total(_metrics(operator), "tikv_operator_checks_total") >= clusters

            wait_for(first_round_done, 600, f"a first check of {clusters} clusters", interval=1)
            first_round = time.monotonic() - started
            statuses = [c.get("status") or {} for c in kube.list_objects(namespace, "tikvclusters")]
            healthy = sum(s.get("health") == "Healthy" for s in statuses)
            log(f"scale {clusters}: first round in {first_round:.1f}s ({healthy} Healthy); warm-up {warmup:g}s")
            time.sleep(warmup)
            fake_url = None if real else prometheus_url
            before_queries = _fake_queries(fake_url)
            before_text, before_load, t0 = _metrics(operator), load(), time.monotonic()
            first_sample = len(sampler.samples)
            lines: list[str] = []
            if py_spy:
                lines = profile(operator.process.pid, min(window, 60), py_spy)
            time.sleep(max(0.0, window - (time.monotonic() - t0)))
            after_text, after_load, t1 = _metrics(operator), load(), time.monotonic()
            window_queries = _fake_queries(fake_url) - before_queries
            healthy_after = sum((c.get("status") or {}).get("health") == "Healthy"
                                for c in kube.list_objects(namespace, "tikvclusters"))
            samples = sampler.stop()[max(0, first_sample - 1):]
            hwm = sampler.peak_rss_kib()
            log(f"scale {clusters}: deleting the TiKVClusters")
            deleting = time.monotonic()
            left = kube.delete_all(namespace, "tikvclusters", timeout=120)
            deletion = (time.monotonic() - deleting, left)
            if left:
                log(f"scale {clusters}: {left} TiKVClusters needed their finalizer removed")
    finally:
        if operator is not None:
            operator.stop(timeout=60)
        kube.delete_all(namespace, "tikvclusters", timeout=5)
        kube.delete_namespace(namespace)
        kube.close()
    lag = bucket_delta(histogram_buckets(after_text, "tikv_operator_check_lag_seconds"),
                       histogram_buckets(before_text, "tikv_operator_check_lag_seconds"))
    duration = bucket_delta(histogram_buckets(after_text, "tikv_operator_check_duration_seconds"),
                            histogram_buckets(before_text, "tikv_operator_check_duration_seconds"))
    cores = cpu_cores(samples)
    rss = [s.rss_kib / 1024 for s in samples]
    checks = _total(after_text, "tikv_operator_checks_total") - _total(before_text, "tikv_operator_checks_total")
    return ScaleResult(
        clusters=clusters, catalogue=catalogue, metrics_side="real Prometheus" if real else "bench fake Prometheus",
        window_s=t1 - t0, first_round_s=first_round, checks=checks,
        queries_per_check=window_queries / checks if not real and checks else math.nan,
        failures=(_total(after_text, "tikv_operator_check_failures_total")
                  - _total(before_text, "tikv_operator_check_failures_total")),
        cpu_avg=(samples[-1].cpu_s - samples[0].cpu_s) / (samples[-1].at - samples[0].at) if len(samples) > 1 else 0,
        cpu_peak=max(cores, default=math.nan), rss_avg_mib=sum(rss) / len(rss) if rss else math.nan,
        rss_peak_mib=max(rss, default=math.nan), hwm_mib=hwm / 1024,
        lag_p50=histogram_quantile(0.5, lag), lag_p99=histogram_quantile(0.99, lag),
        lag_le_1s=fraction_at_most(1.0, lag) if lag else math.nan, lag_max_bucket=_max_bucket(lag),
        duration_p50=histogram_quantile(0.5, duration), duration_p99=histogram_quantile(0.99, duration),
        pd_errors=_errors(after_text, "pd") - _errors(before_text, "pd"),
        prometheus_errors=_errors(after_text, "prometheus") - _errors(before_text, "prometheus"),
        healthy_after=healthy_after, deletion_s=deletion[0], deletion_left=deletion[1],
        load_before=before_load, load_after=after_load, profile=lines,
    )


def render(results: list[ScaleResult], started: datetime, argv: list[str], real_max: int) -> str:
    lines = section_header("4. Scale: one operator, many TiKVClusters", "scale", started, argv)
    lines += [
        f"TiKVClusters of {STORES} simulated stores each (`bench.sim_host`, its own process: every cluster has its "
        f"own PD listener), checked every {INTERVAL} by one `tikv-operator run` process. Up to {real_max} clusters "
        "the platform's real Prometheus answers (store and PD member targets scraped every 15 s via "
        "`__scrape_interval__`); above "
        "that `bench/fake_prometheus.py` (see its docstring for exactly what it supports) answers the "
        "operator's queries: every built-in invariant is on (the defaults), so a check asks 4 (latency, disk "
        "and the `store_health` and `pd_health` unions), with healthy values for every invariant; rows "
        f"\"{ORIGINAL}\" are the same size measured right after with only the five invariants of the first catalogue "
        "(the other 13 disabled in spec.invariants: 2 queries a check), the catalogue's cost in the same "
        "conditions; rows \"commit ...\" (--baseline-commits) run that commit's operator (git archive, PYTHONPATH) "
        "with its own defaults, right after; the queries "
        "it received over the window, divided by the checks, are the \"Prometheus queries/check\" column. "
        "CPU and RSS: /proc of the operator process sampled every 1 s over the window (peak CPU = the "
        "busiest 1 s; VmHWM = the highest RSS of the whole run, start-up included). Lag = start of a check - "
        "its scheduled time, from the operator's `tikv_operator_check_lag_seconds` histogram over the window "
        "(buckets 1 ms, 10 ms, 50 ms, 0.1, 0.25, 0.5, 1, 2, 5 s; quantiles interpolated inside a bucket as "
        "Prometheus' histogram_quantile does). Warm-up: the first round of checks plus one interval.",
        "",
    ]
    rows = [[
        str(r.clusters), r.catalogue, r.metrics_side,
        f"{r.first_round_s:.0f}", f"{r.window_s:.0f}", str(r.checks), fmt(r.queries_per_check),
        f"{r.failures} / {r.pd_errors} / {r.prometheus_errors}", f"{r.healthy_after}/{r.clusters}",
        fmt(r.cpu_avg), fmt(r.cpu_peak), fmt(r.rss_avg_mib), fmt(r.rss_peak_mib), fmt(r.hwm_mib),
        fmt(r.lag_p50), fmt(r.lag_p99),
        "n/a" if math.isnan(r.lag_le_1s) else f"{r.lag_le_1s:.1%}", r.lag_max_bucket, fmt(r.duration_p50),
        fmt(r.duration_p99), f"{load_text(r.load_before)} → {load_text(r.load_after)}",
    ] for r in results]
    lines.append(table(
        ["clusters", "invariants", "metrics side", "first round s", "window s", "checks", "Prometheus queries/check",
         "failed checks / PD errors / Prometheus errors", "Healthy at the end", "CPU avg cores",
         "CPU peak cores (1 s)", "RSS avg MiB", "RSS peak MiB (window)", "VmHWM MiB", "lag p50 s", "lag p99 s",
         "lag <= 1 s", "max lag", "check duration p50 s", "p99 s", "load 1/5/15 before → after"], rows))
    lines += ["", "Deleting every TiKVCluster at the end (`DELETE` of the collection, the operator still running and "
              "releasing its finalizers; after 120 s the benchmark removes what is left by hand):", ""]
    for r in results:
        gone = (f"all gone in {r.deletion_s:.0f} s" if not r.deletion_left else
                f"{r.deletion_left} of {r.clusters} still held by the finalizer after {r.deletion_s:.0f} s")
        lines.append(f"- {r.clusters} ({r.catalogue}): {gone}")
    lines += ["", "The catalogue's cost (CPU avg cores; published for the first catalogue: RESULTS.md of "
              "2026-12-03, commit e1a6c01, 5 invariants, same machine):", ""]
    for r in results:
        if r.catalogue != ALL:
            continue
        before = BEFORE_ISSUE_15.get(r.clusters)
        parts = [f"{ALL} {r.cpu_avg:.3g}"]
        for other in results:
            if other.clusters == r.clusters and other.catalogue != ALL:
                parts.append(f"{other.catalogue} {other.cpu_avg:.3g} in this run ({r.cpu_avg / other.cpu_avg:.2f}x)")
        if before is not None:
            parts.append(f"published {before[0]:.3g} ({r.cpu_avg / before[0]:.2f}x), peak RSS then {before[1]:g} MiB")
        lines.append(f"- {r.clusters} clusters: " + "; ".join(parts) + ".")
    lines += ["", "Targets (1000 clusters on this 2-core machine):", ""]
    for r in results:
        if r.clusters != 1000 or r.catalogue != ALL:
            continue
        lines.append(f"- check lag p99 < 1 s: {'MET' if r.lag_p99 < 1 else 'MISSED'} "
                     f"(p99 {r.lag_p99:.3g} s; {r.lag_le_1s:.1%} of checks started within 1 s"
                     + (f", p99 over by {r.lag_p99 - 1:.2g} s" if r.lag_p99 >= 1 else "") + ").")
        lines.append(f"- average CPU below half a core: {'MET' if r.cpu_avg < 0.5 else 'MISSED'} "
                     f"({r.cpu_avg:.2f} cores" + (f", {r.cpu_avg / 0.5:.1f}x the target" if r.cpu_avg >= 0.5 else "")
                     + ").")
        peak = max(r.rss_peak_mib, r.hwm_mib)
        lines.append(f"- RSS < 300 MiB: {'MET' if peak < 300 else 'MISSED'} (peak {peak:.0f} MiB"
                     + (f", over by {peak - 300:.0f} MiB" if peak >= 300 else "") + ").")
    for r in results:
        if r.profile:
            lines += ["", f"Profile of the operator at {r.clusters} clusters (during the window):", "", *r.profile]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument("--real-prometheus-max", type=int, default=100)
    parser.add_argument("--window", type=float, default=90.0, help="measurement window per size, seconds")
    parser.add_argument("--warmup", type=float, default=30.0, help="after the first round of checks, seconds")
    parser.add_argument("--original-sizes", default="1000",
                        help="sizes (of --sizes) measured again, right after, with only the 5 invariants of the "
                        "first catalogue ('' for none)")
    parser.add_argument("--baseline-commits", default="",
                        help="at --original-sizes, also run the operator of these commits (comma separated, e.g. "
                        "one of the first catalogue), each with its defaults, in the same conditions ('' for none)")
    parser.add_argument("--py-spy", default=PY_SPY_DEFAULT,
                        help="py-spy binary for a profile at the largest size ('' for none)")
    args = parser.parse_args(argv)
    py_spy = args.py_spy if args.py_spy and (Path(args.py_spy).exists() or shutil.which(args.py_spy)) else None
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with benchmark("scale", argv) as session:
        platform = session.platform
        original = {int(s) for s in args.original_sizes.split(",") if s}
        for clusters in sizes:
            log(f"scale: {clusters} clusters")
            results.append(measure(platform, clusters, args.real_prometheus_max, args.warmup, args.window,
                                   py_spy if clusters == max(sizes) else None))
            if clusters in original:
                log(f"scale: {clusters} clusters, the 5 original invariants only")
                results.append(measure(platform, clusters, args.real_prometheus_max, args.warmup, args.window,
                                       None, ORIGINAL))
                for commit in (c for c in args.baseline_commits.split(",") if c):
                    log(f"scale: {clusters} clusters, the operator of commit {commit}")
                    results.append(measure(platform, clusters, args.real_prometheus_max, args.warmup, args.window,
                                           None, f"commit {commit}", operator_tree(commit)))
    return publish("scale", render(results, session.started, session.argv, args.real_prometheus_max))


if __name__ == "__main__":
    main(sys.argv[1:])
