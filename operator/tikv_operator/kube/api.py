"""The operator's own connection to the Kubernetes API: every request with a total timeout.

kubernetes_asyncio sends a request without one unless the caller passes `_request_timeout`, and aiohttp's
default has no limit: a half-open connection to the API server would stall a cluster's checks for the
~15 minutes TCP takes to notice, while /healthz stays 200. Watches are kopf's, on its own connections.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

# Long enough for a busy API server (its own request timeout is 60 s for mutations, but a write that
# takes 10 s is already a failing control plane); short enough that the next check retries soon.
API_TIMEOUT_SECONDS = 10.0


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

T = TypeVar("T")


class InFlight:
    """The fenced writes of this process that are on their way: a replica that stops leading waits for them
    before it hands the Lease back (election/leadership.py release)."""

    def __init__(self) -> None:
        self._ends: set[asyncio.Future[None]] = set()

    @property
    def count(self) -> int:
        return len(self._ends)

    async def track(self, request: Awaitable[T]) -> T:
        end: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ends.add(end)
        try:
            return await request
        finally:
            self._ends.discard(end)
            end.set_result(None)

    async def drained(self, timeout_s: float) -> bool:
        """Whether none is left, waiting up to `timeout_s` for those on their way."""
        if self._ends:
            await asyncio.wait(set(self._ends), timeout=timeout_s)
        return not self._ends


FENCED_WRITES = InFlight()


class NotLeading(Exception):
    """A write refused because this replica does not hold the Lease (any more): another may act now."""


class TimedApiClient(client.ApiClient):
    """An ApiClient whose requests without their own `_request_timeout` get `timeout_s` in total, and whose
    writes pass `fence` first: with leader election, every write of the operator (tickets, statuses,
    Events, silences' records) goes through here, so a replica that lost its Lease cannot write, whichever
    code path tries."""

    def __init__(self, configuration: client.Configuration | None = None, timeout_s: float = API_TIMEOUT_SECONDS,
                 fence: Callable[[], bool] | None = None, user_agent: str | None = None,
                 fence_time_left: Callable[[], float | None] | None = None) -> None:
        super().__init__(configuration)
        self.timeout_s = timeout_s
        self.fence = fence
        # Seconds before another replica may act (Leadership.time_left): a write's timeout never runs past it,
        # so one let through just before the renew deadline has ended when a standby takes over.
        self.fence_time_left = fence_time_left
        if user_agent:
            # The API server's audit log and managedFields then name the operator (and the replica).
            self.user_agent = user_agent

    def call_api(self, resource_path: str, method: str, *args: Any, _request_timeout: Any = None,
                 **kwargs: Any) -> Any:
        timeout = _request_timeout or self.timeout_s
        if self.fence is None or method.upper() not in WRITE_METHODS:
            return super().call_api(resource_path, method, *args, _request_timeout=timeout, **kwargs)
        left = self.fence_time_left() if self.fence_time_left is not None else None
        if not self.fence() or (left is not None and left <= 0):
            raise NotLeading(f"{method} {resource_path} refused: this replica does not hold the Lease")
        if left is not None and isinstance(timeout, int | float):
            timeout = min(timeout, left)
        request = super().call_api(resource_path, method, *args, _request_timeout=timeout, **kwargs)
        return FENCED_WRITES.track(request) if asyncio.iscoroutine(request) else request


def server_message(error: ApiException, limit: int = 500) -> str:
    """kubectl's wording, in one line: `Error from server (Forbidden): <the Status message>`. The API
    server's message says which field of which object it refused (a 422 names the label that is invalid);
    a Status never holds a Secret's data."""
    message = ""
    reason = error.reason or ""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict):
        message = str(body.get("message") or "")
        reason = str(body.get("reason") or reason)
    if not message:
        message = f"HTTP {error.status}"
    return " ".join(f"Error from server ({reason}): {message}".split())[:limit]


def short_error(error: BaseException) -> str:
    """One line for the log: the API server's own message for an ApiException, else the error's type and text."""
    if isinstance(error, ApiException):
        return server_message(error)
    return f"{type(error).__name__}: {error}"[:300]
