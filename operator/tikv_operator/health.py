"""GET /healthz: 200 while the checking machinery works, 500 with the stuck checks while it does not.

Served on the operator's event loop, so a blocked loop fails it too. Not kopf's liveness endpoint: that one
answers a failed probe with an unhandled exception, which puts a traceback in the log at every probe."""

from __future__ import annotations

from aiohttp import web

from tikv_operator.watchdog import WATCHDOG


async def _healthz(_: web.Request) -> web.Response:
    stalled = WATCHDOG.stalled()
    if stalled:
        return web.json_response({"status": "stalled", "stalled": stalled}, status=500)
    return web.json_response({"status": "ok", "checksRunning": len(WATCHDOG.running)})


async def serve_health(host: str, port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
