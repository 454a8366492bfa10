"""An HTTP listener on a fixed loopback port that can be closed and reopened.

Closing must look like a dead process to clients: the listening socket goes away (connection
refused) and kept-alive connections are dropped too, or Prometheus would keep scraping through them.

A listener that must come back on its port (a restarted store: PD knows its status address) takes a
port below the kernel's ephemeral range: there, no outgoing connection can take it while it is closed.
"""

import asyncio
import errno
import random
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

HOST = "127.0.0.1"
# Handlers still running when a listener closes (a hanging PD) are cancelled after this long.
_SHUTDOWN_TIMEOUT = 0.2
_LOWEST_PORT = 10_000
_PICKS = 50


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


_PORTS = random.Random()  # noqa: S311 (spreading ports, not secrets)


class Listener:
    def __init__(self, make_app: Callable[[], web.Application], port: int = 0, host: str = HOST) -> None:
        self._make_app = make_app
        self.port = port
        self.host = host  # any 127.0.0.0/8 address binds on Linux without configuration
        self._runner: web.AppRunner | None = None
        # A fault and a timeline step may open or close the same listener at once.
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def open(self) -> None:
        async with self._lock:
            await self._open()

    async def _open(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self._make_app(), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await self._bind(runner)
        except OSError:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def _bind(self, runner: web.AppRunner) -> None:
        if self.port:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
            return
        top = _ephemeral_start()
        if top > _LOWEST_PORT + _PICKS:
            for _ in range(_PICKS):
                try:
                    port = _PORTS.randrange(_LOWEST_PORT, top)
                    await web.TCPSite(runner, self.host, port, reuse_address=True).start()
                    return
                except OSError as error:
                    if error.errno != errno.EADDRINUSE:
                        raise
        await web.TCPSite(runner, self.host, 0, reuse_address=True).start()

    async def close(self) -> None:
        async with self._lock:
            runner, self._runner = self._runner, None
            if runner is not None:
                await runner.cleanup()
