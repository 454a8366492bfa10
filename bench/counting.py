"""Counting HTTP requests: who asked what. Pure classification of Kubernetes API requests (used by the
counting proxy) and in-process counters wrapped around requests' and httpx' send()."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class ApiRequest:
    """One Kubernetes API request as the counting proxy sees it."""

    method: str
    resource: str  # "operatortickets", "operatortickets/status", "events", "tikvclusters/status"...
    namespace: str
    name: str
    watch: bool

    @property
    def write(self) -> bool:
        return self.method in WRITE_VERBS


def classify(method: str, target: str) -> ApiRequest:
    """`PATCH /apis/tikvops.io/v1alpha1/namespaces/ns/tikvclusters/c/status` -> method, resource
    "tikvclusters/status", namespace, name. Non-resource paths (/version, /openapi...) keep their path."""
    parts = urlsplit(target)
    segments = [s for s in parts.path.split("/") if s]
    watch = "watch=true" in parts.query or "watch=1" in parts.query
    method = method.upper()
    if segments[:1] == ["api"] and len(segments) >= 2:
        rest = segments[2:]
    elif segments[:1] == ["apis"] and len(segments) >= 3:
        rest = segments[3:]
    else:
        return ApiRequest(method, "/" + "/".join(segments), "", "", watch)
    if rest[:1] == ["watch"]:  # the old /watch/ path prefix
        watch, rest = True, rest[1:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return ApiRequest(method, "(group discovery)", namespace, "", watch)
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    return ApiRequest(method, resource, namespace, name, watch)


class RequestCounter:
    """Counts HTTP requests sent by this process through requests and httpx, by (host:port, path).

    Installed by patching Session.send / AsyncClient.send / Client.send for the duration of `installed()`:
    everything those libraries put on the wire goes through send(), retries and redirects included."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def reset(self) -> None:
        self.counts.clear()

    def record(self, url: str) -> None:
        parts = urlsplit(url)
        self.counts[(parts.netloc, parts.path)] += 1

    def total(self, path: str, netloc: str | None = None) -> int:
        return sum(n for (loc, p), n in self.counts.items() if p == path and (netloc is None or loc == netloc))

    @contextlib.contextmanager
    def installed(self) -> Iterator[RequestCounter]:
        original_requests = requests.Session.send
        original_async = httpx.AsyncClient.send
        original_sync = httpx.Client.send
        counter = self

        def requests_send(session: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
            counter.record(str(request.url))
            return original_requests(session, request, **kwargs)

        async def async_send(client: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> Any:
            counter.record(str(request.url))
            return await original_async(client, request, **kwargs)

        def sync_send(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
            counter.record(str(request.url))
            return original_sync(client, request, **kwargs)

        requests.Session.send = requests_send  # type: ignore[method-assign,assignment]
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign,assignment]
        httpx.Client.send = sync_send  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            requests.Session.send = original_requests  # type: ignore[method-assign,assignment]
            httpx.AsyncClient.send = original_async  # type: ignore[method-assign,assignment]
            httpx.Client.send = original_sync  # type: ignore[method-assign,assignment]
