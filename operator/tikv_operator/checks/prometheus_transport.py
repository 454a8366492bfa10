"""The HTTP transport that bounds one Prometheus query: a total deadline from its start, and a cap on what
is read of its answer.

Isolation: requests' timeout bounds each socket read, not a query, so a Prometheus that trickles bytes
would hold a worker for ever. So each query has a total deadline from its start, at which its connection is
shut down (redirects included: they go through the same watched connections).

Every answer is read up to PROMETHEUS_ANSWER_MAX_BYTES ("answer too large" beyond).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from tikv_operator.checks.pd_client import MIB

# The most of one answer the operator reads. A series of an instant vector is ~200-300 bytes of JSON: a
# check's queries over 10,000 stores are a few MiB, so 32 MiB is far beyond any real TiKV cluster; a custom
# query such as {__name__=~".+"} is what reaches it, and reading it whole would starve every other cluster.
PROMETHEUS_ANSWER_MAX_BYTES = 32 * MIB

_local = threading.local()


class Deadline:
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

    def __enter__(self) -> Deadline:
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
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
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
    deadline: Deadline | None = getattr(_local, "deadline", None)
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


class Answer(Exception):
    """A query API answer that is not a usable instant vector; the message says what it was instead."""


class TooLarge(Answer):
    def __init__(self, limit: int) -> None:
        super().__init__(f"answer too large: it exceeded {limit / MIB:g} MiB")


def _read_capped(response: requests.Response, limit: int) -> bytes:
    """The body, decoded, at most `limit` bytes: beyond, the connection is dropped and nothing more read."""
    body = bytearray()
    for chunk in response.iter_content(64 * 1024):
        body += chunk
        if len(body) > limit:
            response.close()
            raise TooLarge(limit)
    return bytes(body)


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connection pools whose connections a Deadline can shut, and answers read
    within PROMETHEUS_ANSWER_MAX_BYTES (redirects' bodies too)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def send(self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any) -> requests.Response:
        response = super().send(request, stream=True, **kwargs)
        if not stream:
            response._content = _read_capped(response, PROMETHEUS_ANSWER_MAX_BYTES)
        return response
