"""The invariant catalogue and the pure engine: Observation + per-cluster config -> findings.

Each rule lives in exactly one function below; the catalogue row next to it says its defaults."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tikv_operator.core.cluster_resource import InvariantOverride, TiKVClusterSpec
from tikv_operator.core.durations import parse_duration
from tikv_operator.core.findings import Cause, Finding, Verdict
from tikv_operator.core.instances import InstanceMap, describe_split, index_by_key, map_instances, origin
from tikv_operator.core.observation import TOMBSTONE, NotContacted, Observation, Series, Store
from tikv_operator.core.queries import P99_LATENCY, STORE_SIZE
from tikv_operator.core.timestamps import to_rfc3339
from tikv_operator.core.vocabulary import SEVERITIES, InvariantName, Severity

STORES_API = "GET /pd/api/v1/stores"
TOMBSTONES_API = "GET /pd/api/v1/stores?state=2"
# How far below its threshold a value must fall before an open ticket resolves (rule 13: a value that
# hovers at the threshold keeps one ticket open instead of opening and resolving one per check).
DISK_CLEAR_MARGIN = 0.05  # ratio points: 70 % opens, 65 % clears
LATENCY_CLEAR_FACTOR = 0.8  # 100 ms opens, 80 ms clears
# A Disconnected store is at most this urgent; Down has the invariant's severity (critical by default).
DISCONNECTED_SEVERITY: Severity = "warning"


@dataclass(frozen=True)
class InvariantConfig:
    """An invariant's settings in force for one cluster (catalogue defaults + the cluster's overrides)."""

    name: InvariantName
    enabled: bool
    threshold: float | None
    grace_period: timedelta
    severity: Severity


@dataclass(frozen=True)
class MetricView:
    """The check's Prometheus answers, indexed by store key, and the convention that maps keys to stores."""

    instances: InstanceMap
    by_query: Mapping[str, Mapping[str, list[Series]]]

    def lookup(self, query: str, store: Store) -> tuple[str, list[Series]]:
        key = self.instances.key_by_store.get(store.id)
        if key is None:
            return self.instances.expected_key(store), []
        return key, self.by_query.get(query, {}).get(key, [])

    def unmapped_keys(self, query: str) -> list[str]:
        mapped = self.instances.store_by_key
        return sorted(k for k in self.by_query.get(query, {}) if k not in mapped)


Rule = Callable[[Observation, MetricView, InvariantConfig], list[Finding]]
StoreJudge = Callable[[Store, Observation, MetricView, InvariantConfig], "Finding | None"]


@dataclass(frozen=True)
class Invariant:
    name: InvariantName
    scope: Literal["store", "cluster"]
    source: Literal["pd", "prometheus"]
    summary: str
    threshold: float | None
    threshold_unit: str
    grace_period: timedelta
    severity: Severity
    rule: Rule

    def configure(self, override: InvariantOverride | None) -> InvariantConfig:
        o = override or InvariantOverride()
        return InvariantConfig(
            name=self.name,
            enabled=True if o.enabled is None else o.enabled,
            threshold=self.threshold if o.threshold is None else o.threshold,
            grace_period=self.grace_period if o.grace_period is None else parse_duration(o.grace_period),
            severity=o.severity or self.severity,
        )


def _finding(config: InvariantConfig, store: str, verdict: Verdict, message: str, *, cause: Cause = "",
             severity: Severity | None = None, grace_period: timedelta | None = None, clears: bool = True,
             **evidence: Any) -> Finding:
    return Finding(config.name, store, verdict, severity or config.severity, message, evidence, cause,
                   grace_period, clears)


def less_urgent(a: Severity, b: Severity) -> Severity:
    return a if SEVERITIES.index(a) >= SEVERITIES.index(b) else b


def _per_store(judge: StoreJudge) -> Rule:
    """A store-scoped rule: `judge` for every store PD lists; stores PD confirmed as Tombstone (removed on
    purpose) are ok, so their tickets resolve (rule 12); stores PD lost track of are unknown."""

    def rule(obs: Observation, view: MetricView, config: InvariantConfig) -> list[Finding]:
        findings = [f for store in obs.pd.stores if (f := judge(store, obs, view, config)) is not None]
        findings += [
            _finding(config, store.id, "ok",
                     f"store {store.id} ({store.address}) is Tombstone: removed from the cluster on purpose",
                     stateName=TOMBSTONE, address=store.address, source=TOMBSTONES_API)
            for store in obs.pd.tombstones
        ]
        findings += [
            _finding(config, store_id, "unknown",
                     f"PD no longer lists store {store_id}, and has no Tombstone record of it "
                     "(removed with remove-tombstone, or is spec.pd.url another cluster's PD?)",
                     cause="pd", source=f"{STORES_API}, {TOMBSTONES_API}")
            for store_id in obs.pd.unlisted
        ]
        return findings

    return rule


def _since_heartbeat(store: Store, at: datetime) -> dict[str, Any]:
    if not store.last_heartbeat_ns:
        return {}
    beat = datetime.fromtimestamp(store.last_heartbeat_ns / 1e9, UTC)
    return {"lastHeartbeat": to_rfc3339(beat), "secondsSinceHeartbeat": round((at - beat).total_seconds(), 1)}


def _judge_state(store: Store, obs: Observation, _: MetricView, config: InvariantConfig) -> Finding:
    """PD's own word on the store (pkg/response/store.go): Disconnected is PD's 20 s without a heartbeat,
    which a PD leader change (stale heartbeats) and a rolling restart both cause, so it waits out the grace
    period; Down (max-store-down-time, 30 m) opens at once; Offline is a store being removed."""
    state, name = store.state_name, f"store {store.id} ({store.address})"
    evidence = {"stateName": state, "address": store.address, "source": STORES_API,
                **_since_heartbeat(store, obs.at)}
    ago = f" for {evidence['secondsSinceHeartbeat']:g}s" if "secondsSinceHeartbeat" in evidence else ""
    if state == "Up":
        return _finding(config, store.id, "ok", f"{name} is Up", **evidence)
    if state == "Disconnected":
        return _finding(config, store.id, "violated", f"{name} is Disconnected: no heartbeat{ago}",
                        severity=less_urgent(config.severity, DISCONNECTED_SEVERITY), **evidence)
    if state == "Down":
        return _finding(config, store.id, "violated", f"{name} is Down: no heartbeat{ago}",
                        grace_period=timedelta(0), **evidence)
    if state in ("Offline", TOMBSTONE):
        what = "being removed (scale-in), not a down store" if state == "Offline" else "removed from the cluster"
        return _finding(config, store.id, "ok", f"{name} is {state}: {what}", **evidence)
    if not state:
        return _finding(config, store.id, "unknown", f"PD gave no state for store {store.id}", cause="pd",
                        source=STORES_API)
    return _finding(config, store.id, "unknown", f"PD reports {name} as {state!r}, a state this operator does not know",
                    cause="pd", **evidence)


MetricJudge = Callable[[Store, str, Sequence[Series], Observation, InvariantConfig], Finding]


def _metric_rule(query: str, metric: str, judge: MetricJudge) -> Rule:
    """A per-store metric invariant over one query: inhibited for stores that are not Up (rule 9), not
    judged at all for TiFlash (it exports no tikv_* metrics), unknown without its data (rule 5)."""

    def judge_store(store: Store, obs: Observation, view: MetricView, config: InvariantConfig) -> Finding | None:
        if not store.exports_tikv_metrics:
            return None
        if not store.up:
            return _finding(config, store.id, "unknown",
                            f"store {store.id} is {store.state_name}: {config.name} is not judged while it is not Up",
                            cause="inhibited", inhibitedBy="store_down", stateName=store.state_name)
        if obs.metrics.not_contacted is not None:
            return _finding(config, store.id, "unknown",
                            f"Prometheus was not contacted: {obs.metrics.not_contacted.reason}", cause="prometheus")
        if not obs.metrics.reachable:
            return _finding(config, store.id, "unknown", f"Prometheus did not answer: {obs.metrics.error}",
                            cause="prometheus")
        if query in obs.metrics.failures:
            return _finding(config, store.id, "unknown", f"the {metric} query failed: {obs.metrics.failures[query]}",
                            cause="query-failed", query=obs.metrics.queries.get(query, ""))
        key, series = view.lookup(query, store)
        if not series:
            return _finding(config, store.id, "unknown", _no_series(store, key, metric, view, query),
                            cause="no-data", instanceConvention=view.instances.convention, key=key,
                            query=obs.metrics.queries.get(query, ""))
        return judge(store, key, series, obs, config)

    return _per_store(judge_store)


def _no_series(store: Store, key: str, metric: str, view: MetricView, query: str) -> str:
    looked = {"status-address": "status address", "pod-name": "pod"}[view.instances.convention]
    message = f"no {metric} series in Prometheus for store {store.id} ({looked} {key or '(none)'})"
    others = view.unmapped_keys(query)
    if others and not view.instances.store_by_key:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        message += (f"; Prometheus has series for {shown}, which match no PD store: does the scrape config give TiKV "
                    "a pod label, or do spec.prometheus.labelMatchers pick another cluster?")
    return message


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _judge_latency(store: Store, key: str, series: Sequence[Series], obs: Observation,
                   config: InvariantConfig) -> Finding:
    query = obs.metrics.queries.get(P99_LATENCY, "")
    if len(series) > 1:
        return _finding(config, store.id, "unknown", describe_split(store, key, series), cause="ambiguous",
                        series=[origin(s) for s in series], query=query)
    (only,) = series
    p99, kind = _number(only.value), only.labels.get("type", "")
    evidence = {"key": key, "series": origin(only), "query": query}
    if p99 is None:
        # No foreground request finished in the window: nothing to judge, but an open ticket stays open
        # (a store so stuck that requests never finish records no durations either).
        return _finding(config, store.id, "unknown",
                        f"store {store.id}: no foreground gRPC requests measured in the rate window",
                        cause="idle", **evidence)
    limit = config.threshold or 0.0
    clear = limit * LATENCY_CLEAR_FACTOR
    measured = f"store {store.id} p99 gRPC latency {p99 * 1000:.1f} ms ({kind})"
    evidence |= {"type": kind, "p99Seconds": round(p99, 6), "thresholdSeconds": limit}
    if p99 > limit:
        return _finding(config, store.id, "violated", f"{measured} > {limit * 1000:g} ms", **evidence)
    if p99 > clear:
        return _finding(config, store.id, "ok", f"{measured} <= {limit * 1000:g} ms, above {clear * 1000:g} ms, "
                        "the level that resolves a ticket", clears=False, **evidence)
    return _finding(config, store.id, "ok", f"{measured} <= {limit * 1000:g} ms", **evidence)


def _judge_disk(store: Store, key: str, series: Sequence[Series], obs: Observation,
                config: InvariantConfig) -> Finding:
    query = obs.metrics.queries.get(STORE_SIZE, "")
    by_type: dict[str, list[Series]] = {}
    for s in series:
        by_type.setdefault(s.labels.get("type", ""), []).append(s)
    capacity, available = by_type.get("capacity", []), by_type.get("available", [])
    split = capacity if len(capacity) > 1 else available if len(available) > 1 else None
    if split:
        return _finding(config, store.id, "unknown", describe_split(store, key, split), cause="ambiguous",
                        series=[origin(s) for s in split], query=query)
    evidence = {"key": key, "series": origin(series[0]), "query": query}
    cap = _number(capacity[0].value) if capacity else None
    avail = _number(available[0].value) if available else None
    if cap is None or avail is None:
        return _finding(config, store.id, "unknown",
                        f"store {store.id}: disk capacity or available space missing in Prometheus",
                        cause="no-data", **evidence)
    if cap <= 0:
        return _finding(config, store.id, "unknown",
                        f"store {store.id}: disk capacity reads 0 (TiKV has not measured its disk yet)",
                        cause="no-data", **evidence)
    used = (cap - avail) / cap
    limit = config.threshold if config.threshold is not None else 0.0
    clear = max(0.0, limit - DISK_CLEAR_MARGIN)
    measured = f"store {store.id} disk {used:.1%} used"
    sizes = f"({_gib(avail)} of {_gib(cap)} available)"
    evidence |= {"usedRatio": round(used, 6), "thresholdRatio": limit, "capacityBytes": int(cap),
                 "availableBytes": int(avail)}
    if used > limit:
        return _finding(config, store.id, "violated", f"{measured} > {limit:.0%} {sizes}", **evidence)
    if used > clear:
        return _finding(config, store.id, "ok",
                        f"{measured} <= {limit:.0%}, above {clear:.0%}, the level that resolves a ticket {sizes}",
                        clears=False, **evidence)
    return _finding(config, store.id, "ok", f"{measured} <= {limit:.0%} {sizes}", **evidence)


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def _not_contacted(config: InvariantConfig, what: str, url: str, not_contacted: NotContacted) -> list[Finding]:
    """Unknown, not violated: a Secret the operator could not use says nothing about PD or Prometheus, and
    an API server that throttles Secret reads must not page anyone about PD (issue 13)."""
    return [_finding(config, "", "unknown", f"{what} at {url} was not contacted: {not_contacted.reason}",
                     cause="credentials", url=url, credentials=not_contacted.reason)]


def _pd_unreachable(obs: Observation, _: MetricView, config: InvariantConfig) -> list[Finding]:
    if obs.pd.not_contacted is not None:
        return _not_contacted(config, "PD", obs.pd.url, obs.pd.not_contacted)
    if obs.pd.reachable:
        return [_finding(config, "", "ok", f"PD at {obs.pd.url} answers", url=obs.pd.url)]
    return [_finding(config, "", "violated", f"PD at {obs.pd.url} does not answer correctly: {obs.pd.error}",
                     url=obs.pd.url, error=obs.pd.error)]


def _prometheus_unreachable(obs: Observation, _: MetricView, config: InvariantConfig) -> list[Finding]:
    m = obs.metrics
    if m.not_contacted is not None:
        return _not_contacted(config, "Prometheus", m.url, m.not_contacted)
    if m.reachable:
        return [_finding(config, "", "ok", f"Prometheus at {m.url} answers", url=m.url)]
    return [_finding(config, "", "violated", f"Prometheus at {m.url} does not answer correctly: {m.error}",
                     url=m.url, error=m.error)]


CATALOGUE: Mapping[str, Invariant] = {
    i.name: i
    for i in (
        Invariant("store_down", "store", "pd",
                  "PD reports the store Disconnected past the grace period (warning) or Down (at once, critical); "
                  "Offline (scale-in) is not down",
                  None, "", timedelta(minutes=1), "critical", _per_store(_judge_state)),
        Invariant("high_latency", "store", "prometheus",
                  "worst p99 of tikv_grpc_msg_duration_seconds among foreground request types over "
                  "spec.prometheus.rateWindow above the threshold (resolves below 80 % of it)",
                  0.1, "seconds", timedelta(seconds=60), "warning",
                  _metric_rule(P99_LATENCY, "gRPC latency", _judge_latency)),
        Invariant("low_disk_space", "store", "prometheus",
                  "(capacity - available) / capacity above the threshold (resolves 5 points below it)",
                  0.7, "ratio", timedelta(0), "warning",
                  _metric_rule(STORE_SIZE, "tikv_store_size_bytes", _judge_disk)),
        Invariant("pd_unreachable", "cluster", "pd", "PD's API does not answer correctly",
                  None, "", timedelta(seconds=60), "critical", _pd_unreachable),
        Invariant("prometheus_unreachable", "cluster", "prometheus", "Prometheus' query API does not answer correctly",
                  None, "", timedelta(seconds=60), "warning", _prometheus_unreachable),
    )
}


def configure(spec: TiKVClusterSpec) -> dict[str, InvariantConfig]:
    """The settings in force for a cluster, by invariant name."""
    return {name: inv.configure(getattr(spec.invariants, name)) for name, inv in CATALOGUE.items()}


def metric_view(obs: Observation) -> MetricView:
    by_query = {name: index_by_key(series) for name, series in obs.metrics.values.items()}
    keys = {key for index in by_query.values() for key in index}
    return MetricView(map_instances(obs.pd.stores, keys), by_query)


def evaluate(obs: Observation, configs: Mapping[str, InvariantConfig]) -> list[Finding]:
    """Findings of every enabled invariant. Identities without a finding (a store PD did not list, or
    every store while PD is unreachable) are unknown: their tickets must stay as they are."""
    view = metric_view(obs)
    findings: list[Finding] = []
    for name, invariant in CATALOGUE.items():
        config = configs[name]
        if config.enabled:
            findings.extend(invariant.rule(obs, view, config))
    return findings
