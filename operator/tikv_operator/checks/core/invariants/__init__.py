"""The invariant catalogue and the pure engine: Observation + per-cluster config -> findings.

Each built-in invariant is declared once, with its defaults and its rule function, in declarations; the
rules live in one function each of this package: pd_rules (PD's /stores), store_metrics (TiKV's metrics),
pd_metrics (PD's gauges, leader gated), custom (a cluster's own PromQL). `queries_for` says which PromQL a
check asks, all in at most five queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.invariants import custom
from tikv_operator.checks.core.invariants.declarations import ENTRIES, Entry
from tikv_operator.checks.core.invariants.engine import (
    Context,
    InvariantConfig,
    MetricView,
    Rule,
    less_urgent,
    metric_view,
)
from tikv_operator.checks.core.observation import Observation
from tikv_operator.checks.core.queries import (
    CUSTOM,
    P99_LATENCY,
    PD_HEALTH,
    PD_LEADER_SETTLED,
    STORE_HEALTH,
    check_queries,
    custom_part,
    pd_health_parts,
    store_health_parts,
)
from tikv_operator.checks.core.store_memory import EMPTY, StoreMemory
from tikv_operator.model.durations import format_duration, parse_duration

if TYPE_CHECKING:
    # Types only: cluster_resource builds spec.invariants from the declarations this package holds.
    from tikv_operator.model.cluster_resource import CustomInvariant, InvariantOverride, TiKVClusterSpec

__all__ = ["CATALOGUE", "Context", "Invariant", "InvariantConfig", "MetricView", "configure", "evaluate",
           "less_urgent", "metric_view", "queries_for", "restart_horizon"]


@dataclass(frozen=True)
class Invariant:
    entry: Entry

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def rule(self) -> Rule:
        return self.entry.judged_by

    def configure(self, override: InvariantOverride | None, rate_window: timedelta) -> InvariantConfig:
        e = self.entry
        window = e.window if not e.uses_rate_window else rate_window
        defaults = InvariantConfig(name=e.name, enabled=True, threshold=e.threshold, grace_period=e.grace_period,
                                   severity=e.severity, keep_firing_for=timedelta(0), window=window)
        if override is None:
            return defaults
        o = override
        return InvariantConfig(
            name=e.name,
            enabled=defaults.enabled if o.enabled is None else o.enabled,
            threshold=defaults.threshold if o.threshold is None else o.threshold,
            grace_period=defaults.grace_period if o.grace_period is None else parse_duration(o.grace_period),
            severity=o.severity or defaults.severity,
            keep_firing_for=parse_duration(o.keep_firing_for) if o.keep_firing_for else defaults.keep_firing_for,
            window=parse_duration(o.window) if o.window and window is not None else window,
        )


CATALOGUE: Mapping[str, Invariant] = {name: Invariant(entry) for name, entry in ENTRIES.items()}


def _custom_config(c: CustomInvariant) -> InvariantConfig:
    return InvariantConfig(name=c.name, enabled=c.enabled, threshold=None, grace_period=parse_duration(c.for_),
                           severity=c.severity, keep_firing_for=parse_duration(c.keep_firing_for), custom=c)


def configure(spec: TiKVClusterSpec) -> dict[str, InvariantConfig]:
    """The settings in force for a cluster, by invariant name: the catalogue's, then the cluster's own."""
    rate_window = parse_duration(spec.prometheus.rate_window)
    configs = {name: inv.configure(getattr(spec.invariants, name), rate_window) for name, inv in CATALOGUE.items()}
    configs.update({c.name: _custom_config(c) for c in spec.custom_invariants})
    return configs


def restart_horizon(configs: Mapping[str, InvariantConfig]) -> timedelta:
    """How long restarts are remembered: store_restarted's window."""
    return configs["store_restarted"].window or timedelta(0)


def queries_for(spec: TiKVClusterSpec, configs: Mapping[str, InvariantConfig]
                ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(query name -> PromQL, check -> (query, its own PromQL)) of one check of this cluster: at most five
    queries, whatever the number of stores and invariants."""
    matchers = spec.prometheus.label_matchers
    rate_window = parse_duration(spec.prometheus.rate_window)
    # Each check with a PromQL range takes it from the window of the invariant declared to set it.
    ranges = {e.window_check: format_duration(configs[name].window or rate_window)
              for name, e in ENTRIES.items() if e.window_check is not None}
    ranges[PD_LEADER_SETTLED] = format_duration(rate_window)
    # A union-query check that no enabled invariant asks for is left out of its query.
    wanted = {check for name, e in ENTRIES.items() if configs[name].enabled for check in e.checks}
    skip = frozenset(check for e in ENTRIES.values() for check in e.checks) - wanted
    customs = {custom.check_name(c.custom): custom_part(c.custom.expr, c.custom.scope, matchers)
               for c in configs.values() if c.custom is not None and c.enabled}
    latency = ranges.pop(P99_LATENCY)
    queries = check_queries(matchers, latency, ranges, skip, customs)
    parts = {check: (STORE_HEALTH, expr) for check, expr in store_health_parts(matchers, ranges).items()}
    parts |= {check: (PD_HEALTH, expr) for check, expr in pd_health_parts(matchers, ranges).items()}
    parts |= {check: (CUSTOM, expr) for check, expr in customs.items()}
    return queries, {check: part for check, part in parts.items() if check not in skip}


def evaluate(obs: Observation, configs: Mapping[str, InvariantConfig], memory: StoreMemory = EMPTY) -> list[Finding]:
    """Findings of every enabled invariant. Identities without a finding (a store PD did not list, or
    every store while PD is unreachable) are unknown: their tickets must stay as they are."""
    ctx = Context(obs, metric_view(obs), memory)
    findings: list[Finding] = []
    for name, config in configs.items():
        if not config.enabled:
            continue
        rule = custom.custom_rule(config.custom) if config.custom is not None else CATALOGUE[name].rule
        findings.extend(rule(ctx, config))
    return findings
