"""Leader failover: two `tikv-operator run --leader-elect` processes watch N healthy TiKVClusters (one
namespace, `spec.interval` 2 s, the Lease in the same namespace, client-go's default timing 15 s / 10 s / 2 s).
The holder is stopped, by SIGKILL (a node lost: the standby waits the Lease out) or by SIGTERM (a rolling
update: the holder hands the Lease back), `--handovers` times each; after each handover the stopped process
is started again as the new standby, and the next round waits until it has joined the election.

What is measured, from the signal (the benchmark's monotonic clock, everything polled every 100 ms):
- takeover: the Lease (GET from the API server) names the standby;
- first check: the new leader's `tikv_operator_checks_total{namespace,cluster}` went up, for the first
  cluster and for every cluster;
- the outage per cluster: the time between the old leader's last check of a cluster and the new leader's
  first check of it, both read from the two processes' own `tikv_operator_checks_total` (incremented when a
  check starts), scraped every 100 ms from before the signal until the new leader has checked every cluster;
  "checks missed" = outage / interval - 1 (0 in a steady state; negative when the new leader's first check
  came sooner than the old leader's next one would have).
status.lastCheckTime is not used: it has second precision and, in a steady state, is only written once per
`tickets.refreshInterval` (1m by default), not at every check.

The signal falls at a random moment (seeded) of the check cycle and of the Lease's renewal cycle."""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from harness.operator_process import OperatorProcess

from bench.common import (
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
from bench.runner import benchmark, publish
from bench.stats import fmt, parse_samples, summarize
from tikv_operator.checks.cluster_loop import STANDBY_POLL_S
from tikv_operator.election.core.leases import MAX_JITTER, LeaseTiming

POLL_S = 0.1
LEASE = "tikv-operator"
STORES = 3
TIMING = LeaseTiming()  # client-go's defaults, which `tikv-operator run` keeps: the processes get no timing flags
KINDS = ("sigkill", "sigterm")


# --------------------------------------------------------------------------------------------------
# Pure helpers (tests/unit/bench/test_failover.py)


@dataclass
class CheckTimes:
    """When each cluster's checks counter was seen to go up, from successive scrapes of one process.

    The first scrape is the baseline. A series that appears later, or comes back (a replica that stops
    leading forgets its per-cluster series; the next term starts again from 1), counts as a check; a series
    that disappears does not."""

    counts: dict[str, float] = field(default_factory=dict)
    changes: dict[str, list[float]] = field(default_factory=dict)
    primed: bool = False

    def update(self, samples: Mapping[str, float], at: float) -> None:
        for cluster, value in samples.items():
            previous = self.counts.get(cluster)
            if (previous is None and self.primed and value > 0) or (previous is not None and value != previous):
                self.changes.setdefault(cluster, []).append(at)
            self.counts[cluster] = value
        for cluster in set(self.counts) - set(samples):
            del self.counts[cluster]
        self.primed = True

    def last(self, cluster: str) -> float | None:
        times = self.changes.get(cluster)
        return times[-1] if times else None

    def first_after(self, cluster: str, moment: float) -> float | None:
        return next((t for t in self.changes.get(cluster, ()) if t > moment), None)

    def before(self, moment: float) -> int:
        """How many checks were seen at or before `moment`."""
        return sum(1 for times in self.changes.values() for t in times if t <= moment)

    def steady_gaps(self) -> list[float]:
        """Seconds between consecutive checks of the same cluster."""
        return [b - a for times in self.changes.values() for a, b in itertools.pairwise(times)]


def outages(old: CheckTimes, new: CheckTimes, signalled: float, clusters: Iterable[str]) -> dict[str, float]:
    """Per cluster: the old leader's last check -> the new leader's first check after the signal. Clusters
    missing either are left out."""
    out = {}
    for cluster in clusters:
        last, first = old.last(cluster), new.first_after(cluster, signalled)
        if last is not None and first is not None:
            out[cluster] = first - last
    return out


def missed_checks(outage_s: float, interval_s: float) -> float:
    """Checks missed in an outage: how many intervals it spans beyond the one that is always there."""
    return outage_s / interval_s - 1


def checks_by_cluster(metrics_text: str, namespace: str) -> dict[str, float]:
    return {labels["cluster"]: value for labels, value in parse_samples(metrics_text, "tikv_operator_checks_total")
            if labels.get("namespace") == namespace}


def gauge(metrics_text: str, name: str) -> float:
    return sum(value for _, value in parse_samples(metrics_text, name))


# --------------------------------------------------------------------------------------------------
# The measurement


@dataclass
class Handover:
    kind: str
    index: int
    lease_s: float | None = None  # the Lease names the standby
    leader_s: float | None = None  # the standby's own tikv_operator_leader is 1
    first_check_s: float | None = None  # the new leader's first check of any cluster
    all_checked_s: float | None = None  # ... of every cluster
    exited_s: float | None = None  # the old process is gone
    exit_code: int | None = None
    released: bool | None = None  # SIGTERM: the old holder logged "released lease"
    outages: dict[str, float] = field(default_factory=dict)
    steady: list[float] = field(default_factory=list)  # gaps between the old leader's checks before the signal
    problems: list[str] = field(default_factory=list)


@dataclass
class Phase:
    kind: str
    handovers: list[Handover] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)


class Replicas:
    """The two operator processes, which of them leads, and starting a replacement."""

    def __init__(self, platform: Platform, namespace: str) -> None:
        self.platform, self.namespace = platform, namespace
        self.started: list[OperatorProcess] = []
        self.identities: dict[int, str] = {}
        self.leader: OperatorProcess | None = None
        self.standby: OperatorProcess | None = None

    def launch(self, interval: str) -> OperatorProcess:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        process = OperatorProcess(
            self.platform.env, (self.namespace,), RUN_DIR / f"{self.namespace}-operator-{len(self.started) + 1}.log",
            default_interval=interval, extra_args=("--leader-elect", "--leader-election-namespace", self.namespace))
        self.started.append(process)
        process.start()
        self.identities[id(process)] = process.identity()  # its log line: it has joined the election
        return process

    def identity(self, process: OperatorProcess) -> str:
        return self.identities[id(process)]

    def stop_all(self) -> None:
        for process in self.started:
            if process.process is not None and process.process.poll() is None:
                try:
                    process.stop(timeout=20)
                except AssertionError as error:  # it ignored SIGTERM and was killed
                    log(f"failover: {str(error)[:300]}")


class Observer:
    """One client for the Lease and the two processes' /metrics, polled in turn."""

    def __init__(self, kube: KubeApi, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.http = httpx.Client(timeout=2)

    def close(self) -> None:
        self.http.close()

    def holder(self) -> str | None:
        response = self.kube.client.get(f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{LEASE}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return str(response.json()["spec"].get("holderIdentity") or "")

    def metrics(self, process: OperatorProcess) -> str | None:
        if process.process is None or process.process.poll() is not None:
            return None
        try:
            return self.http.get(f"http://127.0.0.1:{process.metrics_port}/metrics").text
        except httpx.HTTPError:
            return None

    def scrape(self, process: OperatorProcess, times: CheckTimes) -> str | None:
        text = self.metrics(process)
        if text is not None:
            times.update(checks_by_cluster(text, self.namespace), time.monotonic())
        return text


def wait_for_roles(replicas: Replicas, observer: Observer, clusters: list[str], timeout: float = 60) -> None:
    """Exactly one process leads (its own metric and the Lease agree) and has checked every cluster."""
    a, b = replicas.started[-2:]

    def settled() -> bool:
        texts = [observer.metrics(p) for p in (a, b)]
        if None in texts:
            return False
        leading = [gauge(t or "", "tikv_operator_leader") for t in texts]
        if sorted(leading) != [0.0, 1.0]:
            return False
        leader, standby = (a, b) if leading[0] == 1.0 else (b, a)
        checked = checks_by_cluster(texts[0 if leader is a else 1] or "", observer.namespace)
        if observer.holder() != replicas.identity(leader) or set(checked) < set(clusters):
            return False
        replicas.leader, replicas.standby = leader, standby
        return True

    wait_for(settled, timeout, "exactly one leader that has checked every cluster", interval=0.5)


def handover(kind: str, index: int, replicas: Replicas, observer: Observer, clusters: list[str], interval_s: float,
             rng: random.Random, timeout: float) -> Handover:
    old, new = replicas.leader, replicas.standby
    assert old is not None
    assert new is not None
    assert old.process is not None
    result = Handover(kind, index)
    old_times, new_times = CheckTimes(), CheckTimes()
    new_id = replicas.identity(new)
    # Before the signal: long enough to see each cluster's last check by the old leader, plus a random part so
    # that the signal falls anywhere in the check cycle and in the renewal cycle.
    lead_in = interval_s + 3 * POLL_S + rng.uniform(0, max(interval_s, TIMING.retry_period_s * (1 + MAX_JITTER)))
    deadline = time.monotonic() + lead_in
    while time.monotonic() < deadline or (
            any(old_times.last(c) is None for c in clusters) and time.monotonic() < deadline + 3 * interval_s):
        observer.scrape(old, old_times)
        observer.scrape(new, new_times)
        time.sleep(POLL_S)
    result.steady = old_times.steady_gaps()
    early = new_times.before(time.monotonic())
    if early:
        result.problems.append(f"the standby ran {early} checks before the signal")

    signalled = time.monotonic()
    os.kill(old.process.pid, signal.SIGKILL if kind == "sigkill" else signal.SIGTERM)
    give_up = signalled + timeout
    while time.monotonic() < give_up:
        tick = time.monotonic()
        if result.exited_s is None and old.process.poll() is not None:
            result.exited_s, result.exit_code = time.monotonic() - signalled, old.process.returncode
        observer.scrape(old, old_times)
        text = observer.scrape(new, new_times)
        if result.leader_s is None and text is not None and gauge(text, "tikv_operator_leader") == 1.0:
            result.leader_s = time.monotonic() - signalled
        if result.lease_s is None:
            try:
                if observer.holder() == new_id:
                    result.lease_s = time.monotonic() - signalled
            except httpx.HTTPError as error:
                log(f"failover: reading the Lease: {error}")
        firsts = [new_times.first_after(c, signalled) for c in clusters]
        seen = [t for t in firsts if t is not None]
        if seen and result.first_check_s is None:
            result.first_check_s = min(seen) - signalled
        if len(seen) == len(clusters) and result.all_checked_s is None:
            result.all_checked_s = max(seen) - signalled
        if (result.lease_s is not None and result.leader_s is not None and result.all_checked_s is not None
                and result.exited_s is not None):
            break
        time.sleep(max(0.0, POLL_S - (time.monotonic() - tick)))
    else:
        result.problems.append(f"not done within {timeout:g}s: lease {result.lease_s}, leader {result.leader_s}, "
                               f"every cluster checked {result.all_checked_s}, exited {result.exited_s}")
    if old.process.poll() is None:
        old.stop(timeout=20)  # the SIGTERM case, if it has not exited yet (a second SIGTERM is harmless)
        result.exit_code = old.process.returncode
    if kind == "sigterm":
        result.released = f"released lease {replicas.namespace}/{LEASE}" in old.log()
        if not result.released:
            result.problems.append("the old holder did not log 'released lease'")
        if result.exit_code != 0:
            result.problems.append(f"the old holder exited {result.exit_code}")
    result.outages = outages(old_times, new_times, signalled, clusters)
    if result.first_check_s is not None:
        # Two replicas acting at once would show as a check by the old leader after the new one's first.
        overlap = sum(1 for c in clusters for t in old_times.changes.get(c, ())
                      if t >= signalled + result.first_check_s)
        if overlap:
            result.problems.append(f"the old leader started {overlap} checks after the new leader's first")
    if len(result.outages) < len(clusters):
        result.problems.append(f"outage measured for {len(result.outages)} of {len(clusters)} clusters")
    log(f"failover {kind} #{index + 1}: Lease {fmt(result.lease_s or math.nan)}s, every cluster checked "
        f"{fmt(result.all_checked_s or math.nan)}s, outage max "
        f"{fmt(max(result.outages.values(), default=math.nan))}s, exited {fmt(result.exited_s or math.nan)}s"
        + (f"; {'; '.join(result.problems)}" if result.problems else ""))
    # The stopped process comes back as the new standby, and has joined the election, before the next round.
    replacement = replicas.launch(f"{interval_s:g}s")
    replicas.leader, replicas.standby = new, replacement
    wait_for(lambda: (text := observer.metrics(replacement)) is not None
             and gauge(text, "tikv_operator_leader") == 0.0, 30, "the replacement to stand by")
    return result


def run(platform: Platform, clusters: int, interval_s: float, handovers: int, kinds: list[str], seed: int,
        timeout: float) -> list[Phase]:
    kube = platform.kube()
    namespace = run_id("bench-failover")
    kube.create_namespace(namespace)
    file_sd = platform.file_sd_dir / f"{namespace}.json"
    replicas = Replicas(platform, namespace)
    observer = Observer(kube, namespace)
    phases: list[Phase] = []
    try:
        with sim_host(stores=STORES, clusters=clusters, name="fo", labels={"bench_run": namespace},
                      file_sd=file_sd) as host:
            wait_for_scrapes(platform.prometheus_url, host.instances(), ("bench_run", namespace), timeout=120)
            names = [c["name"] for c in host.clusters]
            kube.create_clusters(namespace, [
                cluster_manifest(c["name"], c["pd_url"], platform.prometheus_url, host.matchers(c["name"]),
                                 interval=f"{interval_s:g}s") for c in host.clusters])
            replicas.launch(f"{interval_s:g}s")
            replicas.launch(f"{interval_s:g}s")

            def all_healthy() -> bool:
                items = kube.list_objects(namespace, "tikvclusters")
                return sum((i.get("status") or {}).get("health") == "Healthy" for i in items) == clusters

            wait_for(all_healthy, 120, f"{clusters} Healthy TiKVClusters", interval=1)
            wait_for_roles(replicas, observer, names)
            log(f"failover: {clusters} clusters Healthy, {replicas.identity(replicas.leader)} leads")  # type: ignore[arg-type]
            rng = random.Random(seed)  # noqa: S311  (the phase of a benchmark's signal, not a secret)
            for kind in kinds:
                phase = Phase(kind, load_before=load())
                phases.append(phase)
                log(f"failover: {handovers} handovers by {kind.upper()}")
                for index in range(handovers):
                    phase.handovers.append(handover(kind, index, replicas, observer, names, interval_s, rng, timeout))
                phase.load_after = load()
            kube.delete_all(namespace, "tikvclusters", timeout=30)
    finally:
        replicas.stop_all()
        observer.close()
        kube.delete_all(namespace, "tikvclusters", timeout=5)
        kube.delete_namespace(namespace)
        kube.close()
    return phases


# --------------------------------------------------------------------------------------------------
# The section


def _row(label: str, figure: str, values: list[float], load: str) -> list[str]:
    s = summarize(values)
    return [label, figure, str(s.n), fmt(s.p50), fmt(s.p99), fmt(s.maximum), fmt(s.minimum), load]


def _values(handovers: list[Handover], attribute: str) -> list[float]:
    return [v for h in handovers if (v := getattr(h, attribute)) is not None]


def render(phases: list[Phase], clusters: int, interval_s: float, started: datetime, argv: list[str]) -> str:
    retry_max = TIMING.retry_period_s * (1 + MAX_JITTER)
    kill_bound = TIMING.lease_duration_s + retry_max
    lines = section_header("7. Leader failover", "failover", started, argv)
    lines += [
        f"Two `tikv-operator run --leader-elect` processes, {clusters} healthy TiKVClusters of {STORES} simulated "
        f"stores (real Prometheus) in one namespace, `spec.interval: {interval_s:g}s`; Lease timing left at "
        f"client-go's defaults: lease duration {TIMING.lease_duration_s:g} s, renew deadline "
        f"{TIMING.renew_deadline_s:g} s, retry period {TIMING.retry_period_s:g} s (a standby asks every "
        f"{TIMING.retry_period_s:g}-{retry_max:g} s, jittered, and no later than the Lease's expiry as it saw it); a "
        f"standby's cluster daemons look every {STANDBY_POLL_S:g} s whether their process leads now. The holder is "
        "stopped by SIGKILL or SIGTERM at a random moment; the stopped process is then started again as the new "
        f"standby, and the next round waits until it has joined. Times from the signal, polled every "
        f"{POLL_S * 1000:.0f} ms (resolution: the poll plus one request): \"Lease\" when a GET of the Lease names "
        "the standby; \"first check\" / \"every cluster checked\" when the new leader's "
        "`tikv_operator_checks_total{namespace,cluster}` (counted when a check starts) went up for the first / "
        "the last of the clusters. Seconds.",
        "",
    ]
    rows = []
    for phase in phases:
        hs = phase.handovers
        load_span = f"{load_text(phase.load_before)} → {load_text(phase.load_after)}"
        rows.append(_row(phase.kind.upper(), "Lease names the standby", _values(hs, "lease_s"), load_span))
        rows.append(_row("", "standby's tikv_operator_leader = 1", _values(hs, "leader_s"), ""))
        rows.append(_row("", "first check (any cluster)", _values(hs, "first_check_s"), ""))
        rows.append(_row("", "every cluster checked", _values(hs, "all_checked_s"), ""))
        if phase.kind == "sigterm":  # after SIGKILL it is gone at once (the figure would be this poll's)
            rows.append(_row("", "old process exited", _values(hs, "exited_s"), ""))
    lines.append(table(["signal", "figure", "n", "p50 s", "p99 s", "max s", "min s", "load 1/5/15 before → after"],
                       rows))
    lines += [
        "",
        "Checks missed per cluster during a handover: for each cluster and handover, the outage = the new "
        "leader's first check of the cluster - the old leader's last one (both from the two processes' "
        f"`tikv_operator_checks_total`, scraped every {POLL_S * 1000:.0f} ms from at least one interval before the "
        f"signal), and checks missed = outage / interval - 1 (interval {interval_s:g} s). n counts cluster x "
        "handover. \"steady state\": the same figure between two consecutive checks of the old leader before the "
        "signal (what a handover is compared with; 0 up to the polling). The outage includes the time from the "
        "old leader's last check to the signal (0 to one interval, uniformly): it is the gap a cluster sees.",
        "",
    ]
    rows = []
    steady = [g for phase in phases for h in phase.handovers for g in h.steady]
    for phase in phases:
        outs = [o for h in phase.handovers for o in h.outages.values()]
        s, m = summarize(outs), summarize([missed_checks(o, interval_s) for o in outs])
        rows.append([phase.kind.upper(), str(s.n), fmt(s.p50), fmt(s.p99), fmt(s.maximum), fmt(s.minimum),
                     fmt(m.p50, 2), fmt(m.maximum, 2)])
    s, m = summarize(steady), summarize([missed_checks(g, interval_s) for g in steady])
    rows.append(["steady state", str(s.n), fmt(s.p50), fmt(s.p99), fmt(s.maximum), fmt(s.minimum), fmt(m.p50, 2),
                 fmt(m.maximum, 2)])
    lines.append(table(["signal", "n", "outage p50 s", "outage p99 s", "outage max s", "outage min s",
                        "checks missed p50", "checks missed max"], rows))
    lines += ["", "Bounds by design (every cluster checked, i.e. the last cluster's first check):", ""]
    for phase in phases:
        worst = max(_values(phase.handovers, "all_checked_s"), default=math.nan)
        bound = (kill_bound if phase.kind == "sigkill" else retry_max) + STANDBY_POLL_S + 2 * POLL_S
        how = ("lease duration + retry period x 1.1" if phase.kind == "sigkill" else "retry period x 1.1 (released)")
        verdict = ("n/a" if math.isnan(worst) else "within it" if worst <= bound
                   else f"EXCEEDED by {worst - bound:.2f} s")
        lines.append(f"- {phase.kind.upper()}: {how} + the standby's {STANDBY_POLL_S:g} s poll + 2 polls of this "
                     f"benchmark = {bound:.2f} s; max {fmt(worst)} s: {verdict}.")
        for h in phase.handovers:
            for problem in h.problems:
                lines.append(f"- {phase.kind.upper()} #{h.index + 1}: {problem}")
    lines += ["", "p99 of 20 samples is interpolated between the two largest (numpy's linear method): read it as "
              "\"about the worst of 20\"."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0, help="spec.interval of every cluster, seconds")
    parser.add_argument("--handovers", type=int, default=20, help="handovers per kind of signal")
    parser.add_argument("--kinds", default=",".join(KINDS), help="sigkill, sigterm or both, in this order")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=TIMING.lease_duration_s + 25,
                        help="give up on one handover after this long")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    if set(kinds) - set(KINDS):
        parser.error(f"--kinds: use {', '.join(KINDS)}")
    with benchmark("failover", argv) as session:
        phases = run(session.platform, args.clusters, args.interval, args.handovers, kinds, args.seed, args.timeout)
    return publish("failover", render(phases, args.clusters, args.interval, session.started, session.argv))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

