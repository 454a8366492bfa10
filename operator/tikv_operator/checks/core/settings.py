"""A TiKVCluster's spec as its checks use it: validated and worked out once per spec, not once per check.

Durations are numbers here; the invariant configs, the PromQL and the lifecycle policy are derived from the
spec once. A spec the operator cannot use is said in one place, with one message (`Rejected.reason`)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from tikv_operator.checks.core.invariants import CATALOGUE, InvariantConfig, custom
from tikv_operator.checks.core.invariants.declarations import ENTRIES, Entry
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
from tikv_operator.model.cluster_resource import (
    URL_PATTERN,
    AlertmanagerSpec,
    CustomInvariant,
    InvariantOverride,
    PDSpec,
    PrometheusSpec,
    TiKVClusterSpec,
    spec_error,
)
from tikv_operator.model.durations import format_duration, parse_duration
from tikv_operator.tickets.core.lifecycle import LifecyclePolicy

DEFAULT_INTERVAL = timedelta(seconds=30)  # the operator's --default-interval unless set


def _configured(e: Entry, override: InvariantOverride | None, rate_window: timedelta) -> InvariantConfig:
    """A built-in invariant's settings in force: its declared defaults, then the cluster's override."""
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


def _custom_config(c: CustomInvariant) -> InvariantConfig:
    return InvariantConfig(name=c.name, enabled=c.enabled, threshold=None, grace_period=parse_duration(c.for_),
                           severity=c.severity, keep_firing_for=parse_duration(c.keep_firing_for), custom=c)


def configure(spec: TiKVClusterSpec) -> dict[str, InvariantConfig]:
    """The settings in force for a cluster, by invariant name: the catalogue's, then the cluster's own."""
    rate_window = parse_duration(spec.prometheus.rate_window)
    configs = {name: _configured(inv.entry, getattr(spec.invariants, name), rate_window)
               for name, inv in CATALOGUE.items()}
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


@dataclass(frozen=True)
class ClusterSettings:
    spec: TiKVClusterSpec
    interval: timedelta  # spec.interval, else the operator's default
    pd_timeout_s: float
    prometheus_timeout_s: float
    # None: spec.alertmanager is unset, the notifier's default timeout applies.
    alertmanager_timeout_s: float | None
    configs: Mapping[str, InvariantConfig]
    queries: Mapping[str, str]  # query name -> PromQL, at most five per check
    parts: Mapping[str, tuple[str, str]]  # check -> (query, its own PromQL)
    policy: LifecyclePolicy
    restart_horizon: timedelta

    @classmethod
    def of(cls, spec: TiKVClusterSpec, default_interval: timedelta = DEFAULT_INTERVAL) -> ClusterSettings:
        configs = configure(spec)
        queries, parts = queries_for(spec, configs)
        am = spec.alertmanager
        return cls(
            spec=spec,
            interval=parse_duration(spec.interval) if spec.interval else default_interval,
            pd_timeout_s=parse_duration(spec.pd.timeout).total_seconds(),
            prometheus_timeout_s=parse_duration(spec.prometheus.timeout).total_seconds(),
            alertmanager_timeout_s=parse_duration(am.timeout).total_seconds() if am else None,
            configs=configs, queries=queries, parts=parts,
            policy=LifecyclePolicy.from_spec(spec),
            restart_horizon=restart_horizon(configs),
        )

    @property
    def probe_timeouts_s(self) -> float:
        """The longest the probes of one check may wait: the watchdog's budget starts from it."""
        return self.pd_timeout_s + self.prometheus_timeout_s


@dataclass(frozen=True)
class Rejected:
    """A spec the operator cannot use; `reason` names the first wrong field (said on the cluster's status).
    `delivery`: where its tickets still go (rule 23), from what of the spec can be read (`delivery_spec`)."""

    reason: str
    delivery: TiKVClusterSpec | None = field(default=None, compare=False)


def settings_of(spec: Mapping[str, Any] | None, default_interval: timedelta) -> ClusterSettings | Rejected:
    """The one place a TiKVCluster's spec is validated."""
    try:
        parsed = TiKVClusterSpec.model_validate(spec or {})
    except ValidationError as error:
        return Rejected(spec_error(error), delivery_spec(spec))
    return ClusterSettings.of(parsed, default_interval)


def _readable_fields(raw: Any) -> AlertmanagerSpec | None:
    """The alertmanager section without the fields that do not validate (those take their defaults)."""
    if not isinstance(raw, Mapping):
        return None
    fields = dict(raw)
    while True:
        try:
            return AlertmanagerSpec.model_validate(fields)
        except ValidationError as error:
            wrong = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
            names = {info.alias or name: name for name, info in AlertmanagerSpec.model_fields.items()}
            wrong |= {alias for alias, name in names.items() if name in wrong}
            if not wrong & fields.keys():
                return None  # nothing left to leave out: the operator's defaults
            fields = {k: v for k, v in fields.items() if k not in wrong}


def _url(part: Any) -> str:
    url = part.get("url") if isinstance(part, Mapping) else None
    return url if isinstance(url, str) and re.fullmatch(URL_PATTERN, url) else ""


def delivery_spec(spec: Mapping[str, Any] | None) -> TiKVClusterSpec:
    """Rule 23: a refused spec still says where its open tickets page. Its alertmanager section, less the
    fields that do not validate (those, and an unreadable section, take the operator's defaults); its PD and
    Prometheus URLs only for the alerts' links, "" when unreadable. Built without validation: no check runs
    from it, only delivery."""
    raw: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
    return TiKVClusterSpec.model_construct(
        pd=PDSpec.model_construct(url=_url(raw.get("pd"))),
        prometheus=PrometheusSpec.model_construct(url=_url(raw.get("prometheus"))),
        alertmanager=_readable_fields(raw.get("alertmanager")),
    )


@dataclass
class SettingsCache:
    """The settings of the spec last seen. A daemon looks at its spec every second (so an edit takes effect
    quickly); it validates it again only when the spec changed."""

    default_interval: timedelta
    _spec: Any = None
    _settings: ClusterSettings | Rejected | None = field(default=None, repr=False)

    def of(self, spec: Mapping[str, Any] | None) -> ClusterSettings | Rejected:
        if self._settings is None or spec != self._spec:
            # A copy: the cache must not change with the object it was worked out from.
            self._spec = copy.deepcopy(spec)
            self._settings = settings_of(spec, self.default_interval)
        return self._settings
