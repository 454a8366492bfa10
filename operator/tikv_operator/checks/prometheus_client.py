"""Prometheus' query API as a check reads it: the fixed queries of checks.core.queries, each an instant query,
so a check costs the same number of queries whatever the number of stores.

prometheus-api-client is synchronous (requests): each query runs in a worker thread, all of them at
once, so the event loop never waits on a socket. Like the PD client, this never raises: a failing
query API is an observation (reachable False and a readable reason).

Isolation: requests' timeout bounds each socket read, not a query, so a Prometheus that trickles bytes
would hold a worker for ever; and a shared pool of workers full of such queries would blind every other
cluster. So each Prometheus has workers of its own (a bounded number), and each query has a total
deadline from its start, at which its connection is shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from tikv_operator.checks.core.observation import MetricsObservation, Series
from tikv_operator.checks.pd_client import excerpt, network_reason
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
# Workers per Prometheus (scheme, host and port): a check runs 2 queries at once, and many clusters may
# share one Prometheus; a stuck one can hold only its own workers. Pools kept: a bounded number.
WORKERS_PER_PROMETHEUS = 8
PROMETHEUS_POOLS = 64

_local = threading.local()
_pools: OrderedDict[str, ThreadPoolExecutor] = OrderedDict()
_pools_lock = threading.Lock()


class _Deadline:
    """The total time of one query in this worker thread: when it is up, the sockets the query uses are
    shut down, so a blocked read returns at once whatever the server trickles."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self.done = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def watch(self, connection: Any) -> None:
        with self._lock:
            self._connections.append(connection)
            if self.expired:
                _shut(connection)

    def expire(self) -> None:
        with self._lock:
            if self.done:
                return  # finished in time: its connections are back in the pool, for the next query
            self.expired = True
            for connection in self._connections:
                _shut(connection)

    def __enter__(self) -> _Deadline:
        _local.deadline = self
        _REAPER.add(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self.done = True
        _local.deadline = None


class _Reaper:
    """One thread for every deadline of the process, earliest first: a timer thread per query would start
    a hundred threads a second at a thousand clusters."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: _Deadline) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="prometheus deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)[2].expire()


_REAPER = _Reaper()


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPPool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        deadline: _Deadline | None = getattr(_local, "deadline", None)
        if deadline is not None:
            deadline.watch(connection)
        return connection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    _get_conn = _WatchedHTTPPool._get_conn


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connection pools whose connections a _Deadline can shut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def _executor(url: str) -> ThreadPoolExecutor:
    """The workers of one Prometheus."""
    parts = urlsplit(url)
    key = f"{parts.scheme}://{parts.netloc}"
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(WORKERS_PER_PROMETHEUS, thread_name_prefix=f"prometheus {key}")
            while len(_pools) > PROMETHEUS_POOLS:
                _, old = _pools.popitem(last=False)
                old.shutdown(wait=False)  # its running queries end at their deadlines
        else:
            _pools.move_to_end(key)
        return pool


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
        body = load_json(response.text)
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
    except (ValueError, OverflowError):  # OverflowError: an integer beyond any float (JSON allows 1000…0)
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
    # RecursionError: JSON nested deeply enough to exhaust the stack (the library reads the body itself).
    if isinstance(error, requests.exceptions.JSONDecodeError | RecursionError):
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
    _read_environment_once(session, url)
    session.hooks["response"].append(_raise_for_status)
    headers = {"Authorization": f"Bearer {auth.token}"} if isinstance(auth, BearerToken) else None
    basic = (auth.username, auth.password) if isinstance(auth, BasicAuth) else None
    client = PrometheusConnect(
        url.rstrip("/"), headers=headers, auth=basic, retry=NO_RETRY, session=session, timeout=timeout_s,
    )
    session.mount(client.url, _DeadlineAdapter(max_retries=NO_RETRY))  # replaces the library's adapter
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


def _query(url: str, expr: str, timeout_s: float, auth: PrometheusAuth | None) -> tuple[Series, ...] | _Failure:
    """One instant query, in a worker thread of this Prometheus, done or failed within `timeout_s`."""
    deadline = _Deadline(timeout_s)
    try:
        with deadline:
            prometheus = _client(url, timeout_s, auth)
            # `timeout` also asks Prometheus to give up evaluating at the same time (float seconds).
            return instant_vector(prometheus.custom_query(expr, params={"timeout": f"{timeout_s:g}"}))
    except Exception as error:  # anything at all: a check must never raise for Prometheus' answers
        if deadline.expired or isinstance(error, requests.RequestException):
            _forget(url, timeout_s, auth)  # a broken pooled connection must not be reused
        if deadline.expired:
            return _Failure(f"no answer within {timeout_s:g}s")
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
            loop, workers = asyncio.get_running_loop(), _executor(url)
            answers = await asyncio.gather(
                *(loop.run_in_executor(workers, _query, url, expr, timeout_s, auth) for expr in queries.values())
            )
    except TimeoutError:
        return MetricsObservation(url=url, reachable=False, queries=queries, error=f"no answer within {timeout_s:g}s")
    values = {name: a for name, a in zip(queries, answers, strict=True) if not isinstance(a, _Failure)}
    failures = {name: a.reason for name, a in zip(queries, answers, strict=True) if isinstance(a, _Failure)}
    error = _summary(failures, len(queries)) if failures else ""
    return MetricsObservation(url=url, reachable=bool(values) or not queries, queries=queries, values=values,
                              error=error, failures=failures)
