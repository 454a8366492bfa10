"""The invariant catalogue and the pure engine: Observation + per-cluster config -> findings.

Each rule lives in exactly one function below; the catalogue row next to it says its defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from tikv_operator.core.cluster_resource import InvariantOverride, TiKVClusterSpec
from tikv_operator.core.durations import parse_duration
from tikv_operator.core.findings import Finding, Verdict
from tikv_operator.core.instances import InstanceMap, map_instances
from tikv_operator.core.observation import Observation, Store
from tikv_operator.core.queries import AVAILABLE, CAPACITY, P99_LATENCY
from tikv_operator.core.vocabulary import InvariantName, Severity

STORES_API = "GET /pd/api/v1/stores"


@dataclass(frozen=True)
class InvariantConfig:
    """An invariant's settings in force for one cluster (catalogue defaults + the cluster's overrides)."""

    name: InvariantName
    enabled: bool
    threshold: float | None
    grace_period: timedelta
    severity: Severity


Rule = Callable[[Observation, InstanceMap, InvariantConfig], list[Finding]]


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


def _finding(config: InvariantConfig, store: str, verdict: Verdict, message: str, **evidence: Any) -> Finding:
    return Finding(config.name, store, verdict, config.severity, message, evidence)


def _store_down(obs: Observation, _: InstanceMap, config: InvariantConfig) -> list[Finding]:
    findings = []
    for store in obs.pd.stores:
        if not store.state_name:
            findings.append(_finding(config, store.id, "unknown", f"PD gave no state for store {store.id}",
                                     source=STORES_API))
            continue
        verdict: Verdict = "ok" if store.up else "violated"
        findings.append(_finding(
            config, store.id, verdict,
            f"store {store.id} ({store.address}) is {store.state_name}",
            stateName=store.state_name, address=store.address, source=STORES_API,
        ))
    return findings


def _metric_rule(
    judge: Callable[[Store, str, Observation, InvariantConfig], Finding],
) -> Rule:
    """A per-store metric invariant: inhibited for stores that are not Up, unknown without data."""

    def rule(obs: Observation, instances: InstanceMap, config: InvariantConfig) -> list[Finding]:
        findings = []
        for store in obs.pd.stores:
            instance = instances.instance_of(store.id)
            if not store.up:
                findings.append(_finding(
                    config, store.id, "unknown",
                    f"store {store.id} is {store.state_name}: {config.name} is not judged (inhibited by store_down)",
                    inhibitedBy="store_down", stateName=store.state_name,
                ))
            elif not obs.metrics.reachable:
                findings.append(_finding(
                    config, store.id, "unknown", f"Prometheus did not answer: {obs.metrics.error}",
                ))
            elif instance is None:
                findings.append(_finding(
                    config, store.id, "unknown",
                    f"no metrics in Prometheus for store {store.id} (status address {store.status_address})",
                    instanceConvention=instances.convention,
                ))
            else:
                findings.append(judge(store, instance, obs, config))
        return findings

    return rule


def _value(obs: Observation, query: str, instance: str) -> float | None:
    value = obs.metrics.values.get(query, {}).get(instance)
    return None if value is None or value != value else value  # NaN: no samples in the window


def _judge_latency(store: Store, instance: str, obs: Observation, config: InvariantConfig) -> Finding:
    p99 = _value(obs, P99_LATENCY, instance)
    evidence = {"instance": instance, "query": obs.metrics.queries.get(P99_LATENCY, "")}
    limit = config.threshold or 0.0
    if p99 is None:
        return _finding(config, store.id, "unknown",
                        f"store {store.id}: no gRPC requests measured in the last minute", **evidence)
    verdict: Verdict = "violated" if p99 > limit else "ok"
    relation = ">" if verdict == "violated" else "<="
    return _finding(
        config, store.id, verdict,
        f"store {store.id} p99 gRPC latency {p99 * 1000:.1f} ms {relation} {limit * 1000:g} ms",
        p99Seconds=round(p99, 6), thresholdSeconds=limit, **evidence,
    )


def _judge_disk(store: Store, instance: str, obs: Observation, config: InvariantConfig) -> Finding:
    capacity, available = _value(obs, CAPACITY, instance), _value(obs, AVAILABLE, instance)
    evidence = {"instance": instance,
                "queries": {q: obs.metrics.queries.get(q, "") for q in (CAPACITY, AVAILABLE)}}
    if capacity is None or available is None or capacity <= 0:
        return _finding(config, store.id, "unknown",
                        f"store {store.id}: disk capacity or available space missing in Prometheus", **evidence)
    used = (capacity - available) / capacity
    limit = config.threshold if config.threshold is not None else 0.0
    verdict: Verdict = "violated" if used > limit else "ok"
    relation = ">" if verdict == "violated" else "<="
    return _finding(
        config, store.id, verdict,
        f"store {store.id} disk {used:.1%} used {relation} {limit:.0%} "
        f"({_gib(available)} of {_gib(capacity)} available)",
        usedRatio=round(used, 6), thresholdRatio=limit,
        capacityBytes=int(capacity), availableBytes=int(available), **evidence,
    )


def _gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def _pd_unreachable(obs: Observation, _: InstanceMap, config: InvariantConfig) -> list[Finding]:
    if obs.pd.reachable:
        return [_finding(config, "", "ok", f"PD at {obs.pd.url} answers", url=obs.pd.url)]
    return [_finding(config, "", "violated", f"PD at {obs.pd.url} does not answer correctly: {obs.pd.error}",
                     url=obs.pd.url, error=obs.pd.error)]


def _prometheus_unreachable(obs: Observation, _: InstanceMap, config: InvariantConfig) -> list[Finding]:
    m = obs.metrics
    if m.reachable:
        return [_finding(config, "", "ok", f"Prometheus at {m.url} answers", url=m.url)]
    return [_finding(config, "", "violated", f"Prometheus at {m.url} does not answer correctly: {m.error}",
                     url=m.url, error=m.error)]


CATALOGUE: Mapping[str, Invariant] = {
    i.name: i
    for i in (
        Invariant("store_down", "store", "pd", "PD reports the store as not Up (Disconnected, Down, Offline)",
                  None, "", timedelta(0), "critical", _store_down),
        Invariant("high_latency", "store", "prometheus",
                  "p99 of tikv_grpc_msg_duration_seconds over 1m above the threshold",
                  0.1, "seconds", timedelta(seconds=60), "warning", _metric_rule(_judge_latency)),
        Invariant("low_disk_space", "store", "prometheus",
                  "(capacity - available) / capacity above the threshold",
                  0.7, "ratio", timedelta(0), "warning", _metric_rule(_judge_disk)),
        Invariant("pd_unreachable", "cluster", "pd", "PD's API does not answer correctly",
                  None, "", timedelta(seconds=60), "critical", _pd_unreachable),
        Invariant("prometheus_unreachable", "cluster", "prometheus", "Prometheus' query API does not answer correctly",
                  None, "", timedelta(seconds=60), "warning", _prometheus_unreachable),
    )
}


def configure(spec: TiKVClusterSpec) -> dict[str, InvariantConfig]:
    """The settings in force for a cluster, by invariant name."""
    return {name: inv.configure(getattr(spec.invariants, name)) for name, inv in CATALOGUE.items()}


def instance_map(obs: Observation) -> InstanceMap:
    seen: set[str] = set()
    for values in obs.metrics.values.values():
        seen.update(values)
    return map_instances(obs.pd.stores, seen)


def evaluate(obs: Observation, configs: Mapping[str, InvariantConfig]) -> list[Finding]:
    """Findings of every enabled invariant. Identities without a finding (a store PD did not list, or
    every store while PD is unreachable) are unknown: their tickets must stay as they are."""
    instances = instance_map(obs)
    findings: list[Finding] = []
    for name, invariant in CATALOGUE.items():
        config = configs[name]
        if config.enabled:
            findings.extend(invariant.rule(obs, instances, config))
    return findings
