"""observe(): PD and Prometheus asked together, credential problems turned into unreachable evidence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from tests.unit.adapters.local_servers import closed_port, serving
from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.observation import NotContacted, Observation
from tikv_operator.checks.core.settings import ClusterSettings, configure, queries_for
from tikv_operator.checks.probe import observe
from tikv_operator.kube.credentials import ClusterCredentials
from tikv_operator.model.cluster_resource import TiKVClusterSpec

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
            return await observe("basic", ClusterSettings.of(spec({"url": url}, {"url": url})), None, NOW)

    started = time.monotonic()
    observation = asyncio.run(scenario())

    assert time.monotonic() - started < 0.95  # PD (0.5 s) and the queries (0.5 s) overlap
    assert observation.cluster == "basic"
    assert observation.at == NOW
    assert observation.pd.reachable
    assert observation.metrics.reachable
    assert [s.id for s in observation.pd.stores] == ["1"]


def test_unusable_secrets_mean_not_contacted_and_unknown_not_unreachable() -> None:
    closed = f"http://127.0.0.1:{closed_port()}"
    cluster = spec({"url": closed.replace("http:", "https:"), "tlsSecret": {"name": "pd-client"}},
                   {"url": closed, "authSecret": {"name": "prom-auth"}})
    pd_problem = NotContacted("unreadable", "PD client certificate: Secret tidb/pd-client not found")
    prom_problem = NotContacted("refused", "Prometheus credentials: Secret tidb/prom-auth has no key token")
    credentials = ClusterCredentials(pd_problem=pd_problem, prometheus_problem=prom_problem)

    observation = asyncio.run(observe("basic", ClusterSettings.of(cluster), credentials, NOW))
    findings = {f.invariant: f for f in evaluate(observation, configure(cluster))}

    assert observation.pd.not_contacted == pd_problem
    assert observation.metrics.not_contacted == prom_problem
    assert findings["pd_unreachable"].verdict == "unknown"
    assert findings["pd_unreachable"].cause == "credentials"
    assert findings["pd_unreachable"].blind
    assert findings["pd_unreachable"].message == (
        f"PD at {cluster.pd.url} was not contacted: PD client certificate: Secret tidb/pd-client not found"
    )
    assert findings["pd_unreachable"].evidence["credentials"] == pd_problem.reason
    assert findings["prometheus_unreachable"].verdict == "unknown"
    assert findings["prometheus_unreachable"].message == (
        f"Prometheus at {closed} was not contacted: Prometheus credentials: Secret tidb/prom-auth has no key token"
    )
    assert dict(observation.metrics.queries) == queries_for(cluster, configure(cluster))[0]
    # PD was not read: no store has a finding, so every store ticket stays as it is (rule 5).
    assert {f.store for f in findings.values()} == {""}
    # The cluster-wide ones read from Prometheus are as unknown as Prometheus, for the same cause.
    assert {f.cause for f in findings.values() if f.invariant != "pd_unreachable"} == {"credentials", "prometheus"}


def test_prometheus_not_contacted_keeps_the_metric_invariants_unknown_for_its_own_cause() -> None:
    async def stores(_request: web.Request) -> web.Response:
        return web.json_response({"count": 1, "stores": [{"store": {"id": 1, "state_name": "Up"}}]})

    app = web.Application()
    app.router.add_get("/pd/api/v1/stores", stores)
    problem = NotContacted("unreadable", "Prometheus credentials: cannot read Secret tidb/p: HTTP 429 Too Many")

    async def scenario() -> list[Finding]:
        async with serving(app) as url:
            cluster = spec({"url": url}, {"url": url, "authSecret": {"name": "p"}})
            credentials = ClusterCredentials(prometheus_problem=problem)
            obs = await observe("basic", ClusterSettings.of(cluster), credentials, NOW)
            return evaluate(obs, configure(cluster))

    by_identity = {(f.invariant, f.store): f for f in asyncio.run(scenario())}

    assert by_identity[("store_down", "1")].verdict == "ok"
    assert by_identity[("pd_unreachable", "")].verdict == "ok"
    for invariant in ("high_latency", "low_disk_space"):
        finding = by_identity[(invariant, "1")]
        assert (finding.verdict, finding.cause) == ("unknown", "prometheus")
        assert finding.message == f"Prometheus was not contacted: {problem.reason}"


def test_named_tls_secret_that_was_not_loaded_is_said_so() -> None:
    closed = f"127.0.0.1:{closed_port()}"
    cluster = spec({"url": f"https://{closed}", "tlsSecret": {"name": "pd-client"}}, {"url": f"http://{closed}"})

    observation = asyncio.run(observe("basic", ClusterSettings.of(cluster), ClusterCredentials(), NOW))

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
            return await observe("basic", ClusterSettings.of(cluster), None, NOW)

    observation = asyncio.run(scenario())

    assert observation.pd.error == "GET /pd/api/v1/stores: no answer within 0.3s"
    assert observation.metrics.error == "no answer within 0.5s"


def test_a_malformed_custom_expression_blinds_only_itself() -> None:
    """All custom invariants ride in one query; when it fails, each is asked alone (n + 1 queries, only while
    one is broken), so the good one is still judged and the broken one shows Prometheus' own error."""
    asked: list[str] = []

    async def stores(_request: web.Request) -> web.Response:
        return web.json_response({"count": 1, "stores": [{"store": {"id": 1, "state_name": "Up"}}]})

    async def query(request: web.Request) -> web.Response:
        expr = request.query["query"]
        asked.append(expr)
        if "broken(" in expr:
            return web.json_response({"status": "error", "errorType": "bad_data",
                                      "error": '1:8: parse error: unknown function with name "broken"'}, status=400)
        result = [{"metric": {"instance": "x"}, "value": [1, "1"]}] if "up_custom" in expr else []
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    app = web.Application()
    app.router.add_get("/pd/api/v1/stores", stores)
    app.router.add_get("/api/v1/query", query)
    customs = [{"name": "good", "expr": "up_custom"}, {"name": "bad", "expr": "broken(up)"}]

    async def scenario() -> tuple[TiKVClusterSpec, Observation]:
        async with serving(app) as url:
            cluster = TiKVClusterSpec.model_validate({"pd": {"url": url}, "prometheus": {"url": url},
                                                      "customInvariants": customs})
            return cluster, await observe("basic", ClusterSettings.of(cluster), None, NOW)

    cluster, obs = asyncio.run(scenario())
    findings = {f.invariant: f for f in evaluate(obs, configure(cluster)) if f.invariant in ("good", "bad")}
    assert findings["good"].verdict == "violated"
    assert (findings["bad"].verdict, findings["bad"].cause) == ("unknown", "query-failed")
    assert 'bad_data: 1:8: parse error: unknown function with name "broken"' in findings["bad"].message
    assert len(asked) == 5 + 2  # four built-in queries, the custom union, then each custom alone


def _stores_and_queries(query: Callable[[web.Request], Awaitable[web.Response]]) -> web.Application:
    async def stores(_request: web.Request) -> web.Response:
        return web.json_response({"count": 1, "stores": [{"store": {"id": 1, "state_name": "Up"}}]})

    app = web.Application()
    app.router.add_get("/pd/api/v1/stores", stores)
    app.router.add_get("/api/v1/query", query)
    return app


def test_one_clusters_slow_queries_do_not_make_another_clusters_prometheus_unreachable() -> None:
    """Two clusters on one Prometheus: one's queries take 3 s each (many checks of it at once), the other's are
    quick. The quick one is judged on its own queries' time, not on the time it would queue behind the slow."""
    empty = {"status": "success", "data": {"resultType": "vector", "result": []}}

    async def query(request: web.Request) -> web.Response:
        if 'tidb_cluster="slow"' in request.query["query"]:
            await asyncio.sleep(3.0)
        return web.json_response(empty)

    async def scenario() -> tuple[list[Observation], Observation]:
        async with serving(_stores_and_queries(query)) as url:
            def settings(name: str, timeout: str) -> ClusterSettings:
                prometheus = {"url": url, "timeout": timeout, "labelMatchers": {"tidb_cluster": name}}
                return ClusterSettings.of(spec({"url": url}, prometheus))

            slow = [asyncio.create_task(observe("slow", settings("slow", "5s"), None, NOW)) for _ in range(3)]
            await asyncio.sleep(0.3)
            quick = await observe("quick", settings("quick", "1s"), None, NOW)
            return await asyncio.gather(*slow), quick

    slow, quick = asyncio.run(scenario())

    assert quick.metrics.reachable, quick.metrics.error
    assert quick.metrics.failures == {}
    assert all(o.pd.reachable for o in slow)


def test_a_partial_answer_with_an_empty_result_resolves_nothing() -> None:
    """An empty custom result would resolve its ticket; an empty result that Prometheus says may be partial
    (`warnings`) is unknown."""

    async def query(_request: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []},
                                  "warnings": ["partial response: store 10.0.0.7:10901 unavailable"]})

    customs = [{"name": "replicas_missing", "expr": "tikv_missing_replicas > 0"}]

    async def scenario() -> tuple[TiKVClusterSpec, Observation]:
        async with serving(_stores_and_queries(query)) as url:
            cluster = TiKVClusterSpec.model_validate({"pd": {"url": url}, "prometheus": {"url": url},
                                                      "customInvariants": customs})
            return cluster, await observe("basic", ClusterSettings.of(cluster), None, NOW)

    cluster, obs = asyncio.run(scenario())
    findings = {f.invariant: f for f in evaluate(obs, configure(cluster))}

    custom = findings["replicas_missing"]
    assert (custom.verdict, custom.cause) == ("unknown", "query-failed")
    assert "Prometheus answered partially: partial response: store 10.0.0.7:10901 unavailable" in custom.message
    assert findings["prometheus_unreachable"].verdict == "ok"  # it answered; only what it answered is unknown
