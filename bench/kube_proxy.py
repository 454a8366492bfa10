"""A counting reverse proxy for the Kubernetes API server, on 127.0.0.1, run in a background thread.

The operator is given a kubeconfig that points at the proxy over plain HTTP (loopback only) with a
placeholder token; the proxy speaks TLS to the real API server, trusting the platform's CA, and puts
the real token on every request. Every request is recorded (time, method, resource, name, status)
before it is forwarded; responses, watch streams included, are passed through chunk by chunk."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.counting import ApiRequest, classify

# Hop-by-hop headers (RFC 9110 7.6.1) and those the proxy sets itself.
_DROP_REQUEST = {"host", "authorization", "connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                 "proxy-authorization", "content-length"}
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}


@dataclass(frozen=True)
class Recorded:
    at: float  # time.monotonic() when the request arrived
    request: ApiRequest


@dataclass
class CountingProxy:
    upstream: str
    ca_file: str
    token: str
    records: list[Recorded] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    # --- what was counted ------------------------------------------------------------------------
    def writes_between(self, start: float, end: float) -> list[Recorded]:
        with self._lock:
            return [r for r in self.records if start <= r.at < end and r.request.write]

    # --- serving ---------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.records.append(Recorded(time.monotonic(), classify(request.method, request.path_qs)))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
        headers["Authorization"] = f"Bearer {self.token}"
        body = await request.read()
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body if body else None, allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _DROP_RESPONSE:
                    response.headers.add(key, value)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                pass  # the client went away (kopf ends its watch requests itself): nothing left to pass on
            return response

    async def _start(self) -> None:
        context = ssl.create_default_context(cafile=self.ca_file)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=0), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        # Watch streams still open (the operator was killed, or never closed them): end them here.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def start(self) -> CountingProxy:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kube-proxy", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig for the operator: the proxy, plain HTTP on loopback, a placeholder token."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "proxy", "user": {"token": "replaced-by-the-counting-proxy"}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy", "namespace": namespace}}],
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path
