"""Prometheus' query API as a check reads it: the fixed queries of checks.core.queries, each an instant query,
so a check costs the same number of queries whatever the number of stores.

prometheus-api-client is synchronous (requests): each query runs in a worker thread, all of them at
once, so the event loop never waits on a socket. Like the PD client, this never raises: a failing
query API is an observation (reachable False and a readable reason).

Isolation: requests' timeout bounds each socket read, not a query, so a Prometheus that trickles bytes
would hold a worker for ever; and a shared pool of workers full of such queries would blind every other
cluster. So each Prometheus has workers of its own (a bounded number), and each query has a total
deadline from its start, at which its connection is shut down (redirects included: they go through the
same watched connections, at most MAX_REDIRECTS of them).

Tenants: many clusters may share one Prometheus, so its workers take the clusters' queries in turn, and one
cluster has at most TENANT_SHARE of them at a time: one cluster's slow custom queries cost that cluster's
checks, not the others'. A query is judged on its own time, from when a worker starts it; one that found no
free worker in time was not asked at all, which says nothing about Prometheus (MetricsObservation.busy).

Every answer is read up to PROMETHEUS_ANSWER_MAX_BYTES ("answer too large" beyond), and an answer that says
it is partial (`warnings`: Thanos or Mimir with a store down) is no answer for that query (rule 5).
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
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from tikv_operator.checks.core.observation import MetricsObservation, Series
from tikv_operator.checks.pd_client import MIB, excerpt, network_reason
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
# Workers per Prometheus (scheme, host and port): many clusters may share one Prometheus; a stuck one can
# hold only its own workers. Pools kept: a bounded number.
WORKERS_PER_PROMETHEUS = 16
PROMETHEUS_POOLS = 64
# Workers one cluster may hold at a time on a shared Prometheus: a check asks its (at most five, see
# checks.core.queries) queries at once, so a cluster whose queries are slow waits on itself and leaves at
# least 11 of 16 workers to the others.
TENANT_SHARE = 5
NO_TENANT = ""  # a caller that names no cluster (benchmarks, tests) may use every worker
# A worker thread with nothing to do for this long ends: an idle or evicted Prometheus keeps no threads.
IDLE_WORKER_SECONDS = 30.0
# The operator asks only the query API; a proxy in front may redirect once or twice, more is a loop.
MAX_REDIRECTS = 2
# The most of one answer the operator reads. A series of an instant vector is ~200-300 bytes of JSON: a
# check's queries over 10,000 stores are a few MiB, so 32 MiB is far beyond any real TiKV cluster; a custom
# query such as {__name__=~".+"} is what reaches it, and reading it whole would starve every other cluster.
PROMETHEUS_ANSWER_MAX_BYTES = 32 * MIB

_local = threading.local()
_pools: OrderedDict[str, _HostPool] = OrderedDict()
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
    sock = connection if isinstance(connection, socket.socket) else getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def _watch(connection_or_socket: Any) -> None:
    deadline: _Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None and connection_or_socket is not None:
        deadline.watch(connection_or_socket)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        # The socket itself: http.client hands it to the response and clears `sock` when the server will
        # close the connection (HTTP/1.0, Connection: close), so watching the connection alone would miss it.
        _watch(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)  # the TLS socket: shutting it down ends a blocked read the same way


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)
        _watch(connection)  # a kept-alive connection: its socket may be replaced by a reconnect
        _watch(getattr(connection, "sock", None))
        return connection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection
    _get_conn = _WatchedHTTPPool._get_conn


class _Answer(Exception):
    """A query API answer that is not a usable instant vector; the message says what it was instead."""


class _TooLarge(_Answer):
    def __init__(self, limit: int) -> None:
        super().__init__(f"answer too large: it exceeded {limit / MIB:g} MiB")


class _Partial(_Answer):
    """Prometheus answered, but said its answer may lack data (a store of Thanos or Mimir is down)."""


def _read_capped(response: requests.Response, limit: int) -> bytes:
    """The body, decoded, at most `limit` bytes: beyond, the connection is dropped and nothing more read."""
    body = bytearray()
    for chunk in response.iter_content(64 * 1024):
        body += chunk
        if len(body) > limit:
            response.close()
            raise _TooLarge(limit)
    return bytes(body)


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connection pools whose connections a _Deadline can shut, and answers read
    within PROMETHEUS_ANSWER_MAX_BYTES (redirects' bodies too)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def send(self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any) -> requests.Response:
        response = super().send(request, stream=True, **kwargs)
        if not stream:
            response._content = _read_capped(response, PROMETHEUS_ANSWER_MAX_BYTES)
        return response


@dataclass(frozen=True)
class _Failure:
    reason: str
    answered: bool = False  # Prometheus answered, only not usably (partially): it is reachable
    asked: bool = True  # False: no worker was free in time, Prometheus was never asked


class _HostPool:
    """The workers of one Prometheus (scheme, host and port), shared by the clusters that use it: they take
    the clusters' queries in turn, each cluster at most TENANT_SHARE at a time. Threads start on demand and
    end after IDLE_WORKER_SECONDS without work, so a pool no longer used costs nothing."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self._workers = workers
        self._queues: OrderedDict[str, deque[tuple[Callable[[], Any], Future[Any]]]] = OrderedDict()
        self._running: dict[str, int] = {}
        self._queued = 0
        self._threads = 0
        self._idle = 0
        self._closed = False
        self._lock = threading.Condition()

    @property
    def threads(self) -> int:
        with self._lock:
            return self._threads

    def submit(self, tenant: str, job: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            self._queues.setdefault(tenant, deque()).append((job, future))
            self._queued += 1
            if self._queued > self._idle and self._threads < self._workers:
                self._threads += 1
                threading.Thread(target=self._work, name=f"prometheus {self.name}", daemon=True).start()
            self._lock.notify()
        return future

    def close(self) -> None:
        """Evicted: idle workers end now, busy ones after the queries already given to this pool."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def _take(self) -> tuple[str, Callable[[], Any], Future[Any]] | None:
        for tenant, queue in self._queues.items():
            share = self._workers if tenant == NO_TENANT else TENANT_SHARE
            if self._running.get(tenant, 0) >= share:
                continue
            job, future = queue.popleft()
            self._queued -= 1
            self._running[tenant] = self._running.get(tenant, 0) + 1
            if queue:
                self._queues.move_to_end(tenant)  # the next worker serves the next cluster first
            else:
                del self._queues[tenant]
            return tenant, job, future
        return None

    def _next(self) -> tuple[str, Callable[[], Any], Future[Any]] | None:
        with self._lock:
            while (taken := self._take()) is None:
                if self._closed and not self._queued:
                    break
                self._idle += 1
                woken = self._lock.wait(IDLE_WORKER_SECONDS)
                self._idle -= 1
                if not woken and not self._queued:
                    break
            if taken is None:
                self._threads -= 1
            return taken

    def _work(self) -> None:
        while (taken := self._next()) is not None:
            tenant, job, future = taken
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job())
                    except BaseException as error:  # handed to whoever waits, like an executor
                        future.set_exception(error)
            finally:
                with self._lock:
                    self._running[tenant] -= 1
                    if not self._running[tenant]:
                        del self._running[tenant]
                    self._lock.notify_all()  # a query of this cluster may be runnable now


def _host_pool(url: str) -> _HostPool:
    """The workers of one Prometheus."""
    parts = urlsplit(url)
    key = f"{parts.scheme}://{parts.netloc}"
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = _HostPool(key, WORKERS_PER_PROMETHEUS)
            while len(_pools) > PROMETHEUS_POOLS:
                _, old = _pools.popitem(last=False)
                old.close()  # its running queries end at their deadlines, then its threads
        else:
            _pools.move_to_end(key)
        return pool


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
    adapter = _DeadlineAdapter(max_retries=NO_RETRY)
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
        raise _Answer(f"HTTP {response.status_code} {response.reason}")
    answer = response.json()
    samples = instant_vector(answer["data"]["result"])
    warnings = answer.get("warnings")
    if warnings:
        said = "; ".join(str(w) for w in warnings) if isinstance(warnings, list) else str(warnings)
        raise _Partial(f"Prometheus answered partially: {excerpt(said, 160)}")
    return samples


def _query(url: str, expr: str, timeout_s: float, auth: PrometheusAuth | None) -> tuple[Series, ...] | _Failure:
    """One instant query, in a worker thread of this Prometheus, done or failed within `timeout_s`."""
    deadline = _Deadline(timeout_s)
    try:
        with deadline:
            return _instant_query(_client(url, timeout_s, auth), expr, timeout_s)
    except Exception as error:  # anything at all: a check must never raise for Prometheus' answers
        if deadline.expired or isinstance(error, requests.RequestException | _TooLarge):
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


async def _ask(pool: _HostPool, tenant: str, url: str, expr: str, timeout_s: float,
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
    pool = _host_pool(url)
    answers = await asyncio.gather(*(_ask(pool, tenant, url, expr, timeout_s, auth) for expr in queries.values()))
    values = {name: a for name, a in zip(queries, answers, strict=True) if not isinstance(a, _Failure)}
    failed = {name: a for name, a in zip(queries, answers, strict=True) if isinstance(a, _Failure)}
    failures = {name: failure.reason for name, failure in failed.items()}
    error = _summary(failures, len(queries)) if failures else ""
    answered = bool(values) or any(f.answered for f in failed.values()) or not queries
    busy = not answered and all(not f.asked for f in failed.values())
    return MetricsObservation(url=url, reachable=answered, queries=queries, values=values, error=error,
                              failures=failures, busy=busy)
