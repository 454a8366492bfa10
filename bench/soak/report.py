"""The soak's section of bench/RESULTS.md (bench/results/soak.md): what was injected, what was checked, what
was violated, how fast faults became tickets, and the operators' memory."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bench.common import load_text, section_header, table
from bench.soak.ground_truth import Record, StatusSample
from bench.soak.oracle import GUARANTEES, Settings, openings
from bench.soak.schedule import ROUTINE
from bench.soak.tenants import WELL_BEHAVED
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
    by_replica: dict[int, list[tuple[float, int, bool, int]]] = {}
    for sample in outcome.record.rss:
        by_replica.setdefault(sample.process, []).append((sample.at, sample.rss_kib, sample.leader,
                                                          sample.peak_kib))
    rows = []
    for replica, samples in sorted(by_replica.items()):
        samples.sort()
        started, stopped = outcome.record.replicas.get(replica, [samples[0][0], samples[-1][0]])
        life = (stopped or samples[-1][0]) - started
        led = sum(1 for _, _, leader, _ in samples if leader) * 5
        first, last = samples[0][1] / 1024, statistics.median(s[1] for s in samples[-5:]) / 1024
        peak = max(max(s[1], s[3]) for s in samples) / 1024
        rows.append([str(replica), f"{life:.0f}", f"~{led}", f"{first:.1f}", f"{max(s[1] for s in samples) / 1024:.1f}",
                     f"{peak:.1f}", f"{last:.1f}"])
    return rows


def _exits(record: Record) -> str:
    causes = Counter(e.cause for e in record.exits)
    return ", ".join(f"{n} {c}" for c, n in sorted(causes.items())) or "none recorded"


def kind_of(record: Record, cluster: str) -> str:
    return record.hostile.get(cluster, WELL_BEHAVED)


def _tenant_rows(outcome: Outcome) -> list[list[str]]:
    """Per kind of tenant: its status as the harness saw it every 5 s, its checks, tickets and alerts."""
    record = outcome.record
    kinds = [WELL_BEHAVED, *sorted(set(record.hostile.values()))]
    samples: dict[str, list[StatusSample]] = {k: [] for k in kinds}
    for sample in record.statuses:
        samples.setdefault(kind_of(record, sample.cluster), []).append(sample)
    tickets: Counter[str] = Counter()
    opened: Counter[str] = Counter()
    seen: set[str] = set()
    for v in outcome.versions:
        kind = kind_of(record, v["cluster"])
        if v["name"] not in seen:
            seen.add(v["name"])
            tickets[kind] += 1
    for history in _histories(outcome.versions).values():
        opened[kind_of(record, history[-1]["cluster"])] += len(openings(history))
    final = record.alertmanager
    names = {v["name"]: kind_of(record, v["cluster"]) for v in outcome.versions}
    rows = []
    for kind in kinds:
        mine = samples.get(kind, [])
        tenants = len(record.clusters) if kind == WELL_BEHAVED else sum(k == kind for k in record.hostile.values())
        health = Counter(x.health or "-" for x in mine)
        checks = len({(x.cluster, x.last_check) for x in mine if x.last_check})
        undelivered = sum(x.conditions.get("AlertsDelivered") == "False" for x in mine)
        reasons = Counter(f"{t}: {m}" for x in mine for t, m in x.reasons.items() if m)
        reason = reasons.most_common(1)[0][0][:110].replace("|", "/") if reasons else ""
        alerts = sum(names.get(n) == kind for n in final.get("alerts", []))
        opens = sum(names.get(n) == kind for n in final.get("open", []))
        share = " / ".join(f"{health.get(h, 0) * 100 / max(1, len(mine)):.0f}" for h in ("Healthy", "Degraded",
                                                                                          "Unknown"))
        rows.append([kind, str(tenants), str(len(mine)), share, str(checks), str(tickets[kind]), str(opened[kind]),
                     f"{opens} / {alerts}", str(undelivered), reason])
    return rows


def _histories(versions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for v in versions:
        out.setdefault(v["name"], []).append(v)
    return out


def render(outcome: Outcome, started: datetime, argv: list[str]) -> str:
    record, verdict = outcome.record, outcome.verdict
    s = Settings.from_json(record.settings)
    duration = record.ended - record.started
    crashes = [f for f in record.faults if f.params.get("cause") == "crashed"]
    faults = Counter(f.kind for f in record.faults if not f.error and f not in crashes)
    failed = Counter(f.kind for f in record.faults if f.error)
    actions = Counter(a.action for a in record.actions if a.ok)
    conventions = Counter(record.clusters.values())
    tickets = _histories(outcome.versions)
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
        "**Operator memory** (RSS, sampled every 5 s; \"led\" ~ seconds it held the Lease; \"peak\" is the "
        f"process' VmHWM, the most it ever held, against the chart's limit of {s.memory_limit_mib:g} MiB):",
        "",
        table(["replica", "lived s", "led s", "RSS first MiB", "max sampled MiB", "peak (VmHWM) MiB", "last MiB"],
              _rss_rows(outcome)),
        "",
        f"Operator exits: {_exits(record)}. Tracebacks in the replicas' logs: "
        f"{sum(outcome.tracebacks.values())} ({', '.join(f'{k} {v}' for k, v in sorted(outcome.tracebacks.items()))}"
        ").",
        "",
    ]
    if record.hostile:
        lines += [
            "**Per kind of tenant** (bench/soak/tenants.py: the hostile tenants share the operator, the Prometheus "
            "and the Alertmanager with the well-behaved clusters; only the well-behaved are judged by G1-G7). "
            "Status looked at every 5 s; health % Healthy / Degraded / Unknown; checks = distinct lastCheckTime "
            "seen (the status is written at least once per refresh interval); open / alerts at the end; "
            "AlertsDelivered False = looks that found it so; the most frequent reason of a condition not True:",
            "",
            table(["tenant kind", "tenants", "looks", "health %", "checks", "tickets", "openings", "open / alerts",
                   "AlertsDelivered False", "most frequent reason"], _tenant_rows(outcome)),
            "",
        ]
    if verdict.notes or record.notes:
        lines += ["Notes: " + "; ".join([*verdict.notes, *record.notes])[:1500], ""]
    lines.append(f"The run's record (ground truth and every ticket version) was `{outcome.record_file}`; "
                 "`python -m bench.soak --check FILE` judges a record again.")
    return "\n".join(lines)
