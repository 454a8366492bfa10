"""The Alertmanager client against local HTTP servers: ordinary answers, and one that never ends."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from aiohttp import web

from tests.unit.adapters.local_servers import serving
from tikv_operator.alerts import alertmanager
from tikv_operator.alerts.alertmanager import AlertmanagerClient, DeliveryError

# As API v2 answers one (a silence without its status is no silence of ours: skipped).
SILENCE = {"id": "s1", "status": {"state": "active"},
           "matchers": [{"name": "ticket", "value": "t-1", "isRegex": False, "isEqual": True}]}


def _silences(endless: bool) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not endless:
            return web.json_response([SILENCE])
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b"[")
        with contextlib.suppress(ConnectionError):
            for _ in range(20_000):  # bounded: about 100 MiB
                await response.write((json.dumps(SILENCE) + ",").encode() * 50)
        return response

    async def post(_request: web.Request) -> web.Response:
        return web.json_response({"silenceID": "s2"})

    app = web.Application()
    app.router.add_get("/api/v2/silences", handle)
    app.router.add_post("/api/v2/silences", post)
    return app


def _ask(app: web.Application) -> tuple[list[dict[str, object]] | DeliveryError, str]:
    async def scenario() -> tuple[list[dict[str, object]] | DeliveryError, str]:
        async with serving(app) as url:
            client = AlertmanagerClient(url, 20.0)
            try:
                found: list[dict[str, object]] | DeliveryError = await client.silences([{"name": "ticket",
                                                                                          "value": "t-1"}])
            except DeliveryError as error:
                found = error
            created = await client.create_silence({"matchers": []})
            await client.aclose()
            return found, created

    return asyncio.run(scenario())


def test_answers_are_read_and_parsed() -> None:
    found, created = _ask(_silences(endless=False))

    assert found == [SILENCE]
    assert created == "s2"


def test_an_answer_beyond_the_cap_is_a_delivery_error_without_reading_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alertmanager, "ALERTMANAGER_ANSWER_MAX_BYTES", 1024 * 1024, raising=False)

    found, _ = _ask(_silences(endless=True))

    assert isinstance(found, DeliveryError)
    assert str(found) == "GET /api/v2/silences: answer too large: it exceeded 1 MiB"
