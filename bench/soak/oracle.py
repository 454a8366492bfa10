"""The soak's oracle: pure checks of every ticket guarantee over the ground truth (bench.soak.ground_truth)
and every version of every ticket (bench.soak.ticket_watch), judged from the outside.

Times are wall-clock seconds. "The data shows a fault" lags the simulator being told: `Rule.lag_on` after
it started, `Rule.lag_off` after it ended (PD's heartbeats and Disconnected clock, Prometheus' scrape, the
p99's rate window). A check reads its data at its start and writes up to `check_budget_s` later (PD's and
Prometheus' timeouts). Tolerances, each stated where it is used:

G1 one_open_per_identity: after every ticket version (in the API server's order), at most one ticket of a
   (cluster, invariant, store) is not Resolved. No tolerance.
G2 no_auto_resolve_while_present: a ticket's turn to Resolved with `resolution: auto` is a violation when a
   fault of its identity was shown by the data through the whole time the deciding check could have read
   it. The operator stamps resolvedAt with the time its check started (second precision, truncated) and
   reads PD and Prometheus after that (a hanging PD or a paused Prometheus answers seconds later), so the
   reads fall in [resolvedAt, when the watch saw the resolve]: a violation is on + lag_on <= resolvedAt
   and the fault still surely on (its clear not yet asked for) when the watch saw the resolve.
   Readability is NOT required: unknown data must not resolve either. Exempt: a resolve that says the store
   is Tombstone, after that store's scale-in (rule 12).
G3 every_fault_detected: a fault must have had a ticket of its identity not Resolved at some moment of
   [on, off + lag_off + 2 intervals + check_budget + 5 s] when some stretch [a, b) of [on + lag_on, off)
   in which its data was readable all along lasted at least grace + 2 intervals + check_budget, plus,
   when the operator was out (a signal until the Lease handover, the API server paused) inside [a, b):
   that outage + the grace again + the refresh interval (a restart may lose a pending first-seen time not
   yet written).
G4 people_reflected: a person's successful patch (hold, unhold, ack, resolve; its resourceVersion from
   kubectl's answer) is never undone by the operator until the next person action on that ticket (or,
   for ack, until the operator legitimately resolves it): hold keeps held true and the ticket unresolved;
   unhold keeps held false; ack never goes back to Open; resolve stays Resolved and is recorded
   `resolution: manual`. And it is reflected (labels in step; manual resolution recorded) within
   `reflect_s` plus any operator outage. An edit that landed on a ticket the operator had resolved just
   before (the patch answer shows it Resolved) is counted apart and not judged.
G5 no_unexplained_ticket: every ticket opening (new or reopened) must have a cause in the ground truth: a
   fault of its identity with requested <= opening <= off + lag_off + interval + check_budget + outage in between
   + 2 s; store_restarted needs `restart_threshold` starts of that store within its window (+5 s) before;
   pd_leader_flapping needs `flapping_threshold` PD leader changes within its window (+5 s) before. Any
   other opening is a violation; those during a routine operation (rolling restart, PD leader change,
   scale-in) are named so.
G6 alertmanager_matches: at the end Alertmanager's active and silenced alerts of the namespace (without the
   watchdog) name exactly the tickets that are not Resolved, once each (the harness waits up to 30 s for
   deliveries to land before it takes the two lists).
G7 memory_bounded: for every replica that lived at least `rss_min_life_s`, the median RSS of its last five
   samples is at most 1.25 x its median over [start + rss_warmup_s, start + 2 x rss_warmup_s] + 16 MiB.

G1-G7 judge the well-behaved clusters only (Record.clusters): the tickets, people's actions and alerts of
the hostile tenants (Record.hostile, bench.soak.tenants) are left out, since their verdicts are unknown by
design. What is right for the hostile tenants, and for the process they share, is judged apart:

G8 operator_never_crashed: no replica exited but those the soak signalled, and every replica stopped at the
   end exited 0 (within 20 s of its SIGTERM).
G9 memory_under_limit: every RSS sample of every replica, and the most it ever held (VmHWM, so a spike
   between samples counts), stays under the chart's memory limit (`memory_limit_mib`). No tolerance.
G10 hostile_contained: every hostile tenant was checked on to the end (its latest status' lastCheckTime no
   older than `hostile_checked_within_s` at the last sample), and a tenant whose PD is hostile (huge-pd,
   nan-pd) was never called Healthy: what the operator read of it was never whole.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.soak.ground_truth import Fault, Record, StatusSample
from bench.soak.intervals import Span, covers, measure_within, overlaps, subtract, union
from tikv_operator.model.timestamps import from_rfc3339

GUARANTEES = ("one_open_per_identity", "no_auto_resolve_while_present", "every_fault_detected",
              "people_reflected", "no_unexplained_ticket", "alertmanager_matches", "memory_bounded",
              "operator_never_crashed", "memory_under_limit", "hostile_contained")
# Hostile tenant kinds whose PD answers are hostile (bench.soak.tenants.HOSTILE_PD_KINDS).
HOSTILE_PD_KINDS = frozenset({"huge-pd", "nan-pd"})
NON_RESOLVED = frozenset({"Open", "Acknowledged", "Diagnosed"})
Identity = tuple[str, str, str]


@dataclass(frozen=True)
class Settings:
    """The timing of the run (see run.py, which configures the simulator and the TiKVClusters with it)."""

    interval_s: float = 2.0
    refresh_s: float = 5.0
    pd_timeout_s: float = 1.0
    prometheus_timeout_s: float = 3.0
    heartbeat_s: float = 1.0
    disconnect_after_s: float = 2.0
    rate_window_s: float = 10.0
    election_s: float = 2.0
    grace_s: dict[str, float] = field(default_factory=lambda: {
        "store_down": 6.0, "high_latency": 6.0, "low_disk_space": 0.0, "region_miss_peer": 6.0,
        "pd_unreachable": 6.0, "prometheus_unreachable": 6.0})
    restart_window_s: float = 60.0
    restart_threshold: int = 2
    flapping_window_s: float = 60.0
    flapping_threshold: int = 3
    reflect_s: float = 20.0
    rss_min_life_s: float = 300.0
    rss_warmup_s: float = 60.0
    memory_limit_mib: float = 256.0  # charts/tikv-operator's resources.limits.memory
    hostile_checked_within_s: float = 60.0

    @property
    def check_budget_s(self) -> float:
        """From a check's reads to its last write: PD's timeout and two rounds of Prometheus queries."""
        return self.pd_timeout_s + 2 * self.prometheus_timeout_s + 1

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        return cls(**data) if data else cls()


@dataclass(frozen=True)
class Rule:
    invariant: str
    source: str  # pd | store_metrics | pd_metrics | always: what must be readable for it to be judged
    lag_on: float
    lag_off: float


def rules(s: Settings) -> dict[str, Rule]:
    """Fault kind -> the invariant it violates and how late the data shows it."""
    return {
        "stop-store": Rule("store_down", "pd", s.disconnect_after_s + s.heartbeat_s, s.heartbeat_s + 1),
        "disk": Rule("low_disk_space", "store_metrics", 2.0, 2.0),
        "latency": Rule("high_latency", "store_metrics", 4.0, s.rate_window_s + 3),
        "regions": Rule("region_miss_peer", "pd_metrics", 2.0, 2.0),
        "pd-error": Rule("pd_unreachable", "always", s.pd_timeout_s + 1, 2.0),
        "prometheus-down": Rule("prometheus_unreachable", "always", s.prometheus_timeout_s + 1, 2.0),
    }


@dataclass
class Violation:
    guarantee: str
    detail: str


@dataclass
class Verdict:
    checks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GUARANTEES, 0))
    violations: list[Violation] = field(default_factory=list)
    detection_s: dict[str, list[float]] = field(default_factory=dict)  # fault kind -> latencies
    notes: list[str] = field(default_factory=list)

    def add(self, guarantee: str, detail: str) -> None:
        self.violations.append(Violation(guarantee, detail))

    def count(self, guarantee: str) -> int:
        return sum(v.guarantee == guarantee for v in self.violations)


# --------------------------------------------------------------------------------------------------
# The ground truth as time spans


@dataclass
class Timeline:
    end: float
    stopped: dict[tuple[str, int], list[Span]]  # store not running (and until PD shows it Up again)
    gone: dict[tuple[str, int], list[Span]]  # scale-in: Offline, then removed
    pd_api_bad: dict[str, list[Span]]
    pd_metrics_bad: dict[str, list[Span]]
    prometheus_bad: list[Span]
    outages: list[Span]
    routine: dict[str, list[tuple[Span, str]]]  # cluster -> routine operations


def _off(fault: Fault, end: float) -> float:
    return end if fault.off is None else fault.off


def _surely_until(fault: Fault, end: float) -> float:
    """Until when the fault was surely on: its clear had not been asked for yet."""
    if fault.off is None:
        return end
    return fault.clearing if fault.clearing is not None else fault.off


def _overlapping_pauses(record: Record) -> None:
    """A resume is a SIGCONT: it ends every pause of Prometheus, an overlapping one too (plans made before
    bench.soak.schedule kept them apart could overlap): each pause ends at the first resume after it began."""
    pauses = [f for f in record.faults if f.kind == "prometheus-down" and not f.error and f.off is not None
              and f.params.get("cause") != "crashed"]  # a crash is no pause: no SIGCONT ends it
    resumes = sorted(f.off for f in pauses if f.off is not None)
    for fault in pauses:
        first = next((r for r in resumes if r > fault.on), None)
        if first is not None and fault.off is not None and first < fault.off:
            fault.off = fault.clearing = first


def timeline(record: Record, s: Settings) -> Timeline:
    end = record.ended
    _overlapping_pauses(record)
    stopped: dict[tuple[str, int], list[Span]] = defaultdict(list)
    gone: dict[tuple[str, int], list[Span]] = defaultdict(list)
    down_since: dict[tuple[str, int], float] = {}
    for step in sorted(record.steps, key=lambda x: x.at):
        key = (step.cluster, step.store)
        if step.what == "stop":
            down_since.setdefault(key, step.at)
        elif step.what == "start" and key in down_since:
            # Up again at its next heartbeat; its series need a scrape or two more.
            stopped[key].append((down_since.pop(key), step.at + s.heartbeat_s + 2))
        elif step.what == "offline":
            gone[key].append((step.at, end + 1))
    for key, since in down_since.items():
        stopped[key].append((since, end + 1))
    pd_api_bad: dict[str, list[Span]] = defaultdict(list)
    pd_metrics_bad: dict[str, list[Span]] = defaultdict(list)
    prometheus_bad: list[Span] = []
    routine: dict[str, list[tuple[Span, str]]] = defaultdict(list)
    for fault in record.faults:
        if fault.error:
            continue
        off = _off(fault, end)
        if fault.kind == "pd-error" and fault.cluster:
            pd_api_bad[fault.cluster].append((fault.on, off + s.pd_timeout_s + 1))
            if fault.params.get("mode") == "unreachable":
                pd_metrics_bad[fault.cluster].append((fault.on, off + 3))
        elif fault.kind == "pd-leader-change" and fault.cluster:
            election = float(fault.params.get("election_seconds", s.election_s))
            pd_api_bad[fault.cluster].append((fault.on, fault.on + election + 2 + s.heartbeat_s))
            pd_metrics_bad[fault.cluster].append((fault.on, fault.on + election + 3))
            routine[fault.cluster].append(((fault.on, fault.on + election + 3), "pd-leader-change"))
        elif fault.kind in ("rolling-restart", "scale-in") and fault.cluster:
            routine[fault.cluster].append(((fault.on, off + 2), fault.kind))
        elif fault.kind == "prometheus-down":
            prometheus_bad.append((fault.on, off + 2))
    outages = union((o.start, o.end) for o in record.outages)
    return Timeline(end, dict(stopped), dict(gone), dict(pd_api_bad), dict(pd_metrics_bad), union(prometheus_bad),
                    outages, dict(routine))


def unreadable(fault: Fault, rule: Rule, t: Timeline) -> list[Span]:
    cluster = fault.cluster or ""
    if rule.source == "pd":
        return t.pd_api_bad.get(cluster, [])
    if rule.source == "pd_metrics":
        # The operator judges nothing of a cluster whose PD does not answer (MetricsAvailable Unknown,
        # PDNotAnswering), its region invariants included.
        return [*t.prometheus_bad, *t.pd_metrics_bad.get(cluster, []), *t.pd_api_bad.get(cluster, [])]
    if rule.source == "store_metrics":
        key = (cluster, fault.store or 0)
        return [*t.prometheus_bad, *t.pd_api_bad.get(cluster, []), *t.stopped.get(key, []), *t.gone.get(key, [])]
    return []


# --------------------------------------------------------------------------------------------------
# Tickets as histories


def histories(versions: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in versions:
        out[v["name"]].append(v)
    return dict(out)


def identity(v: dict[str, Any]) -> Identity:
    return (v["cluster"], v["invariant"], v["store"])


def open_spans(history: list[dict[str, Any]], end: float) -> list[Span]:
    """When the ticket was not Resolved, by the watch's clock."""
    spans: list[Span] = []
    since: float | None = None
    for v in history:
        live = v["event"] != "DELETED" and v["phase"] in NON_RESOLVED
        if live and since is None:
            since = v["received"]
        elif not live and since is not None:
            spans.append((since, v["received"]))
            since = None
    if since is not None:
        spans.append((since, end + 1))
    return spans


def openings(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The versions where the ticket became not Resolved: created, or reopened after a resolve."""
    out, live = [], False
    for v in history:
        now_live = v["event"] != "DELETED" and v["phase"] in NON_RESOLVED
        if now_live and not live and v["event"] not in ("LIST", "RELIST"):
            out.append(v)
        live = now_live
    return out


def _time(text: str) -> float | None:
    moment = from_rfc3339(text)
    return moment.timestamp() if moment else None


# --------------------------------------------------------------------------------------------------
# The checks


def check_one_open(versions: list[dict[str, Any]], verdict: Verdict) -> None:
    current: dict[str, dict[str, Any]] = {}
    reported: set[Identity] = set()
    for v in versions:
        if v["event"] == "DELETED":
            current.pop(v["name"], None)
            continue
        current[v["name"]] = v
        ident = identity(v)
        verdict.checks["one_open_per_identity"] += 1
        live = sorted(n for n, c in current.items() if identity(c) == ident and c["phase"] in NON_RESOLVED)
        if len(live) > 1 and ident not in reported:
            reported.add(ident)
            verdict.add("one_open_per_identity", f"{ident}: {', '.join(live)} not Resolved at once (rv {v['rv']})")


def _faults_of(record: Record, ident: Identity, s: Settings) -> list[tuple[Fault, Rule]]:
    cluster, invariant, store = ident
    table = rules(s)
    out = []
    for fault in record.faults:
        rule = table.get(fault.kind)
        if rule is None or fault.error or rule.invariant != invariant:
            continue
        if fault.kind == "prometheus-down" or (fault.cluster == cluster and str(fault.store or "") == store):
            out.append((fault, rule))
    return out


def check_auto_resolves(record: Record, hist: dict[str, list[dict[str, Any]]], s: Settings,
                        verdict: Verdict) -> None:
    scaled = {(f.cluster, str(f.store)): f.on for f in record.faults if f.kind == "scale-in" and not f.error}
    for name, history in hist.items():
        for previous, v in itertools.pairwise(history):
            if not (previous["phase"] in NON_RESOLVED and v["phase"] == "Resolved" and v["resolution"] == "auto"):
                continue
            verdict.checks["no_auto_resolve_while_present"] += 1
            ident = identity(v)
            low = _time(v["resolved_at"]) or v["received"] - 1  # the deciding check started then
            high = v["received"]  # and had written it by then
            tomb = scaled.get((ident[0], ident[2]))
            if "Tombstone" in v["resolution_message"] and tomb is not None and tomb <= high:
                continue
            for fault, rule in _faults_of(record, ident, s):
                off = _surely_until(fault, record.ended)
                if fault.on + rule.lag_on <= low and off >= high:
                    verdict.add("no_auto_resolve_while_present",
                                f"{name} auto-resolved at {low:.0f} ({v['resolution_message'][:80]!r}) while "
                                f"{fault.kind} #{fault.id} was on ({fault.on:.1f} .. {off:.1f})")
                    break


def check_detection(record: Record, hist: dict[str, list[dict[str, Any]]], t: Timeline, s: Settings,
                    verdict: Verdict) -> None:
    spans_by_ident: dict[Identity, list[Span]] = defaultdict(list)
    for history in hist.values():
        spans_by_ident[identity(history[-1])] += open_spans(history, t.end)
    table = rules(s)
    for fault in record.faults:
        rule = table.get(fault.kind)
        if rule is None or fault.error:
            continue
        off = _off(fault, t.end)
        clusters = list(record.clusters) if fault.kind == "prometheus-down" else [fault.cluster or ""]
        for cluster in clusters:
            ident = (cluster, rule.invariant, "" if fault.store is None else str(fault.store))
            probe = Fault(fault.id, fault.kind, cluster, fault.store, fault.on, fault.off, fault.params,
                          requested=fault.requested, clearing=fault.clearing)
            readable = subtract((fault.on + rule.lag_on, _surely_until(fault, t.end)), unreadable(probe, rule, t))
            grace = s.grace_s.get(rule.invariant, 0.0)
            required = False
            for a, b in readable:
                outage = measure_within((a, b), t.outages)
                need = grace + 2 * s.interval_s + s.check_budget_s + (outage + grace + s.refresh_s if outage else 0)
                required = required or b - a >= need
            if not required:
                continue
            verdict.checks["every_fault_detected"] += 1
            spans = union(spans_by_ident.get(ident, []))
            window = (fault.on, off + rule.lag_off + 2 * s.interval_s + s.check_budget_s + 5)
            if not overlaps(spans, window):
                pieces = [(round(a - fault.on, 1), round(b - fault.on, 1)) for a, b in readable]
                verdict.add("every_fault_detected", f"{fault.kind} #{fault.id} on {ident} ({fault.on:.1f} .. "
                            f"{off:.1f}, readable {pieces} s from its start) got no ticket")
                continue
            if not covers(spans, fault.on):
                first = min(start for start, _ in spans if start >= fault.on)
                verdict.detection_s.setdefault(fault.kind, []).append(first - fault.on)


def _explained(v: dict[str, Any], at: float, record: Record, t: Timeline, s: Settings) -> bool:
    cluster, invariant, store = identity(v)
    if invariant == "store_restarted":
        starts = [x.at for x in record.steps if x.cluster == cluster and str(x.store) == store and x.what == "start"]
        return sum(at - s.restart_window_s - 5 <= x <= at for x in starts) >= s.restart_threshold
    if invariant == "pd_leader_flapping":
        changes = [f.on for f in record.faults if f.kind == "pd-leader-change" and f.cluster == cluster]
        return sum(at - s.flapping_window_s - 5 <= x <= at for x in changes) >= s.flapping_threshold
    for fault, rule in _faults_of(record, (cluster, invariant, store), s):
        off = _off(fault, t.end)
        slack = rule.lag_off + s.interval_s + s.check_budget_s + 2
        if (fault.requested or fault.on) <= at and at <= off + slack + measure_within((fault.on, at), t.outages):
            return True
    return False


def check_unexplained(record: Record, hist: dict[str, list[dict[str, Any]]], t: Timeline, s: Settings,
                      verdict: Verdict) -> None:
    for name, history in hist.items():
        for v in openings(history):
            verdict.checks["no_unexplained_ticket"] += 1
            created = _time(v["created"]) if v["event"] == "ADDED" else None
            at = v["received"] if created is None else min(v["received"], created + 1)
            # The ticket's write came after the check read the data: look from one check budget earlier.
            if _explained(v, at, record, t, s) or _explained(v, at - s.check_budget_s, record, t, s):
                continue
            cluster = v["cluster"]
            during = [what for span, what in t.routine.get(cluster, []) if span[0] - 5 <= at <= span[1] + 10]
            why = f" during {', '.join(sorted(set(during)))}" if during else ""
            verdict.add("no_unexplained_ticket", f"{name} ({v['invariant']}, store {v['store'] or '-'}) opened at "
                        f"{at:.1f} with no cause in the ground truth{why}")


def check_people(record: Record, hist: dict[str, list[dict[str, Any]]], t: Timeline, s: Settings,
                 verdict: Verdict, skip: Callable[[str], bool] = lambda _: False) -> None:
    by_ticket: dict[str, list[Any]] = defaultdict(list)
    for action in sorted(record.actions, key=lambda a: a.resource_version):
        if action.ok and not skip(action.ticket):
            by_ticket[action.ticket].append(action)
    landed_on_resolved = 0
    for name, actions in by_ticket.items():
        history = hist.get(name, [])
        for index, action in enumerate(actions):
            if action.phase_after == "Resolved" and action.action != "resolve":
                landed_on_resolved += 1
                continue
            verdict.checks["people_reflected"] += 1
            stop_rv = actions[index + 1].resource_version if index + 1 < len(actions) else None
            after = [v for v in history if v["rv"] >= action.resource_version
                     and (stop_rv is None or v["rv"] < stop_rv) and v["event"] != "DELETED"]
            before = [v for v in history if v["rv"] < action.resource_version]
            problem, reflected = _judge(action, after, before)
            if problem:
                verdict.add("people_reflected", f"{action.action} of {name} (rv {action.resource_version}, "
                            f"at {action.after:.1f}): {problem}")
                continue
            if reflected is None:
                continue
            last_seen = after[-1]["received"] if after else action.after
            waited = (min(stop_rv_time(history, stop_rv), t.end) if stop_rv else t.end) - action.after
            allowance = s.reflect_s + measure_within((action.after, action.after + 120), t.outages)
            if not reflected and waited >= allowance:
                verdict.add("people_reflected", f"{action.action} of {name} (rv {action.resource_version}) not "
                            f"reflected within {waited:.0f} s (last version seen at {last_seen:.1f})")
    if landed_on_resolved:
        verdict.notes.append(f"{landed_on_resolved} person edits landed on a ticket the operator had just "
                             "resolved (not judged)")


def stop_rv_time(history: list[dict[str, Any]], rv: int) -> float:
    return next((v["received"] for v in history if v["rv"] >= rv), float("inf"))


def _judge(action: Any, after: list[dict[str, Any]], before: list[dict[str, Any]]) -> tuple[str, bool | None]:
    """(what went wrong or "", reflected: True / False / None when not judged)."""
    kind = action.action
    if kind == "hold":
        for v in after:
            if not v["held"]:
                return f"held cleared by rv {v['rv']} (phase {v['phase']}, resolution {v['resolution']})", None
            if v["phase"] == "Resolved":
                return f"a held ticket was resolved ({v['resolution']}) at rv {v['rv']}", None
        return "", any(v["label_held"] == "true" for v in after)
    if kind == "unhold":
        for v in after:
            if v["held"]:
                return f"held set again by rv {v['rv']}", None
        return "", any(v["label_held"] == "false" for v in after) or any(v["phase"] == "Resolved" for v in after)
    if kind == "ack":
        for v in after:
            if v["phase"] == "Resolved":
                return "", True  # the operator resolved it (auto): the ack's story ends here
            if v["phase"] == "Open":
                return f"phase back to Open at rv {v['rv']}", None
        return "", any(v["label_phase"] == "acknowledged" for v in after)
    # resolve
    if before and before[-1]["phase"] == "Resolved":
        return "", None  # already resolved when the patch landed: nothing to record
    for v in after:
        if v["phase"] != "Resolved":
            return f"a manually resolved ticket went back to {v['phase']} at rv {v['rv']}", None
        if v["resolution"] == "auto" and v["rv"] > action.resource_version:
            return f"a manual resolve was recorded as auto at rv {v['rv']}", None
    return "", any(v["resolution"] == "manual" and v["label_phase"] == "resolved" for v in after)


def check_alertmanager(record: Record, verdict: Verdict, skip: Callable[[str], bool] = lambda _: False) -> None:
    """`skip`: ticket names left out on both sides (the hostile tenants')."""
    final = record.alertmanager
    if not final:
        verdict.add("alertmanager_matches", "no final comparison was recorded")
        return
    open_tickets = {n for n in final.get("open", []) if not skip(n)}
    alerts = [n for n in final.get("alerts", []) if not skip(n)]
    verdict.checks["alertmanager_matches"] += len(open_tickets | set(alerts)) or 1
    missing = sorted(open_tickets - set(alerts))
    extra = sorted(set(alerts) - open_tickets)
    twice = sorted({a for a in alerts if alerts.count(a) > 1})
    for what, names in (("open tickets without an alert", missing), ("alerts without an open ticket", extra),
                        ("tickets with more than one alert", twice)):
        if names:
            verdict.add("alertmanager_matches", f"{what}: {', '.join(names[:20])}")


def check_memory(record: Record, s: Settings, verdict: Verdict) -> None:
    by_replica: dict[int, list[Any]] = defaultdict(list)
    for sample in record.rss:
        by_replica[sample.process].append(sample)
    for replica, samples in sorted(by_replica.items()):
        samples.sort(key=lambda x: x.at)
        start = record.replicas.get(replica, [samples[0].at])[0]
        if samples[-1].at - start < s.rss_min_life_s:
            continue
        warm = [x.rss_kib for x in samples if start + s.rss_warmup_s <= x.at < start + 2 * s.rss_warmup_s]
        if not warm:
            continue
        verdict.checks["memory_bounded"] += 1
        base, last = statistics.median(warm), statistics.median(x.rss_kib for x in samples[-5:])
        if last > 1.25 * base + 16 * 1024:
            verdict.add("memory_bounded", f"replica {replica}: RSS {base / 1024:.1f} MiB after warm-up -> "
                        f"{last / 1024:.1f} MiB after {samples[-1].at - start:.0f} s")


def check_crashes(record: Record, verdict: Verdict) -> None:
    verdict.checks["operator_never_crashed"] += len(record.replicas)
    for end in record.exits:
        if end.cause == "unexpected":
            verdict.add("operator_never_crashed", f"replica {end.process} exited {end.code} at {end.at:.1f} "
                        "though nobody stopped it")
        elif end.cause == "teardown" and end.code != 0:
            verdict.add("operator_never_crashed", f"replica {end.process}, stopped at the end, exited {end.code}")


def check_memory_limit(record: Record, s: Settings, verdict: Verdict) -> None:
    limit = s.memory_limit_mib * 1024
    reported: set[int] = set()
    for sample in sorted(record.rss, key=lambda x: x.at):
        verdict.checks["memory_under_limit"] += 1
        most = max(sample.rss_kib, sample.peak_kib)
        if most >= limit and sample.process not in reported:
            reported.add(sample.process)
            verdict.add("memory_under_limit", f"replica {sample.process}: RSS {most / 1024:.1f} MiB at "
                        f"{sample.at:.1f}, at or over the chart's limit of {s.memory_limit_mib:g} MiB")


def check_hostile(record: Record, s: Settings, verdict: Verdict) -> None:
    by_tenant: dict[str, list[StatusSample]] = defaultdict(list)
    for sample in record.statuses:
        by_tenant[sample.cluster].append(sample)
    for tenant, kind in sorted(record.hostile.items()):
        samples = sorted(by_tenant.get(tenant, []), key=lambda x: x.at)
        verdict.checks["hostile_contained"] += 1 + len(samples)
        checked = [t for t in (_time(x.last_check) for x in samples if x.last_check) if t is not None]
        if not samples or not checked:
            verdict.add("hostile_contained", f"{tenant} ({kind}) was never checked")
            continue
        if max(checked) < samples[-1].at - s.hostile_checked_within_s:
            verdict.add("hostile_contained", f"{tenant} ({kind}) was last checked at {max(checked):.0f}, "
                        f"{samples[-1].at - max(checked):.0f} s before the last look at it")
        if kind in HOSTILE_PD_KINDS:
            healthy = [x for x in samples if x.health == "Healthy"]
            if healthy:
                verdict.add("hostile_contained", f"{tenant} ({kind}) was called Healthy {len(healthy)} times, "
                            f"first at {healthy[0].at:.1f}")


def judge(record: Record, versions: list[dict[str, Any]], settings: Settings | None = None) -> Verdict:
    s = settings or Settings.from_json(record.settings)
    verdict = Verdict()
    t = timeline(record, s)
    # G1-G7 are the well-behaved clusters' guarantees: the hostile tenants' tickets are not judged.
    hostile_tickets = {v["name"] for v in versions if v["cluster"] in record.hostile}

    def of_hostile(ticket: str) -> bool:
        return ticket in hostile_tickets or any(ticket.startswith(f"{name}-") for name in record.hostile)

    judged = [v for v in versions if v["cluster"] not in record.hostile]
    hist = histories(judged)
    check_one_open(judged, verdict)
    check_auto_resolves(record, hist, s, verdict)
    check_detection(record, hist, t, s, verdict)
    check_people(record, hist, t, s, verdict, skip=of_hostile)
    check_unexplained(record, hist, t, s, verdict)
    check_alertmanager(record, verdict, skip=of_hostile)
    check_memory(record, s, verdict)
    check_crashes(record, verdict)
    check_memory_limit(record, s, verdict)
    check_hostile(record, s, verdict)
    return verdict
