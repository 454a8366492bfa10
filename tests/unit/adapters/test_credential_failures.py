"""A Secret the operator cannot read or use means PD / Prometheus were not contacted: that is not
"PD unreachable" (rule 21 of docs/design.md: a 429 from the API server became a false critical pd_unreachable)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.adapters.fake_kube import FakeCore, api_error, opted_in_secret
from tests.unit.adapters.local_servers import closed_port
from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.settings import ClusterSettings, configure
from tikv_operator.checks.probe import observe
from tikv_operator.kube.credentials import SecretCache, load_credentials
from tikv_operator.model.cluster_resource import TiKVClusterSpec

NOW = datetime(2026, 11, 25, 3, 55, tzinfo=UTC)
NAMESPACE = "tidb"


def spec() -> TiKVClusterSpec:
    closed = f"127.0.0.1:{closed_port()}"
    return TiKVClusterSpec.model_validate({
        "pd": {"url": f"https://{closed}", "tlsSecret": {"name": "pd-client"}},
        "prometheus": {"url": f"http://{closed}", "authSecret": {"name": "prom-auth"}},
    })


def findings_with(core: Any) -> dict[str, Finding]:
    cluster = spec()

    async def check() -> dict[str, Finding]:
        credentials = await load_credentials(SecretCache(core), NAMESPACE, cluster)
        observation = await observe("basic", ClusterSettings.of(cluster), credentials, NOW)
        return {f.invariant: f for f in evaluate(observation, configure(cluster))}

    return asyncio.run(check())


@pytest.mark.parametrize("invariant", ["pd_unreachable", "prometheus_unreachable"])
def test_a_throttled_secret_read_is_not_pd_or_prometheus_unreachable(invariant: str) -> None:
    throttled = api_error(429, "Too Many Requests")
    core = FakeCore({(NAMESPACE, "pd-client"): throttled, (NAMESPACE, "prom-auth"): throttled})

    finding = findings_with(core)[invariant]

    assert finding.verdict == "unknown", finding
    assert finding.cause == "credentials"
    assert "not contacted" in finding.message
    assert "HTTP 429" in finding.message


TLS = {"ca.crt": "CA", "tls.crt": "CERT", "tls.key": "KEY-SECRETVALUE"}


@pytest.mark.parametrize(("answer", "failure", "said"), [
    (api_error(404, "Not Found"), "unreadable", "Secret tidb/pd-client not found"),
    (api_error(403, "Forbidden"), "unreadable", "403 Forbidden"),
    (api_error(429, "Too Many Requests"), "unreadable", "HTTP 429 Too Many Requests"),
    (api_error(500, "Internal Server Error"), "unreadable", "HTTP 500"),
    (TimeoutError(), "unreadable", "cannot read Secret tidb/pd-client: TimeoutError"),
    (opted_in_secret(labels={}, **TLS), "refused", "is not labelled tikvops.io/credentials=true"),
    (opted_in_secret(kind="kubernetes.io/service-account-token", **TLS), "refused", "is a ServiceAccount token"),
    (opted_in_secret(**{"ca.crt": "CA", "tls.crt": "CERT"}), "refused", "has no key tls.key"),
])
def test_every_credentials_problem_is_not_contacted_with_who_said_no(answer: Any, failure: str, said: str) -> None:
    core = FakeCore({(NAMESPACE, "pd-client"): answer, (NAMESPACE, "prom-auth"): opted_in_secret(token="t")})
    cluster = spec()

    async def check() -> Any:
        credentials = await load_credentials(SecretCache(core), NAMESPACE, cluster)
        return await observe("basic", ClusterSettings.of(cluster), credentials, NOW)

    observation = asyncio.run(check())

    assert observation.pd.not_contacted is not None
    assert observation.pd.not_contacted.failure == failure
    assert said in observation.pd.not_contacted.reason
    assert observation.pd.not_contacted.reason.startswith("PD client certificate: ")
    assert "SECRETVALUE" not in repr(observation)
    assert observation.metrics.not_contacted is None  # Prometheus' own Secret was fine: it was asked
    assert observation.secrets == (f"{NAMESPACE}/prom-auth",)
