"""The Prometheus client against real HTTP servers on 127.0.0.1 that answer like Prometheus, like
something else, or not at all."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiohttp import web

from tests.unit.adapters.local_servers import closed_port, serving
from tikv_operator.checks import prometheus_transport, prometheus_workers
from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.observation import MetricsObservation, Observation, PDObservation, Series
from tikv_operator.checks.core.queries import P99_LATENCY, STORE_SIZE, base_queries
from tikv_operator.checks.core.settings import configure
from tikv_operator.checks.prometheus_client import _client, _Failure, _query, query_metrics
from tikv_operator.kube.credentials import BasicAuth, BearerToken, PrometheusAuth
from tikv_operator.model.cluster_resource import TiKVClusterSpec

MATCHERS = {"tidb_cluster": "prod-basic"}
QUERIES = base_queries(MATCHERS)  # the client is the same for any query set
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakePrometheus:
    """Answers /api/v1/query with `answer(query)`; records every request it gets."""

    def __init__(self, answer: Callable[[str], web.Response]) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.requests.append({"query": request.query.get("query", ""), "timeout": request.query.get("timeout"),
                                  "authorization": request.headers.get("Authorization")})
            return self.answer(request.query.get("query", ""))

        app = web.Application()
        app.router.add_route("*", "/api/v1/query", handle)
        return app


def vector(samples: dict[str, str], **labels: str) -> web.Response:
    result = [{"metric": {"instance": i, **labels}, "value": [1764000000.123, value]} for i, value in samples.items()]
    return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})


def values(series: tuple[Series, ...]) -> dict[str, float]:
    return {s.labels.get("instance", ""): s.value for s in series}


def run(app: web.Application, timeout_s: float = 5.0, auth: PrometheusAuth | None = None) -> MetricsObservation:
    async def scenario() -> MetricsObservation:
        async with serving(app) as url:
            return await query_metrics(url, QUERIES, timeout_s, auth)

    return asyncio.run(scenario())


def test_one_check_is_two_queries_with_the_matchers_and_every_label_kept() -> None:
    answers = {P99_LATENCY: vector({"a:20180": "0.25", "b:20180": "NaN"}, type="kv_get", tikvops_key="a"),
               STORE_SIZE: vector({"a:20180": "1e11", "b:20180": "+Inf"}, type="capacity", pod="basic-tikv-0")}
    by_promql = {promql: answers[name] for name, promql in QUERIES.items()}
    prometheus = FakePrometheus(lambda q: by_promql[q])

    observation = run(prometheus.app(), timeout_s=7)

    assert observation.reachable, observation.error
    assert len(prometheus.requests) == 2
    assert {r["query"] for r in prometheus.requests} == set(QUERIES.values())
    assert all('tidb_cluster="prod-basic"' in r["query"] for r in prometheus.requests)
    assert all(r["timeout"] == "7" for r in prometheus.requests)  # Prometheus stops evaluating too
    assert dict(observation.queries) == QUERIES
    assert values(observation.values[P99_LATENCY])["a:20180"] == 0.25
    assert math.isnan(values(observation.values[P99_LATENCY])["b:20180"])  # no samples in the window: kept as NaN
    assert observation.values[P99_LATENCY][0].labels == {"instance": "a:20180", "type": "kv_get", "tikvops_key": "a"}
    assert values(observation.values[STORE_SIZE]) == {"a:20180": 1e11, "b:20180": math.inf}
    assert observation.values[STORE_SIZE][1].labels["pod"] == "basic-tikv-0"
    assert observation.failures == {}


def test_an_empty_vector_is_an_answer_without_values() -> None:
    observation = run(FakePrometheus(lambda _q: vector({})).app())

    assert observation.reachable
    assert observation.values == {P99_LATENCY: (), STORE_SIZE: ()}


def test_closed_port_fails_fast_without_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    observation = asyncio.run(query_metrics(url, QUERIES, 5.0))

    assert time.monotonic() - started < 1.0  # the library's default would retry with backoff for seconds
    assert observation == MetricsObservation(
        url=url, reachable=False, queries=QUERIES, values={}, error="cannot connect: Connection refused",
        failures=dict.fromkeys(QUERIES, "cannot connect: Connection refused"),
    )


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (lambda: web.Response(text="<html>welcome to nginx</html>", content_type="text/html"),
         "the answer is not JSON (is this Prometheus' query API?)"),
        (lambda: web.json_response({"status": "success", "data": {"resultType": "vector", "result": {"a": 1}}}),
         "the answer's data.result is not a list of samples"),
        (lambda: web.json_response({"hello": "world"}),
         "the answer is not a Prometheus query API answer (no data.result)"),
        (lambda: web.json_response([1, 2, 3]),
         "the answer is not a Prometheus query API answer (no data.result)"),
        (lambda: web.json_response({"status": "success", "data": {"result": [{"metric": {}, "value": 3}]}}),
         "a sample in the answer is not [timestamp, value] (not an instant vector)"),
        (lambda: web.json_response({"status": "success", "data": {"result": [{"metric": {}, "value": [1, "x"]}]}}),
         "a sample value is not a number: x"),
        (lambda: web.json_response({"status": "error", "errorType": "execution", "error": "query timed out"},
                                   status=503),
         "HTTP 503 Service Unavailable: execution: query timed out"),
        (lambda: web.Response(status=502, text="upstream connect error\n"),
         "HTTP 502 Bad Gateway: upstream connect error"),
        # Hostile answers: a number no float holds, nesting that exhausts the stack, in a success and an error.
        (lambda: web.Response(text='{"status": "success", "data": {"result": [{"metric": {}, "value": [1, 1%s]}]}}'
                              % ("0" * 400), content_type="application/json"),
         "a sample value is not a number: 1" + "0" * 38 + "…"),
        (lambda: web.Response(text="[" * 100_000, content_type="application/json"),
         "the answer is not JSON (is this Prometheus' query API?)"),
        (lambda: web.Response(status=500, text="[" * 100_000),
         "HTTP 500 Internal Server Error: " + "[" * 199 + "…"),
    ],
)
def test_garbage_answers_make_the_query_api_unreachable(response: Callable[[], web.Response], error: str) -> None:
    observation = run(FakePrometheus(lambda _q: response()).app())

    assert not observation.reachable
    assert observation.error == error
    assert observation.values == {}
    assert dict(observation.queries) == QUERIES


def test_one_failing_query_names_itself_and_the_query_api_still_answers() -> None:
    latency = QUERIES[P99_LATENCY]

    def answer(query: str) -> web.Response:
        if query == latency:
            return web.json_response({"status": "error", "errorType": "bad_data", "error": "parse error"}, status=400)
        return vector({"a:20180": "100"})

    observation = run(FakePrometheus(answer).app())

    assert observation.reachable  # only the invariants that read the failed query are blind
    assert observation.failures == {P99_LATENCY: "HTTP 400 Bad Request: bad_data: parse error"}
    assert observation.error == "p99_latency_seconds: HTTP 400 Bad Request: bad_data: parse error"
    assert {name: values(v) for name, v in observation.values.items()} == {STORE_SIZE: {"a:20180": 100.0}}


def test_hung_query_api_times_out_at_the_spec_timeout() -> None:
    async def hang(_request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_get("/api/v1/query", hang)
    started = time.monotonic()
    observation = run(app, timeout_s=0.4)

    assert observation.error == "no answer within 0.4s"
    assert not observation.reachable
    assert time.monotonic() - started < 2.5


def test_bearer_token_is_sent_and_never_shown() -> None:
    token = "s3cr3t-t0ken-value"

    def answer(_query: str) -> web.Response:
        return web.json_response({"status": "error", "errorType": "unauthorized", "error": "bad token"}, status=401)

    prometheus = FakePrometheus(answer)
    observation = run(prometheus.app(), auth=BearerToken(secret="tidb/prom", token=token))

    assert {r["authorization"] for r in prometheus.requests} == {f"Bearer {token}"}
    assert observation.error == "HTTP 401 Unauthorized: unauthorized: bad token"
    assert token not in repr(observation)


def test_basic_auth_is_sent() -> None:
    prometheus = FakePrometheus(lambda _q: vector({}))
    observation = run(prometheus.app(), auth=BasicAuth(secret="tidb/prom", username="ops", password="pa:ss"))

    expected = "Basic " + base64.b64encode(b"ops:pa:ss").decode()
    assert observation.reachable, observation.error
    assert {r["authorization"] for r in prometheus.requests} == {expected}


def test_queries_run_concurrently() -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(0.4)
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []}})

    app = web.Application()
    app.router.add_get("/api/v1/query", slow)
    started = time.monotonic()
    observation = run(app)

    assert observation.reachable, observation.error
    assert time.monotonic() - started < 0.75  # two 0.4 s queries one after the other would take 0.8 s


def test_a_series_without_labels_is_kept() -> None:
    body = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "2"]}]}}
    observation = run(FakePrometheus(lambda _q: web.Response(text=json.dumps(body))).app())

    assert observation.values[STORE_SIZE] == (Series({}, 2.0),)


def trickling_app(seconds: float = 8.0) -> web.Application:
    """A Prometheus that answers 200 and then a byte every 100 ms: each read is quick, the answer never ends
    (within `seconds`)."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "100000"})
        await response.prepare(request)
        deadline = time.monotonic() + seconds
        with contextlib.suppress(ConnectionError):
            while time.monotonic() < deadline:
                await response.write(b" ")
                await asyncio.sleep(0.1)
        return response

    app = web.Application()
    app.router.add_get("/api/v1/query", trickle)
    return app


def test_a_trickling_prometheus_frees_the_worker_at_the_query_deadline() -> None:
    async def scenario() -> tuple[object, float]:
        async with serving(trickling_app()) as url:
            started = time.monotonic()
            # The worker itself, not only the check's wait: the thread must be free again for other queries.
            answer = await asyncio.to_thread(_query, url, "up", 0.5, None)
            return answer, time.monotonic() - started

    answer, took = asyncio.run(scenario())

    assert answer == _Failure("no answer within 0.5s")
    assert took < 2.0, f"the worker was held {took:.1f}s by a trickling answer"


def test_a_trickling_prometheus_delays_only_its_own_clusters() -> None:
    async def scenario() -> tuple[list[MetricsObservation], MetricsObservation, float]:
        healthy = FakePrometheus(lambda _query: vector({"a:20180": "1"}))
        async with serving(trickling_app()) as slow_url, serving(healthy.app()) as good_url:
            # More queries to the slow Prometheus than Python's shared default pool has threads.
            slow = [asyncio.create_task(query_metrics(slow_url, QUERIES, 3.0)) for _ in range(40)]
            await asyncio.sleep(0.3)
            started = time.monotonic()
            good = await query_metrics(good_url, QUERIES, 1.0)
            took = time.monotonic() - started
            return await asyncio.gather(*slow), good, took

    slow, good, took = asyncio.run(scenario())

    assert good.reachable, good.error
    assert good.error == ""
    assert took < 1.0
    assert all(not observation.reachable for observation in slow)


def test_the_proxy_and_ca_bundle_variables_are_read_once_per_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "prom.local")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    via_proxy = _client("https://prom.example:9090", 5.0, None)._session
    assert (via_proxy.trust_env, via_proxy.proxies.get("https"), via_proxy.verify) == (
        False, "http://proxy.corp:3128", "/etc/ssl/corp.pem")
    assert "https" not in _client("https://prom.local:9090", 5.0, None)._session.proxies  # NO_PROXY holds


def test_an_answer_beyond_the_cap_is_too_large_and_not_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus_transport, "PROMETHEUS_ANSWER_MAX_BYTES", 1024 * 1024, raising=False)
    sample = json.dumps({"metric": {"__name__": "x", "instance": "a:20180"}, "value": [1, "1"]}).encode() + b","

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"status": "success", "data": {"resultType": "vector", "result": [')
        with contextlib.suppress(ConnectionError):
            for _ in range(2_000):  # bounded: about 100 MiB
                await response.write(sample * 600)
        return response

    app = web.Application()
    app.router.add_get("/api/v1/query", endless)
    observation = run(app, timeout_s=20.0)

    assert not observation.reachable
    assert observation.error == "answer too large: it exceeded 1 MiB"


def test_an_answer_with_warnings_is_partial_and_no_answer_for_its_query() -> None:
    """Thanos and Mimir answer partially by default when a store is down, and say so only in `warnings`."""
    partial = {"status": "success", "data": {"resultType": "vector", "result": []},
               "warnings": ["No StoreAPIs matched for this query", "store 10.0.0.7:10901 is down"]}
    answers = {P99_LATENCY: web.json_response(partial), STORE_SIZE: vector({"a:20180": "1e11"})}
    by_promql = {promql: answers[name] for name, promql in QUERIES.items()}

    observation = run(FakePrometheus(lambda q: by_promql[q]).app())

    assert observation.reachable  # Prometheus answered: it is not unreachable, only this query is unknown
    assert P99_LATENCY not in observation.values
    assert observation.failures[P99_LATENCY] == ("Prometheus answered partially: No StoreAPIs matched for this "
                                                 "query; store 10.0.0.7:10901 is down")
    assert values(observation.values[STORE_SIZE]) == {"a:20180": 1e11}


def test_a_redirect_is_under_the_same_deadline_and_redirects_are_few() -> None:
    async def scenario() -> tuple[object, float, MetricsObservation]:
        async with serving(trickling_app()) as trickling_url:
            async def elsewhere(_request: web.Request) -> web.Response:
                raise web.HTTPFound(trickling_url + "/api/v1/query")

            async def loop(request: web.Request) -> web.Response:
                raise web.HTTPFound(str(request.url))

            redirecting, looping = web.Application(), web.Application()
            redirecting.router.add_get("/api/v1/query", elsewhere)
            looping.router.add_get("/api/v1/query", loop)
            async with serving(redirecting) as url, serving(looping) as loop_url:
                started = time.monotonic()
                # The worker itself, not only the check's wait: it must be free again at the deadline.
                held = await asyncio.to_thread(_query, url, "up", 0.5, None)
                took = time.monotonic() - started
                return held, took, await query_metrics(loop_url, QUERIES, 5.0)

    held, took, looped = asyncio.run(scenario())

    assert held == _Failure("no answer within 0.5s")
    assert took < 2.5, f"a redirect to a trickling host held the worker {took:.1f}s"
    assert looped.error == "more than 2 redirects"


def test_a_query_no_worker_was_free_for_is_not_asked_and_says_nothing_about_prometheus(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's own workers all taken (here: one worker, held by another cluster's slow query): the
    queries never reach Prometheus, which is then neither reachable nor unreachable, but unknown."""
    monkeypatch.setattr(prometheus_workers, "WORKERS_PER_PROMETHEUS", 1)

    async def answer(request: web.Request) -> web.Response:
        if request.query["query"] == "slow":
            await asyncio.sleep(2.5)
        return vector({"a:20180": "1"})

    app = web.Application()
    app.router.add_get("/api/v1/query", answer)

    async def scenario() -> MetricsObservation:
        async with serving(app) as url:
            slow = asyncio.create_task(query_metrics(url, {"slow": "slow"}, 5.0, tenant="ns/slow"))
            await asyncio.sleep(0.2)
            starved = await query_metrics(url, QUERIES, 0.3, tenant="ns/quick")
            await slow
            return starved

    starved = asyncio.run(scenario())

    assert not starved.reachable
    assert starved.busy
    assert starved.error == "not asked: no worker of the operator for this Prometheus was free within 0.3s"
    observation = Observation(cluster="quick", at=datetime(2026, 12, 1, tzinfo=UTC), metrics=starved,
                              pd=PDObservation(url="http://pd:2379", reachable=True))
    configs = configure(TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"},
                                                        "prometheus": {"url": starved.url}}))
    (unreachable,) = (f for f in evaluate(observation, configs) if f.invariant == "prometheus_unreachable")
    assert unreachable.verdict == "unknown"
    assert unreachable.message == f"Prometheus at {starved.url} was not asked: {starved.error}"


def test_the_workers_of_an_idle_or_evicted_prometheus_end(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus_workers, "IDLE_WORKER_SECONDS", 0.2, raising=False)
    monkeypatch.setattr(prometheus_workers, "PROMETHEUS_POOLS", 1)

    def workers(url: str) -> int:
        return sum(1 for t in threading.enumerate() if t.name.startswith(f"prometheus {url}"))

    async def scenario() -> tuple[int, int]:
        healthy = FakePrometheus(lambda _query: vector({"a:20180": "1"}))
        async with serving(healthy.app()) as first, serving(healthy.app()) as second:
            assert (await query_metrics(first, QUERIES, 5.0)).reachable
            assert (await query_metrics(second, QUERIES, 5.0)).reachable  # evicts the first's pool
            for _ in range(50):
                if not workers(first) and not workers(second):
                    break
                await asyncio.sleep(0.1)
            return workers(first), workers(second)

    assert asyncio.run(scenario()) == (0, 0)


def test_a_trickling_http_1_0_answer_frees_the_worker_at_the_deadline_too() -> None:
    """http.client hands the socket of a connection the server will close (HTTP/1.0) to the response and
    forgets it: the deadline must shut that socket too, or the worker is held as long as the server likes."""
    stop = threading.Event()

    class Trickle(BaseHTTPRequestHandler):  # protocol_version HTTP/1.0
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(60):  # 6 s at most
                    if stop.wait(0.1):
                        break
                    self.wfile.write(b" ")
                    self.wfile.flush()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        answer = _query(f"http://127.0.0.1:{server.server_address[1]}", "up", 0.5, None)
        took = time.monotonic() - started
    finally:
        stop.set()
        server.shutdown()
        server.server_close()

    assert answer == _Failure("no answer within 0.5s")
    assert took < 2.0, f"the worker was held {took:.1f}s by a trickling HTTP/1.0 answer"
