"""The operator's Kubernetes requests end within their timeout even when the API server never answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from tests.unit.adapters.local_servers import serving
from tikv_operator.kube.api import TimedApiClient


def stalled_api_server() -> web.Application:
    async def stall(_request: web.Request) -> web.Response:
        await asyncio.sleep(30)  # a half-open connection: the request was sent, nothing comes back
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stall)
    return app


@asynccontextmanager
async def against_a_stalled_server(timeout_s: float | None) -> AsyncIterator[client.ApiClient]:
    """A TimedApiClient (or, with None, kubernetes_asyncio's own ApiClient) talking to a stalled server."""
    async with serving(stalled_api_server()) as url:
        configuration = client.Configuration(host=url)
        api = client.ApiClient(configuration) if timeout_s is None else TimedApiClient(configuration, timeout_s)
        async with api:
            yield api


def test_a_request_to_a_stalled_api_server_ends_at_the_timeout() -> None:
    async def scenario() -> float:
        async with against_a_stalled_server(0.5) as api:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await client.CustomObjectsApi(api).get_namespaced_custom_object(
                    "tikvops.io", "v1alpha1", "ns", "tikvclusters", "a")
            return time.monotonic() - started

    assert asyncio.run(scenario()) < 2.0


def test_a_caller_may_still_choose_its_own_timeout() -> None:
    async def scenario() -> float:
        async with against_a_stalled_server(20) as api:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await client.CoreV1Api(api).read_namespace("x", _request_timeout=0.3)
            return time.monotonic() - started

    assert asyncio.run(scenario()) < 2.0


def test_the_library_client_alone_would_wait_on() -> None:
    """Why TimedApiClient exists: without it the request is still waiting when our own wait_for ends it."""
    async def scenario() -> bool:
        async with against_a_stalled_server(None) as api:
            try:
                await asyncio.wait_for(client.CoreV1Api(api).read_namespace("x"), 1.5)
            except TimeoutError:
                return True
            return False

    assert asyncio.run(scenario())
