"""Prometheus' query API as a check reads it: the fixed queries of checks.core.queries, each an instant query,
so a check costs the same number of queries whatever the number of stores.

prometheus-api-client is synchronous (requests): each query runs in a worker thread, all of them at
once, so the event loop never waits on a socket. Like the PD client, this never raises: a failing
query API is an observation (reachable False and a readable reason).

Each query runs on a worker of its Prometheus (prometheus_workers), within a total deadline and an answer cap
(prometheus_transport); a proxy's redirects too, at most MAX_REDIRECTS of them. A query is judged on its own
time, from when a worker starts it; one that found no free worker in time was not asked at all, which says
nothing about Prometheus (MetricsObservation.busy).

An answer that says it is partial (`warnings`: Thanos or Mimir with a store down) is no answer for that
query (rule 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from tikv_operator.checks.core.observation import MetricsObservation, Series
from tikv_operator.checks.pd_client import excerpt, network_reason
from tikv_operator.checks.prometheus_transport import Answer, Deadline, DeadlineAdapter, TooLarge
from tikv_operator.checks.prometheus_workers import NO_TENANT, HostPool, host_pool
from tikv_operator.kube.credentials import BasicAuth, BearerToken, PrometheusAuth
from tikv_operator.model.json_text import load_json

# The library's default retries a refused connection three times with backoff (6 s in all); a check runs
# again at the next interval anyway, and the grace period of prometheus_unreachable absorbs one miss.
NO_RETRY = Retry(total=0, read=False)
# The threads stop on requests' own timeout; this only keeps the check from waiting on a stuck thread.
DEADLINE_SLACK_SECONDS = 1.0
# Clients kept per worker thread (one per Prometheus URL and credentials), so checks reuse connections
# instead of opening three new ones each time; bounded, since clusters can name many Prometheuses.
CLIENTS_PER_THREAD = 16
# The operator asks only the query API; a proxy in front may redirect once or twice, more is a loop.
MAX_REDIRECTS = 2

_local = threading.local()


class _Partial(Answer):
    """Prometheus answered, but said its answer may lack data (a store of Thanos or Mimir is down)."""


@dataclass(frozen=True)
class _Failure:
    reason: str
    answered: bool = False  # Prometheus answered, only not usably (partially): it is reachable
    asked: bool = True  # False: no worker was free in time, Prometheus was never asked


def _raise_for_status(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
    """A requests hook: turn an HTTP error into a readable reason (the library's own error is a bytes repr)."""
    if response.status_code < 400:
        return
    detail = excerpt(response.text)
    try:
        body = load_json(response.text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        detail = excerpt(f"{body.get('errorType', 'error')}: {body['error']}")
    raise Answer(f"HTTP {response.status_code} {response.reason}" + (f": {detail}" if detail else ""))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Answer("a sample value is not a number")
    try:
        return float(value)  # "NaN" and "+Inf" included: NaN means no samples in the window
    except (ValueError, OverflowError):  # OverflowError: an integer beyond any float (JSON allows 1000…0)
        raise Answer(f"a sample value is not a number: {excerpt(str(value), 40)}") from None


def instant_vector(result: Any) -> tuple[Series, ...]:
    """data.result of an instant query -> its samples with their labels."""
    if not isinstance(result, list):
        raise Answer("the answer's data.result is not a list of samples")
    samples = []
    for sample in result:
        if not isinstance(sample, dict) or not isinstance(sample.get("metric"), dict):
            raise Answer("a sample in the answer has no metric labels")
        point = sample.get("value")
        if not isinstance(point, list) or len(point) != 2:
            raise Answer("a sample in the answer is not [timestamp, value] (not an instant vector)")
        labels = {str(k): str(v) for k, v in sample["metric"].items()}
        samples.append(Series(labels, _number(point[1])))
    return tuple(samples)


def describe(error: Exception, timeout_s: float) -> str:
    """A short reason for a failed query. Only known, safe texts: some requests errors quote headers."""
    if isinstance(error, Answer):
        return str(error)
    # RecursionError: JSON nested deeply enough to exhaust the stack (the library reads the body itself).
    if isinstance(error, requests.exceptions.JSONDecodeError | RecursionError):
        return "the answer is not JSON (is this Prometheus' query API?)"
    if isinstance(error, KeyError | TypeError):
        return "the answer is not a Prometheus query API answer (no data.result)"
    if isinstance(error, requests.TooManyRedirects):
        return f"more than {MAX_REDIRECTS} redirects"
    if isinstance(error, requests.Timeout):
        return f"no answer within {timeout_s:g}s"
    if isinstance(error, requests.ConnectionError):
        return f"cannot connect: {network_reason(error) or 'connection failed'}"
    if isinstance(error, PrometheusApiClientException):
        return f"unexpected answer: {excerpt(str(error), 120)}"
    return f"the query failed ({type(error).__name__})"


def _client(url: str, timeout_s: float, auth: PrometheusAuth | None) -> PrometheusConnect:
    """This worker thread's client for `url` and `auth` (requests sessions are not thread-safe)."""
    cache: OrderedDict[tuple[Any, ...], PrometheusConnect] = getattr(_local, "clients", None) or OrderedDict()
    _local.clients = cache
    key = (url, timeout_s, auth)  # the credentials dataclasses are frozen, hashed by value
    client = cache.get(key)
    if client is not None:
        cache.move_to_end(key)
        return client
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    _read_environment_once(session, url)
    session.hooks["response"].append(_raise_for_status)
    headers = {"Authorization": f"Bearer {auth.token}"} if isinstance(auth, BearerToken) else None
    basic = (auth.username, auth.password) if isinstance(auth, BasicAuth) else None
    client = PrometheusConnect(
        url.rstrip("/"), headers=headers, auth=basic, retry=NO_RETRY, session=session, timeout=timeout_s,
    )
    adapter = DeadlineAdapter(max_retries=NO_RETRY)
    # Every URL, not only Prometheus': a redirect elsewhere must be under the same deadline and cap.
    for prefix in (client.url, "http://", "https://"):
        session.mount(prefix, adapter)  # replaces the library's adapter and requests' defaults
    cache[key] = client
    while len(cache) > CLIENTS_PER_THREAD:
        _, old = cache.popitem(last=False)
        old._session.close()
    return client


def _read_environment_once(session: requests.Session, url: str) -> None:
    """requests re-reads the proxy variables, ~/.netrc and REQUESTS_CA_BUNDLE on every request while trust_env
    is on: 8 % of the operator's CPU at 1000 clusters. Read them once per client instead, the same way (NO_PROXY
    included); ~/.netrc is not read at all, since credentials come from Secrets."""
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(url)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle


def _instant_query(prometheus: PrometheusConnect, expr: str, timeout_s: float) -> tuple[Series, ...]:
    """GET /api/v1/query, as the library's custom_query asks it, keeping what it drops: `warnings`."""
    response = prometheus._session.get(
        f"{prometheus.url}/api/v1/query",
        # `timeout` also asks Prometheus to give up evaluating at the same time (float seconds).
        params={"query": expr, "timeout": f"{timeout_s:g}"},
        headers=prometheus.headers, auth=prometheus.auth, timeout=timeout_s,
    )
    if response.status_code != 200:
        raise Answer(f"HTTP {response.status_code} {response.reason}")
    answer = response.json()
    samples = instant_vector(answer["data"]["result"])
    warnings = answer.get("warnings")
    if warnings:
        said = "; ".join(str(w) for w in warnings) if isinstance(warnings, list) else str(warnings)
        raise _Partial(f"Prometheus answered partially: {excerpt(said, 160)}")
    return samples


def _query(url: str, expr: str, timeout_s: float, auth: PrometheusAuth | None) -> tuple[Series, ...] | _Failure:
    """One instant query, in a worker thread of this Prometheus, done or failed within `timeout_s`."""
    deadline = Deadline(timeout_s)
    try:
        with deadline:
            return _instant_query(_client(url, timeout_s, auth), expr, timeout_s)
    except Exception as error:  # anything at all: a check must never raise for Prometheus' answers
        if deadline.expired or isinstance(error, requests.RequestException | TooLarge):
            _forget(url, timeout_s, auth)  # a broken pooled connection must not be reused
        if deadline.expired:
            return _Failure(f"no answer within {timeout_s:g}s")
        return _Failure(describe(error, timeout_s), answered=isinstance(error, _Partial))


def _forget(url: str, timeout_s: float, auth: PrometheusAuth | None) -> None:
    cache = getattr(_local, "clients", None)
    if cache is not None and (client := cache.pop((url, timeout_s, auth), None)) is not None:
        client._session.close()


def _summary(failures: Mapping[str, str], queries: int) -> str:
    reasons = set(failures.values())
    if len(failures) == queries and len(reasons) == 1:
        return reasons.pop()  # the usual case: every query failed the same way, say it once
    return "; ".join(f"{name}: {reason}" for name, reason in failures.items())


def _started(started: asyncio.Future[None]) -> None:
    if not started.done():
        started.set_result(None)


async def _ask(pool: HostPool, tenant: str, url: str, expr: str, timeout_s: float,
               auth: PrometheusAuth | None) -> tuple[Series, ...] | _Failure:
    """One query through the Prometheus' workers. Its `timeout_s` counts from when a worker starts it: the
    wait for a worker is the other clusters' time, not this query's, and is bounded on its own."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[None] = loop.create_future()

    def job() -> tuple[Series, ...] | _Failure:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this answer any more
            loop.call_soon_threadsafe(_started, started)
        return _query(url, expr, timeout_s, auth)

    future = pool.submit(tenant, job)
    answer = asyncio.wrap_future(future, loop=loop)
    try:
        # As long as a query may take, a worker may be waited for; the pool frees one at the latest then.
        await asyncio.wait((started, answer), timeout=timeout_s + DEADLINE_SLACK_SECONDS,
                           return_when=asyncio.FIRST_COMPLETED)
        if not started.done() and not answer.done() and future.cancel():
            return _Failure(f"not asked: no worker of the operator for this Prometheus was free within "
                            f"{timeout_s:g}s", asked=False)
        try:
            async with asyncio.timeout(timeout_s + DEADLINE_SLACK_SECONDS):
                return await asyncio.shield(answer)
        except TimeoutError:
            return _Failure(f"no answer within {timeout_s:g}s")
    finally:
        if not answer.done():
            answer.cancel()  # a check that ends (or is cancelled) takes its queued queries with it


async def query_metrics(
    url: str, queries: Mapping[str, str], timeout_s: float, auth: PrometheusAuth | None = None,
    tenant: str = NO_TENANT,
) -> MetricsObservation:
    """Run the check's queries concurrently. A failed query blinds only the invariants that read it; the
    query API counts as unreachable when no query answered. `tenant` names the cluster asking (its
    namespace/name), for its fair share of a Prometheus that other clusters use too."""
    pool = host_pool(url)
    answers = await asyncio.gather(*(_ask(pool, tenant, url, expr, timeout_s, auth) for expr in queries.values()))
    values = {name: a for name, a in zip(queries, answers, strict=True) if not isinstance(a, _Failure)}
    failed = {name: a for name, a in zip(queries, answers, strict=True) if isinstance(a, _Failure)}
    failures = {name: failure.reason for name, failure in failed.items()}
    error = _summary(failures, len(queries)) if failures else ""
    answered = bool(values) or any(f.answered for f in failed.values()) or not queries
    busy = not answered and all(not f.asked for f in failed.values())
    return MetricsObservation(url=url, reachable=answered, queries=queries, values=values, error=error,
                              failures=failures, busy=busy)
