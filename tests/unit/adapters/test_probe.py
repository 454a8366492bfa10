"""observe(): PD and Prometheus asked together, credential problems turned into unreachable evidence."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from aiohttp import web

from tests.unit.adapters.local_servers import closed_port, serving
from tikv_operator.adapters.credentials import ClusterCredentials
from tikv_operator.adapters.probe import observe
from tikv_operator.core.cluster_resource import TiKVClusterSpec
from tikv_operator.core.invariants import configure, evaluate
from tikv_operator.core.observation import Observation
from tikv_operator.core.queries import check_queries

NOW = datetime(2026, 11, 25, 3, 55, tzinfo=UTC)


def spec(pd: dict[str, object], prometheus: dict[str, object]) -> TiKVClusterSpec:
    return TiKVClusterSpec.model_validate({"pd": pd, "prometheus": prometheus})


def test_pd_and_prometheus_are_asked_at_the_same_time() -> None:
    async def slow_stores(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.json_response({"count": 1, "stores": [{"store": {"id": 1, "state_name": "Up"}}]})

    async def slow_query(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []}})

    app = web.Application()
    app.router.add_get("/pd/api/v1/stores", slow_stores)
    app.router.add_get("/api/v1/query", slow_query)

    async def scenario() -> Observation:
        async with serving(app) as url:
            return await observe("basic", spec({"url": url}, {"url": url}), None, NOW)

    started = time.monotonic()
    observation = asyncio.run(scenario())

    assert time.monotonic() - started < 0.95  # PD (0.5 s) and the queries (0.5 s) overlap
    assert observation.cluster == "basic"
    assert observation.at == NOW
    assert observation.pd.reachable
    assert observation.metrics.reachable
    assert [s.id for s in observation.pd.stores] == ["1"]


def test_unreadable_secrets_become_unreachable_evidence_without_connecting() -> None:
    closed = f"http://127.0.0.1:{closed_port()}"
    cluster = spec({"url": closed.replace("http:", "https:"), "tlsSecret": {"name": "pd-client"}},
                   {"url": closed, "authSecret": {"name": "prom-auth"}})
    credentials = ClusterCredentials(pd_error="PD client certificate: Secret tidb/pd-client not found",
                                     prometheus_error="Prometheus credentials: Secret tidb/prom-auth not found")

    observation = asyncio.run(observe("basic", cluster, credentials, NOW))
    findings = {f.invariant: f for f in evaluate(observation, configure(cluster))}

    assert findings["pd_unreachable"].verdict == "violated"
    assert findings["pd_unreachable"].evidence["error"] == "PD client certificate: Secret tidb/pd-client not found"
    assert findings["prometheus_unreachable"].verdict == "violated"
    assert findings["prometheus_unreachable"].evidence["error"] == (
        "Prometheus credentials: Secret tidb/prom-auth not found"
    )
    assert dict(observation.metrics.queries) == check_queries({})


def test_named_tls_secret_that_was_not_loaded_is_said_so() -> None:
    closed = f"127.0.0.1:{closed_port()}"
    cluster = spec({"url": f"https://{closed}", "tlsSecret": {"name": "pd-client"}}, {"url": f"http://{closed}"})

    observation = asyncio.run(observe("basic", cluster, ClusterCredentials(), NOW))

    assert observation.pd.error == "PD client certificate: Secret pd-client was not loaded"


def test_timeouts_come_from_the_spec() -> None:
    async def hang(_request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response()

    app = web.Application()
    app.router.add_get("/pd/api/v1/stores", hang)
    app.router.add_get("/api/v1/query", hang)

    async def scenario() -> Observation:
        async with serving(app) as url:
            cluster = spec({"url": url, "timeout": "300ms"}, {"url": url, "timeout": "500ms"})
            return await observe("basic", cluster, None, NOW)

    observation = asyncio.run(scenario())

    assert observation.pd.error == "GET /pd/api/v1/stores: no answer within 0.3s"
    assert observation.metrics.error == "no answer within 0.5s"
