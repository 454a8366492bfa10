"""The invariant catalogue and the pure engine: Observation + per-cluster config -> findings.

Each built-in invariant is declared once, with its defaults and its rule function, in declarations; the
rules live in one function each of this package: pd_rules (PD's /stores), store_metrics (TiKV's metrics),
pd_metrics (PD's gauges, leader gated), custom (a cluster's own PromQL). What a cluster's spec makes of
them (the configs in force, the PromQL of a check) is worked out once per spec in checks.core.settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

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
from tikv_operator.checks.core.queries import EVAL_TIME
from tikv_operator.checks.core.store_memory import EMPTY, StoreMemory

__all__ = ["CATALOGUE", "Context", "Invariant", "InvariantConfig", "MetricView", "evaluate", "less_urgent",
           "metric_view"]


@dataclass(frozen=True)
class Invariant:
    entry: Entry

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def rule(self) -> Rule:
        return self.entry.judged_by


CATALOGUE: Mapping[str, Invariant] = {name: Invariant(entry) for name, entry in ENTRIES.items()}


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
    age = data_age(obs, ctx.view)
    if age is None or age < DATA_AGE_NOTED_S:
        return findings
    return [noted(f, age) if reads_prometheus(f.invariant, configs) and f.verdict != "unknown" else f
            for f in findings]


# Older data than this is said so in a verdict (rule 25): Prometheus evaluates at "now", a scrape interval or
# two behind; VictoriaMetrics 30 s behind by default (-search.latencyOffset).
DATA_AGE_NOTED_S = 10.0


def data_age(obs: Observation, view: MetricView) -> float | None:
    """Seconds between the check and the instant Prometheus evaluated its queries at (time() in the disk
    query), None when that was not answered."""
    answers = view.cluster_series(EVAL_TIME)
    if not answers:
        return None
    return max(0.0, obs.at.timestamp() - answers[0].value)


def reads_prometheus(invariant: str, configs: Mapping[str, InvariantConfig]) -> bool:
    config = configs.get(invariant)
    if config is not None and config.custom is not None:
        return True
    entry = ENTRIES.get(invariant)
    return entry is not None and entry.source == "prometheus"


def noted(found: Finding, age: float) -> Finding:
    """A verdict on old data says how old (rule 25): a ticket opened on it is that much later than the fault."""
    seconds = round(age)
    return replace(found, message=f"{found.message} (Prometheus' data is {seconds} s old)",
                   evidence={**found.evidence, "dataAgeSeconds": seconds})
