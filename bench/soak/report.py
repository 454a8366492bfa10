"""The soak's section of bench/RESULTS.md (bench/results/soak.md): what was injected, what was checked, what
was violated, how fast faults became tickets, and the operators' memory."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from bench.common import load_text, section_header, table
from bench.soak.oracle import GUARANTEES, Settings, openings
from bench.soak.schedule import ROUTINE
from bench.stats import fmt, summarize

if TYPE_CHECKING:
    from bench.soak.run import Outcome


def _latency_rows(detection: dict[str, list[float]]) -> list[list[str]]:
    rows = []
    everything = [v for values in detection.values() for v in values]
    for kind, values in [*sorted(detection.items()), ("all", everything)]:
        s = summarize(values)
        rows.append([kind, str(s.n), fmt(s.p50), fmt(s.p99), fmt(s.maximum)])
    return rows


def _rss_rows(outcome: Outcome) -> list[list[str]]:
    by_replica: dict[int, list[tuple[float, int, bool]]] = {}
    for sample in outcome.record.rss:
        by_replica.setdefault(sample.process, []).append((sample.at, sample.rss_kib, sample.leader))
    rows = []
    for replica, samples in sorted(by_replica.items()):
        samples.sort()
        started, stopped = outcome.record.replicas.get(replica, [samples[0][0], samples[-1][0]])
        life = (stopped or samples[-1][0]) - started
        led = sum(1 for *_, leader in samples if leader) * 5
        first, last = samples[0][1] / 1024, statistics.median(s[1] for s in samples[-5:]) / 1024
        rows.append([str(replica), f"{life:.0f}", f"~{led}", f"{first:.1f}", f"{max(s[1] for s in samples) / 1024:.1f}",
                     f"{last:.1f}"])
    return rows


def render(outcome: Outcome, started: datetime, argv: list[str]) -> str:
    record, verdict = outcome.record, outcome.verdict
    s = Settings.from_json(record.settings)
    duration = record.ended - record.started
    crashes = [f for f in record.faults if f.params.get("cause") == "crashed"]
    faults = Counter(f.kind for f in record.faults if not f.error and f not in crashes)
    failed = Counter(f.kind for f in record.faults if f.error)
    actions = Counter(a.action for a in record.actions if a.ok)
    conventions = Counter(record.clusters.values())
    tickets = {}
    for v in outcome.versions:
        tickets.setdefault(v["name"], []).append(v)
    opened = sum(len(openings(h)) for h in tickets.values())
    reopened = sum(max(0, len(openings(h)) - 1) for h in tickets.values())
    mix = ", ".join(f"{n} {c}" for c, n in sorted(conventions.items()))
    # The soak's platform is .platform-soak (make soak), not the benchmarks' default.
    lines = [line.replace("default `.platform-bench`", "default `.platform-soak`")
             for line in section_header("8. Fault soak", "soak", started, argv)]
    lines += [
        f"{len(record.clusters)} TiKVClusters of tikv_sim ({mix}"
        f"; {sum(record.stores.values())} stores) on the real platform (kube-apiserver, Prometheus, Alertmanager), "
        f"two `tikv-operator run --leader-elect` replicas, seed {record.seed}, "
        f"{duration / 60:.1f} min of faults played at random (bench/soak/schedule.py) and judged from the outside "
        "by bench/soak/oracle.py (its docstring states each rule and tolerance). Time is compressed about tenfold: "
        f"checks every {s.interval_s:g} s, grace periods {s.grace_s['store_down']:g} s, PD Disconnected after "
        f"{s.disconnect_after_s:g} s and Down after 12 s, p99 over {s.rate_window_s:g} s. "
        f"Load (1/5/15 min) {load_text(outcome.load_before)} before, {load_text(outcome.load_after)} after.",
        "",
        "**Guarantees** (the goal is 0 violations of each):",
        "",
        table(["guarantee", "checks", "violations"],
              [[g, str(verdict.checks.get(g, 0)), str(verdict.count(g))] for g in GUARANTEES]),
        "",
    ]
    if verdict.violations:
        lines += ["Violations found (first 30):", ""]
        lines += [f"- {v.guarantee}: {v.detail}" for v in verdict.violations[:30]]
        lines.append("")
    rows = [[kind, str(n), "routine" if kind in ROUTINE else ""] for kind, n in sorted(faults.items())]
    lines += ["**Injected** (what the simulator or the platform was told; failed injections are not judged):", "",
              table(["kind", "count", ""], rows), ""]
    if failed:
        lines += [f"Failed injections: {dict(failed)}", ""]
    restarts = faults.get("operator-sigkill", 0) + faults.get("operator-sigterm", 0)
    lines += [
        f"Operator: {restarts} leader disruptions ({faults.get('operator-sigkill', 0)} SIGKILL, "
        f"{faults.get('operator-sigterm', 0)} SIGTERM), each replaced by a new replica "
        f"({len(record.replicas)} replicas started in all); kube-apiserver paused {faults.get('apiserver-pause', 0)} "
        f"times, Prometheus paused {faults.get('prometheus-down', 0)} times. Operator out (no leader, or API server "
        f"paused + {5:g} s): {sum(o.end - o.start for o in record.outages):.0f} s in all.",
        "",
        *([f"Platform crashes (not injected; restarted by the harness and judged as that component down): "
           f"{len(crashes)}, {sum((f.off or record.ended) - f.on for f in crashes):.1f} s down in all. "
           + " ".join(n for n in record.notes if " died (" in n), ""] if crashes else []),
        f"People (kubectl patch): {', '.join(f'{n} {a}' for a, n in sorted(actions.items()))}; "
        f"failed {sum(not a.ok for a in record.actions)}; skipped {dict(sorted(outcome.skipped.items()))}.",
        f"Tickets: {len(tickets)} tickets, {opened} openings ({reopened} reopenings within the flapping window), "
        f"{len(outcome.versions)} versions watched, {outcome.watch_gaps} watch gaps (relists).",
        f"Alertmanager at the end: {len(record.alertmanager.get('open', []))} open tickets, "
        f"{len(record.alertmanager.get('alerts', []))} alerts (compared after "
        f"{record.alertmanager.get('waited_s')} s).",
        f"Plan adherence: steps ran p50 {fmt(summarize(outcome.lateness).p50, 2)} s, max "
        f"{fmt(summarize(outcome.lateness).maximum, 2)} s late.",
        "",
        "**Detection latency** (fault injected -> a ticket of its identity not Resolved, seen by the watch; "
        "faults whose identity already had one are left out), seconds:",
        "",
        table(["fault", "n", "p50", "p99", "max"], _latency_rows(verdict.detection_s)),
        "",
        "**Operator memory** (RSS, sampled every 5 s; \"led\" ~ seconds it held the Lease):",
        "",
        table(["replica", "lived s", "led s", "RSS first MiB", "max MiB", "last MiB"], _rss_rows(outcome)),
        "",
    ]
    if verdict.notes or record.notes:
        lines += ["Notes: " + "; ".join([*verdict.notes, *record.notes])[:1500], ""]
    lines.append(f"The run's record (ground truth and every ticket version) was `{outcome.record_file}`; "
                 "`python -m bench.soak --check FILE` judges a record again.")
    return "\n".join(lines)
