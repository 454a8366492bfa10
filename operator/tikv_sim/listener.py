"""An HTTP listener on a fixed loopback port that can be closed and reopened.

Closing must look like a dead process to clients: the listening socket goes away (connection
refused) and kept-alive connections are dropped too, or Prometheus would keep scraping through them.
"""

from collections.abc import Callable

from aiohttp import web

HOST = "127.0.0.1"
# Handlers still running when a listener closes (a hanging PD) are cancelled after this long.
_SHUTDOWN_TIMEOUT = 0.2


class Listener:
    def __init__(self, make_app: Callable[[], web.Application], port: int = 0) -> None:
        self._make_app = make_app
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def is_open(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def open(self) -> None:
        if self._runner is not None:
            return
        runner = web.AppRunner(self._make_app(), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
