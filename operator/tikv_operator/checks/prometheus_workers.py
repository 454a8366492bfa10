"""The workers of each Prometheus (scheme, host and port), shared fairly by the clusters that use it.

Isolation: a Prometheus that trickles bytes holds a worker until the query's deadline (prometheus_transport),
and a shared pool of workers full of such queries would blind every other cluster. So each Prometheus has
workers of its own (a bounded number).

Tenants: many clusters may share one Prometheus, so its workers take the clusters' queries in turn, and one
cluster has at most TENANT_SHARE of them at a time: one cluster's slow custom queries cost that cluster's
checks, not the others'.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

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

_pools: OrderedDict[str, HostPool] = OrderedDict()
_pools_lock = threading.Lock()


class HostPool:
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


def host_pool(url: str) -> HostPool:
    """The workers of one Prometheus."""
    parts = urlsplit(url)
    key = f"{parts.scheme}://{parts.netloc}"
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = HostPool(key, WORKERS_PER_PROMETHEUS)
            while len(_pools) > PROMETHEUS_POOLS:
                _, old = _pools.popitem(last=False)
                old.close()  # its running queries end at their deadlines, then its threads
        else:
            _pools.move_to_end(key)
        return pool
