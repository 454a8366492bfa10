"""The pure engine every rule shares: the settings in force, the check's Prometheus answers indexed by
check and store key, and the two shapes of rule (per store over PD's list, per store over a metric)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal, Protocol

from tikv_operator.checks.core.findings import Cause, Finding, Verdict
from tikv_operator.checks.core.instances import InstanceMap, index_by_key, map_instances
from tikv_operator.checks.core.observation import TOMBSTONE, Observation, Series, Store
from tikv_operator.checks.core.queries import CHECK_LABEL
from tikv_operator.checks.core.store_memory import EMPTY, StoreMemory
from tikv_operator.model.vocabulary import SEVERITIES, Severity


class CustomSpec(Protocol):
    """What the engine reads of a cluster's own invariant (model.cluster_resource.CustomInvariant): named
    here, so that the engine needs nothing of the spec model, which is built from the declarations."""

    @property
    def name(self) -> str: ...

    @property
    def expr(self) -> str: ...

    @property
    def scope(self) -> Literal["store", "cluster"]: ...

    @property
    def summary(self) -> str: ...

STORES_API = "GET /pd/api/v1/stores"
TOMBSTONES_API = "GET /pd/api/v1/stores?state=2"


@dataclass(frozen=True)
class InvariantConfig:
    """An invariant's settings in force for one cluster (catalogue defaults + the cluster's overrides)."""

    name: str
    enabled: bool
    threshold: float | None
    grace_period: timedelta
    severity: Severity
    keep_firing_for: timedelta = timedelta(0)
    window: timedelta | None = None  # the PromQL range of invariants that have one
    custom: CustomSpec | None = None  # set for a cluster's own invariants

    @property
    def limit(self) -> float:
        return self.threshold if self.threshold is not None else 0.0


@dataclass(frozen=True)
class MetricView:
    """The check's Prometheus answers by check (a query's name, or a CHECK_LABEL value inside a union
    query) and store key, and the convention that maps keys to stores."""

    instances: InstanceMap
    by_check: Mapping[str, Mapping[str, list[Series]]]

    def lookup(self, check: str, store: Store) -> tuple[str, list[Series]]:
        key = self.instances.key_by_store.get(store.id)
        if key is None:
            return self.instances.expected_key(store), []
        return key, self.by_check.get(check, {}).get(key, [])

    def unmapped_keys(self, check: str) -> list[str]:
        mapped = self.instances.store_by_key
        return sorted(k for k in self.by_check.get(check, {}) if k and k not in mapped)

    def cluster_series(self, check: str) -> list[Series]:
        """Every series of a check, whatever its key (the cluster-wide checks carry none)."""
        return [s for series in self.by_check.get(check, {}).values() for s in series]


@dataclass(frozen=True)
class Context:
    """What a rule may read: this check's observation and answers, and what earlier checks saw."""

    obs: Observation
    view: MetricView
    memory: StoreMemory = EMPTY

    @cached_property  # store_leader_lost reads it for every store
    def up_leaders(self) -> int:
        """Raft leaders PD counts on the Up stores."""
        return sum(s.leader_count or 0 for s in self.obs.pd.stores if s.up)

    def failure(self, check: str) -> str | None:
        """Why a check has no answer: its own query failed, or the union query it rides in did."""
        m = self.obs.metrics
        parent = m.parts[check][0] if check in m.parts else check
        return m.failures.get(check) or m.failures.get(parent)

    def query(self, check: str) -> str:
        m = self.obs.metrics
        return m.parts[check][1] if check in m.parts else m.queries.get(check, "")


Rule = Callable[[Context, InvariantConfig], list[Finding]]
StoreJudge = Callable[[Store, Context, InvariantConfig], "Finding | None"]


def finding(config: InvariantConfig, store: str, verdict: Verdict, message: str, *, cause: Cause = "",
            severity: Severity | None = None, grace_period: timedelta | None = None, clears: bool = True,
            **evidence: Any) -> Finding:
    return Finding(config.name, store, verdict, severity or config.severity, message, evidence, cause,
                   grace_period, clears)


def less_urgent(a: Severity, b: Severity) -> Severity:
    return a if SEVERITIES.index(a) >= SEVERITIES.index(b) else b


def number(value: float) -> float | None:
    return None if math.isnan(value) else value


def per_store(judge: StoreJudge) -> Rule:
    """A store-scoped rule: `judge` for every store PD lists; stores PD confirmed as Tombstone (removed on
    purpose) are ok, so their tickets resolve (rule 12); stores PD lost track of are unknown."""

    def rule(ctx: Context, config: InvariantConfig) -> list[Finding]:
        pd = ctx.obs.pd
        findings = [f for store in pd.stores if (f := judge(store, ctx, config)) is not None]
        findings += [
            finding(config, store.id, "ok",
                    f"store {store.id} ({store.address}) is Tombstone: removed from the cluster on purpose",
                    stateName=TOMBSTONE, address=store.address, source=TOMBSTONES_API)
            for store in pd.tombstones
        ]
        findings += [
            finding(config, store_id, "unknown",
                    f"PD no longer lists store {store_id}, and has no Tombstone record of it "
                    "(removed with remove-tombstone, or is spec.pd.url another cluster's PD?)",
                    cause="pd", source=f"{STORES_API}, {TOMBSTONES_API}")
            for store_id in pd.unlisted
        ]
        return findings

    return rule


def up_only(judge: StoreJudge) -> StoreJudge:
    """Rule 9: a store that is not Up is store_down's business, and PD's numbers of it are stale (its last
    heartbeat): its other invariants are not judged but unknown, inhibited by store_down."""

    def judge_up(store: Store, ctx: Context, config: InvariantConfig) -> Finding | None:
        if store.up:
            return judge(store, ctx, config)
        return finding(config, store.id, "unknown",
                       f"store {store.id} is {store.state_name}: {config.name} is not judged while it is not Up",
                       cause="inhibited", inhibitedBy="store_down", stateName=store.state_name)

    return judge_up


def prometheus_blind(ctx: Context, config: InvariantConfig, check: str, store: str, what: str) -> Finding | None:
    """Unknown when Prometheus gave no answer for `check` (rule 5); None when it did."""
    m = ctx.obs.metrics
    if m.not_contacted is not None:
        return finding(config, store, "unknown", f"Prometheus was not contacted: {m.not_contacted.reason}",
                       cause="prometheus")
    if not m.reachable:
        return finding(config, store, "unknown", f"Prometheus did not answer: {m.error}", cause="prometheus")
    failure = ctx.failure(check)
    if failure is not None:
        return finding(config, store, "unknown", f"the {what} query failed: {failure}", cause="query-failed",
                       query=ctx.query(check))
    return None


MetricJudge = Callable[[Store, str, Sequence[Series], Context, InvariantConfig], Finding]
# What to say of a store whose check has no series (None: the usual "no series" unknown).
Absent = Callable[[Store, Context, InvariantConfig], "Finding | None"]


def metric_rule(check: str, metric: str, judge: MetricJudge, absent: Absent | None = None,
                tikv_only: bool = True) -> Rule:
    """A per-store metric invariant over one check: not judged at all for TiFlash (it exports no tikv_*
    metrics), inhibited for stores that are not Up (rule 9), unknown without its data (rule 5)."""

    def judge_metric(store: Store, ctx: Context, config: InvariantConfig) -> Finding | None:
        blind = prometheus_blind(ctx, config, check, store.id, metric)
        key, series = ctx.view.lookup(check, store)
        if blind is None and series:
            return judge(store, key, series, ctx, config)
        fallback = absent(store, ctx, config) if absent is not None else None
        if fallback is not None:
            return fallback
        if blind is not None:
            return blind
        return finding(config, store.id, "unknown", no_series(store, key, metric, ctx.view, check),
                       cause="no-data", instanceConvention=ctx.view.instances.convention, key=key,
                       query=ctx.query(check))

    judge_up = up_only(judge_metric)

    def judge_store(store: Store, ctx: Context, config: InvariantConfig) -> Finding | None:
        if tikv_only and not store.exports_tikv_metrics:
            return None
        return judge_up(store, ctx, config)

    return per_store(judge_store)


def no_series(store: Store, key: str, metric: str, view: MetricView, check: str) -> str:
    looked = "pod" if store.id in view.instances.declared else {
        "status-address": "status address", "pod-name": "pod"}[view.instances.convention]
    message = f"no {metric} series in Prometheus for store {store.id} ({looked} {key or '(none)'})"
    others = view.unmapped_keys(check)
    if others and not view.instances.store_by_key:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        message += (f"; Prometheus has series for {shown}, which match no PD store: does the scrape config give TiKV "
                    "a pod label, or do spec.prometheus.labelMatchers pick another cluster?")
    return message


def metric_view(obs: Observation) -> MetricView:
    """Every answer indexed by check and store key; a union query's rows go to the check they carry."""
    rows: dict[str, list[Series]] = {}
    for name, series in obs.metrics.values.items():
        for s in series:
            rows.setdefault(s.labels.get(CHECK_LABEL) or name, []).append(s)
    by_check = {check: index_by_key(series) for check, series in rows.items()}
    keys = {key for index in by_check.values() for key in index if key}
    return MetricView(map_instances(obs.pd.stores, keys, obs.store_pods), by_check)
