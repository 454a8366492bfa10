"""The invariant catalogue and the pure engine: Observation + per-cluster config -> findings.

The defaults of each built-in invariant are data in core.catalogue; each rule lives in one function of
this package: pd_rules (PD's /stores), store_metrics (TiKV's metrics), pd_metrics (PD's gauges, leader
gated), custom (a cluster's own PromQL). `queries_for` says which PromQL a check asks, all in at most
five queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from tikv_operator.core.catalogue import ENTRIES, Entry
from tikv_operator.core.cluster_resource import CustomInvariant, InvariantOverride, TiKVClusterSpec
from tikv_operator.core.durations import format_duration, parse_duration
from tikv_operator.core.findings import Finding
from tikv_operator.core.invariants import custom, pd_metrics, pd_rules, store_metrics
from tikv_operator.core.invariants.engine import Context, InvariantConfig, MetricView, Rule, less_urgent, metric_view
from tikv_operator.core.observation import Observation
from tikv_operator.core.queries import (
    CRITICAL_ERRORS,
    CUSTOM,
    L0_FILES,
    PD_HEALTH,
    PD_LEADER_CHANGES,
    PD_LEADER_SETTLED,
    PD_LEADERS,
    PD_REGIONS,
    RAFT_APPEND,
    RAFT_APPLY,
    RAFT_LOG_LAG,
    STORE_HEALTH,
    WRITE_STALL,
    check_queries,
    custom_part,
    pd_health_parts,
    store_health_parts,
)
from tikv_operator.core.store_memory import EMPTY, StoreMemory

__all__ = ["CATALOGUE", "Context", "Invariant", "InvariantConfig", "MetricView", "configure", "evaluate",
           "less_urgent", "metric_view", "queries_for", "restart_horizon"]


@dataclass(frozen=True)
class Invariant:
    entry: Entry
    rule: Rule

    @property
    def name(self) -> str:
        return self.entry.name

    def configure(self, override: InvariantOverride | None, rate_window: timedelta) -> InvariantConfig:
        o, e = override or InvariantOverride(), self.entry
        window = e.window if not e.uses_rate_window else rate_window
        return InvariantConfig(
            name=e.name,
            enabled=True if o.enabled is None else o.enabled,
            threshold=e.threshold if o.threshold is None else o.threshold,
            grace_period=e.grace_period if o.grace_period is None else parse_duration(o.grace_period),
            severity=o.severity or e.severity,
            keep_firing_for=parse_duration(o.keep_firing_for) if o.keep_firing_for else timedelta(0),
            window=parse_duration(o.window) if o.window and window is not None else window,
        )


_RULES: Mapping[str, Rule] = {**pd_rules.RULES, **store_metrics.RULES, **pd_metrics.RULES}
CATALOGUE: Mapping[str, Invariant] = {name: Invariant(entry, _RULES[name]) for name, entry in ENTRIES.items()}


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


# Which checks of the union queries each invariant reads: a disabled invariant's checks are not asked.
_CHECKS = {
    "raft_log_lag": (RAFT_LOG_LAG,), "raft_append_slow": (RAFT_APPEND,), "raft_apply_slow": (RAFT_APPLY,),
    "write_stall": (WRITE_STALL, L0_FILES), "critical_error": (CRITICAL_ERRORS,),
    "region_miss_peer": (PD_REGIONS, PD_LEADERS, PD_LEADER_SETTLED),
    "region_down_peer": (PD_REGIONS, PD_LEADERS, PD_LEADER_SETTLED),
    "region_pending_peer": (PD_REGIONS, PD_LEADERS, PD_LEADER_SETTLED), "pd_leader_flapping": (PD_LEADER_CHANGES,),
}


# The checks with a PromQL range, and the invariant whose window sets it.
_WINDOWED = {RAFT_LOG_LAG: "raft_log_lag", RAFT_APPEND: "raft_append_slow", RAFT_APPLY: "raft_apply_slow",
             WRITE_STALL: "write_stall", CRITICAL_ERRORS: "critical_error", PD_LEADER_CHANGES: "pd_leader_flapping"}


def queries_for(spec: TiKVClusterSpec, configs: Mapping[str, InvariantConfig]
                ) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """(query name -> PromQL, check -> (query, its own PromQL)) of one check of this cluster: at most five
    queries, whatever the number of stores and invariants."""
    matchers = spec.prometheus.label_matchers
    rate_window = parse_duration(spec.prometheus.rate_window)
    ranges = {check: format_duration(configs[name].window or rate_window) for check, name in _WINDOWED.items()}
    ranges[PD_LEADER_SETTLED] = format_duration(rate_window)
    wanted = {check for name, checks in _CHECKS.items() if configs[name].enabled for check in checks}
    skip = frozenset(check for checks in _CHECKS.values() for check in checks) - wanted
    customs = {custom.check_name(c.custom): custom_part(c.custom.expr, c.custom.scope, matchers)
               for c in configs.values() if c.custom is not None and c.enabled}
    latency = format_duration(configs["high_latency"].window or rate_window)
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
