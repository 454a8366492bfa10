"""The operator's own connection to the Kubernetes API: every request with a total timeout.

kubernetes_asyncio sends a request without one unless the caller passes `_request_timeout`, and aiohttp's
default has no limit: a half-open connection to the API server would stall a cluster's checks for the
~15 minutes TCP takes to notice, while /healthz stays 200. Watches are kopf's, on its own connections.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

# Long enough for a busy API server (its own request timeout is 60 s for mutations, but a write that
# takes 10 s is already a failing control plane); short enough that the next check retries soon.
API_TIMEOUT_SECONDS = 10.0


class TimedApiClient(client.ApiClient):
    """An ApiClient whose requests without their own `_request_timeout` get `timeout_s` in total."""

    def __init__(self, configuration: client.Configuration | None = None, timeout_s: float = API_TIMEOUT_SECONDS,
                 ) -> None:
        super().__init__(configuration)
        self.timeout_s = timeout_s

    def call_api(self, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return super().call_api(*args, _request_timeout=_request_timeout or self.timeout_s, **kwargs)
