"""Prometheus' query API as a check reads it: the fixed queries of core.queries, each an instant query,
so a check costs the same number of queries whatever the number of stores.

prometheus-api-client is synchronous (requests): each query runs in a worker thread, all of them at
once, so the event loop never waits on a socket. Like the PD client, this never raises: a failing
query API is an observation (reachable False and a readable reason).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from tikv_operator.adapters.credentials import BasicAuth, BearerToken, PrometheusAuth
from tikv_operator.adapters.pd_client import excerpt, network_reason
from tikv_operator.core.observation import MetricsObservation, Series

# The library's default retries a refused connection three times with backoff (6 s in all); a check runs
# again at the next interval anyway, and the grace period of prometheus_unreachable absorbs one miss.
NO_RETRY = Retry(total=0, read=False)
# The threads stop on requests' own timeout; this only keeps the check from waiting on a stuck thread.
DEADLINE_SLACK_SECONDS = 1.0
# Clients kept per worker thread (one per Prometheus URL and credentials), so checks reuse connections
# instead of opening three new ones each time; bounded, since clusters can name many Prometheuses.
CLIENTS_PER_THREAD = 16

_local = threading.local()


class _Answer(Exception):
    """A query API answer that is not a usable instant vector; the message says what it was instead."""


@dataclass(frozen=True)
class _Failure:
    reason: str


def _raise_for_status(response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
    """A requests hook: turn an HTTP error into a readable reason (the library's own error is a bytes repr)."""
    if response.status_code < 400:
        return
    detail = excerpt(response.text)
    try:
        body = json.loads(response.text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        detail = excerpt(f"{body.get('errorType', 'error')}: {body['error']}")
    raise _Answer(f"HTTP {response.status_code} {response.reason}" + (f": {detail}" if detail else ""))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Answer("a sample value is not a number")
    try:
        return float(value)  # "NaN" and "+Inf" included: NaN means no samples in the window
    except ValueError:
        raise _Answer(f"a sample value is not a number: {excerpt(str(value), 40)}") from None


def instant_vector(result: Any) -> tuple[Series, ...]:
    """data.result of an instant query -> its samples with their labels."""
    if not isinstance(result, list):
        raise _Answer("the answer's data.result is not a list of samples")
    samples = []
    for sample in result:
        if not isinstance(sample, dict) or not isinstance(sample.get("metric"), dict):
            raise _Answer("a sample in the answer has no metric labels")
        point = sample.get("value")
        if not isinstance(point, list) or len(point) != 2:
            raise _Answer("a sample in the answer is not [timestamp, value] (not an instant vector)")
        labels = {str(k): str(v) for k, v in sample["metric"].items()}
        samples.append(Series(labels, _number(point[1])))
    return tuple(samples)


def describe(error: Exception, timeout_s: float) -> str:
    """A short reason for a failed query. Only known, safe texts: some requests errors quote headers."""
    if isinstance(error, _Answer):
        return str(error)
    if isinstance(error, requests.exceptions.JSONDecodeError):
        return "the answer is not JSON (is this Prometheus' query API?)"
    if isinstance(error, KeyError | TypeError):
        return "the answer is not a Prometheus query API answer (no data.result)"
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
    session.hooks["response"].append(_raise_for_status)
    headers = {"Authorization": f"Bearer {auth.token}"} if isinstance(auth, BearerToken) else None
    basic = (auth.username, auth.password) if isinstance(auth, BasicAuth) else None
    client = PrometheusConnect(
        url.rstrip("/"), headers=headers, auth=basic, retry=NO_RETRY, session=session, timeout=timeout_s,
    )
    cache[key] = client
    while len(cache) > CLIENTS_PER_THREAD:
        _, old = cache.popitem(last=False)
        old._session.close()
    return client


def _query(url: str, expr: str, timeout_s: float, auth: PrometheusAuth | None) -> tuple[Series, ...] | _Failure:
    """One instant query, in a worker thread."""
    try:
        prometheus = _client(url, timeout_s, auth)
        # `timeout` also asks Prometheus to give up evaluating at the same time (float seconds).
        return instant_vector(prometheus.custom_query(expr, params={"timeout": f"{timeout_s:g}"}))
    except Exception as error:  # anything at all: a check must never raise for Prometheus' answers
        if isinstance(error, requests.ConnectionError | requests.Timeout):
            _forget(url, timeout_s, auth)  # a broken pooled connection must not be reused
        return _Failure(describe(error, timeout_s))


def _forget(url: str, timeout_s: float, auth: PrometheusAuth | None) -> None:
    cache = getattr(_local, "clients", None)
    if cache is not None and (client := cache.pop((url, timeout_s, auth), None)) is not None:
        client._session.close()


def _summary(failures: Mapping[str, str], queries: int) -> str:
    reasons = set(failures.values())
    if len(failures) == queries and len(reasons) == 1:
        return reasons.pop()  # the usual case: every query failed the same way, say it once
    return "; ".join(f"{name}: {reason}" for name, reason in failures.items())


async def query_metrics(
    url: str, queries: Mapping[str, str], timeout_s: float, auth: PrometheusAuth | None = None
) -> MetricsObservation:
    """Run the check's queries concurrently. A failed query blinds only the invariants that read it; the
    query API counts as unreachable when no query answered."""
    try:
        async with asyncio.timeout(timeout_s + DEADLINE_SLACK_SECONDS):
            answers = await asyncio.gather(
                *(asyncio.to_thread(_query, url, expr, timeout_s, auth) for expr in queries.values())
            )
    except TimeoutError:
        return MetricsObservation(url=url, reachable=False, queries=queries, error=f"no answer within {timeout_s:g}s")
    values = {name: a for name, a in zip(queries, answers, strict=True) if not isinstance(a, _Failure)}
    failures = {name: a.reason for name, a in zip(queries, answers, strict=True) if isinstance(a, _Failure)}
    error = _summary(failures, len(queries)) if failures else ""
    return MetricsObservation(url=url, reachable=bool(values) or not queries, queries=queries, values=values,
                              error=error, failures=failures)
