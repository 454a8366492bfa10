"""One check's look at a TiKV cluster: PD and Prometheus, asked at the same time, into one Observation."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

from tikv_operator.checks.core.observation import MetricsObservation, NotContacted, Observation, PDObservation
from tikv_operator.checks.core.queries import CUSTOM
from tikv_operator.checks.core.settings import ClusterSettings
from tikv_operator.checks.pd_client import read_stores
from tikv_operator.checks.prometheus_client import query_metrics
from tikv_operator.kube.credentials import NO_CREDENTIALS, ClusterCredentials


async def _pd(settings: ClusterSettings, credentials: ClusterCredentials, confirm: frozenset[str]) -> PDObservation:
    spec = settings.spec
    url = spec.pd.url
    problem = credentials.pd_problem
    tls = credentials.pd_tls
    if problem is None and spec.pd.tls_secret is not None and tls is None and url.startswith("https://"):
        # Connecting without the certificate would fail with a TLS error that hides the real cause.
        problem = NotContacted("unreadable", f"PD client certificate: Secret {spec.pd.tls_secret.name} was not loaded")
    if problem is not None:
        return PDObservation(url=url, reachable=False, error=problem.reason, not_contacted=problem)
    return await read_stores(url, settings.pd_timeout_s, tls, confirm)


async def _metrics(settings: ClusterSettings, credentials: ClusterCredentials, tenant: str) -> MetricsObservation:
    prometheus = settings.spec.prometheus
    queries, parts = dict(settings.queries), dict(settings.parts)
    problem = credentials.prometheus_problem
    if problem is not None:
        return MetricsObservation(url=prometheus.url, reachable=False, queries=queries, error=problem.reason,
                                  not_contacted=problem, parts=parts)
    timeout = settings.prometheus_timeout_s
    observed = await query_metrics(prometheus.url, queries, timeout, credentials.prometheus_auth, tenant)
    customs = {check: expr for check, (query, expr) in parts.items() if query == CUSTOM}
    if observed.reachable and CUSTOM in observed.failures and len(customs) > 1:
        observed = await _each_custom(observed, customs, prometheus.url, timeout, credentials, tenant)
    return replace(observed, parts=parts)


async def _each_custom(observed: MetricsObservation, customs: dict[str, str], url: str, timeout_s: float,
                       credentials: ClusterCredentials, tenant: str) -> MetricsObservation:
    """The custom invariants share one query; when it fails (one malformed expression fails them all), each
    is asked alone, so only the broken one is unknown, with Prometheus' own error. This costs one query per
    custom invariant, only while one of them fails."""
    alone = await query_metrics(url, customs, timeout_s, credentials.prometheus_auth, tenant)
    failures = {name: reason for name, reason in observed.failures.items() if name != CUSTOM} | dict(alone.failures)
    return replace(observed, values={**observed.values, **alone.values}, failures=failures)


async def observe(
    cluster: str, settings: ClusterSettings, credentials: ClusterCredentials | None, now: datetime,
    ticketed_stores: frozenset[str] = frozenset(), namespace: str = "",
) -> Observation:
    """Never raises for what PD or Prometheus answer: failures are in the observation (reachable False),
    and a probe whose credentials could not be used is not attempted (not_contacted says why).
    `ticketed_stores`: stores with open tickets, which PD must account for if it stops listing them.
    `namespace` and `cluster` name the cluster's share of a Prometheus other clusters use too."""
    credentials = credentials or NO_CREDENTIALS
    tenant = f"{namespace}/{cluster}"
    pd, metrics = await asyncio.gather(_pd(settings, credentials, ticketed_stores),
                                       _metrics(settings, credentials, tenant))
    return Observation(cluster=cluster, at=now, pd=pd, metrics=metrics, secrets=credentials.secrets,
                       stale_secrets=credentials.stale, store_pods=dict(settings.spec.store_pods))
