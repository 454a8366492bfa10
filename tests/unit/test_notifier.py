"""The notifier against an HTTP server on 127.0.0.1 that answers as Alertmanager's API v2 does (or 500s):
what is posted, when, and what a failure does to the cluster's AlertsDelivered report. The real
Alertmanager is exercised by tests/integration/operator/test_alertmanager_delivery.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest
from aiohttp import web

from tikv_operator.alerts import notifier as notifier_module
from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.alerts.notifier import Notifier
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_operator.tickets.core.ticket import TicketView

NOW = datetime.now(UTC)
OPEN = TicketView(name="basic-store-down-s2-1", cluster="basic", invariant="store_down", store="2", phase="Open",
                  severity="warning", first_seen=NOW - timedelta(minutes=1), message="store 2 is Disconnected")


class Server:
    def __init__(self) -> None:
        self.posts: list[list[dict[str, Any]]] = []
        self.silences: dict[str, dict[str, Any]] = {}
        self.fail = False
        # Hostile answers, by route: (method, path) -> the response to give instead of the usual one.
        self.answers: dict[tuple[str, str], Callable[[], web.Response]] = {}

    def hostile(self, request: web.Request) -> web.Response | None:
        answer = self.answers.get((request.method, request.path))
        return answer() if answer is not None else None

    async def alerts(self, request: web.Request) -> web.Response:
        if (answer := self.hostile(request)) is not None:
            return answer
        if self.fail:
            return web.Response(status=500, text="storage full")
        self.posts.append(await request.json())
        return web.Response()

    async def create(self, request: web.Request) -> web.Response:
        if (answer := self.hostile(request)) is not None:
            return answer
        body = await request.json()
        silence_id = f"s{len(self.silences) + 1}"
        self.silences[silence_id] = {**body, "id": silence_id, "status": {"state": "active"}}
        return web.json_response({"silenceID": silence_id})

    async def list(self, request: web.Request) -> web.Response:
        if (answer := self.hostile(request)) is not None:
            return answer
        return web.json_response(list(self.silences.values()))

    async def expire(self, request: web.Request) -> web.Response:
        self.silences[request.match_info["id"]]["status"] = {"state": "expired"}
        return web.Response()


class Recorder:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, str, str | None]] = []

    async def record_silence(self, namespace: str, ticket: str, alertmanager: str, silence_id: str | None) -> None:
        self.records.append((namespace, ticket, alertmanager, silence_id))


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_post("/api/v2/alerts", state.alerts)
    app.router.add_post("/api/v2/silences", state.create)
    app.router.add_get("/api/v2/silences", state.list)
    app.router.add_delete("/api/v2/silence/{id}", state.expire)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state, f"http://127.0.0.1:{port}"
    await runner.cleanup()


class _Now(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        return NOW


@pytest.fixture(autouse=True)
def started_at_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The notifier's own clock (its start: the watchdog's startsAt, a resolved watchdog's endsAt) reads NOW,
    the time these tests deliver at."""
    monkeypatch.setattr(notifier_module, "datetime", _Now)


def run(scenario: Callable[[Server, str], Awaitable[None]]) -> None:
    async def main() -> None:
        async with serving() as (state, url):
            await scenario(state, url)

    asyncio.run(main())


def spec(url: str) -> TiKVClusterSpec:
    return TiKVClusterSpec.model_validate({"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://p:9090"},
                                           "alertmanager": {"urls": [url], "labels": {"team": "storage"}}})


def posted(server: Server) -> list[tuple[str, str, bool]]:
    """(alertname, severity, firing) of every alert posted, in order."""
    # Firing ends 4 resends after the time a round is delivered at, which these tests take from NOW, never the
    # clock: a long suite runs minutes after NOW was taken at import (the notifier's start too: started_at_now).
    soon = (NOW + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [(a["labels"]["alertname"], a["labels"]["severity"], a["endsAt"] > soon)
            for post in server.posts for a in post]


def test_a_ticket_is_posted_with_the_watchdog_and_an_escalation_resolves_the_old_severity() -> None:
    run(_a_ticket_is_posted_with_the_watchdog_and_an_escalation_resolves_the_old_severity)


async def _a_ticket_is_posted_with_the_watchdog_and_an_escalation_resolves_the_old_severity(
    state: Server, url: str,
) -> None:
    tickets = [OPEN]
    notifier = Notifier(AlertPolicy(), recorder=Recorder())
    notifier.register("ns", "basic", spec(url), lambda: tickets)
    (target,) = notifier.targets.values()
    await notifier.deliver(target, NOW)
    assert sorted(posted(state)) == [("TiKVOperatorWatchdog", "none", True), ("store_down", "warning", True)]
    await notifier.deliver(target, NOW + timedelta(seconds=5))
    assert len(state.posts) == 1, "nothing is due 5 s later"
    tickets = [replace(OPEN, severity="critical")]
    await notifier.deliver(target, NOW + timedelta(seconds=10))
    assert sorted(posted(state)[2:]) == [("store_down", "critical", True), ("store_down", "warning", False)]
    assert notifier.report("ns", "basic").targets[0].ok is True  # type: ignore[union-attr]
    await notifier.close()


def test_a_new_leader_resolves_the_old_severity_of_a_ticket_that_rose_before_the_old_leader_sent_it() -> None:
    run(_a_new_leader_resolves_the_old_severity_of_a_ticket_that_rose_before_the_old_leader_sent_it)


async def _a_new_leader_resolves_the_old_severity_of_a_ticket_that_rose_before_the_old_leader_sent_it(
    state: Server, url: str,
) -> None:
    """Found by the fault soak: the leader wrote the escalation to critical and was SIGKILLed before it
    posted the warning alert resolved; the new leader had never sent the warning one, so it fired on until its
    endsAt (4 resend intervals), minutes after the ticket resolved."""
    tickets = [replace(OPEN, severity="critical")]
    successor = Notifier(AlertPolicy(), recorder=Recorder())  # a fresh process: nothing sent by it yet
    successor.register("ns", "basic", spec(url), lambda: tickets)
    (target,) = successor.targets.values()
    await successor.deliver(target, NOW)
    assert sorted(posted(state)) == [("TiKVOperatorWatchdog", "none", True), ("store_down", "critical", True),
                                     ("store_down", "warning", False)]
    tickets = [replace(OPEN, severity="critical", phase="Resolved", resolved_at=NOW + timedelta(seconds=30))]
    await successor.deliver(target, NOW + timedelta(seconds=31))
    assert sorted(posted(state)[3:]) == [("store_down", "critical", False)], "the warning was already resolved"
    await successor.close()


def test_a_failing_alertmanager_is_reported_backed_off_and_caught_up() -> None:
    run(_a_failing_alertmanager_is_reported_backed_off_and_caught_up)


async def _a_failing_alertmanager_is_reported_backed_off_and_caught_up(state: Server, url: str) -> None:
    notifier = Notifier(AlertPolicy())
    notifier.register("ns", "basic", spec(url), lambda: [OPEN])
    (target,) = notifier.targets.values()
    state.fail = True
    await notifier.deliver(target, NOW)
    report = notifier.report("ns", "basic")
    assert report is not None
    health = report.targets[0]
    assert health.ok is False
    assert health.error == "POST /api/v2/alerts: HTTP 500 Internal Server Error: storage full"
    assert target.retry_at > 0, "the next attempt waits"
    state.fail = False
    await notifier.deliver(target, NOW + timedelta(seconds=2))
    assert {a["labels"]["alertname"] for a in state.posts[0]} == {"store_down", "TiKVOperatorWatchdog"}
    assert notifier.report("ns", "basic").targets[0].ok is True  # type: ignore[union-attr]
    await notifier.close()


def test_an_acknowledgement_is_one_silence_recorded_and_expired_on_resolve() -> None:
    run(_an_acknowledgement_is_one_silence_recorded_and_expired_on_resolve)


async def _an_acknowledgement_is_one_silence_recorded_and_expired_on_resolve(state: Server, url: str) -> None:
    recorder = Recorder()
    tickets = [replace(OPEN, phase="Acknowledged")]
    notifier = Notifier(AlertPolicy(), recorder=recorder)
    notifier.register("ns", "basic", spec(url), lambda: tickets)
    (target,) = notifier.targets.values()
    await notifier.deliver(target, NOW)
    await notifier.deliver(target, NOW + timedelta(seconds=1))  # the index has not caught up: no second one
    assert list(state.silences) == ["s1"]
    assert recorder.records == [("ns", OPEN.name, url, "s1")]
    # A restarted operator (nothing in memory, the record lost) finds the silence instead of making another.
    again = Notifier(AlertPolicy(), recorder=recorder)
    again.register("ns", "basic", spec(url), lambda: tickets)
    await again.deliver(next(iter(again.targets.values())), NOW + timedelta(seconds=2))
    assert list(state.silences) == ["s1"]
    tickets = [replace(OPEN, phase="Resolved", resolved_at=NOW, silences={url: "s1"})]
    await notifier.deliver(target, NOW + timedelta(seconds=3))
    assert state.silences["s1"]["status"]["state"] == "expired"
    assert recorder.records[-1] == ("ns", OPEN.name, url, None)
    await notifier.close()
    await again.close()


def test_a_deleted_cluster_resolves_its_alerts() -> None:
    run(_a_deleted_cluster_resolves_its_alerts)


async def _a_deleted_cluster_resolves_its_alerts(state: Server, url: str) -> None:
    notifier = Notifier(AlertPolicy())
    notifier.register("ns", "basic", spec(url), lambda: [OPEN])
    (target,) = notifier.targets.values()
    await notifier.deliver(target, NOW)
    notifier.retire("ns", "basic")
    await notifier.deliver(target, NOW + timedelta(seconds=1))
    assert sorted(posted(state)[2:]) == [("TiKVOperatorWatchdog", "none", False), ("store_down", "warning", False)]
    await notifier.close()


DEEP = "[" * 100_000 + "]" * 100_000
OUR_SILENCE = {"createdBy": "tikv-operator", "status": {"state": "active"},
               "matchers": [{"name": "namespace", "value": "ns", "isRegex": False},
                            {"name": "ticket", "value": OPEN.name, "isRegex": False}]}
HOSTILE_ANSWERS: dict[str, tuple[tuple[str, str], Callable[[], web.Response]]] = {
    "html": (("POST", "/api/v2/alerts"), lambda: web.Response(status=502, text="<html><body>Bad gateway</body></html>",
                                                             content_type="text/html")),
    "huge": (("POST", "/api/v2/alerts"), lambda: web.Response(status=500, text="x" * 5_000_000)),
    "invalid-utf8": (("POST", "/api/v2/alerts"), lambda: web.Response(
        status=500, body=b"\xff\xfe\xfa broken \xc3", headers={"Content-Type": "text/plain; charset=utf-8"})),
    "unknown-charset": (("POST", "/api/v2/alerts"), lambda: web.Response(
        status=500, body=b"\xff oops", headers={"Content-Type": "text/plain; charset=no-such-charset"})),
    "deep-json-error": (("POST", "/api/v2/alerts"), lambda: web.Response(status=400, text=DEEP)),
    "json-without-fields": (("POST", "/api/v2/alerts"), lambda: web.json_response({"code": 601}, status=422)),
    "silences-deep": (("GET", "/api/v2/silences"), lambda: web.Response(text=DEEP, content_type="application/json")),
    "silence-id-deep": (("POST", "/api/v2/silences"), lambda: web.Response(text=DEEP,
                                                                         content_type="application/json")),
    "silence-id-not-text": (("POST", "/api/v2/silences"), lambda: web.json_response({"silenceID": 7})),
}


@pytest.mark.parametrize("case", HOSTILE_ANSWERS)
def test_an_alertmanager_answer_of_any_shape_is_a_delivery_failure_backed_off_and_reported(case: str) -> None:
    """Never an exception past the delivery's error path: that would skip the backoff and the AlertsDelivered
    condition (the health the cluster's status reports)."""
    route, answer = HOSTILE_ANSWERS[case]

    async def scenario(state: Server, url: str) -> None:
        state.answers[route] = answer
        notifier = Notifier(AlertPolicy(), recorder=Recorder())
        notifier.register("ns", "basic", spec(url), lambda: [replace(OPEN, phase="Acknowledged")])
        (target,) = notifier.targets.values()
        await notifier.deliver(target, NOW)
        health = notifier.report("ns", "basic").targets[0]  # type: ignore[union-attr]
        assert health.ok is False, health
        assert health.error
        assert len(health.error) < 1000, health.error
        assert target.retry_at > 0, "the next attempt waits"
        await notifier.close()

    run(scenario)


def test_silences_of_odd_shapes_are_no_silences_of_ours() -> None:
    async def scenario(state: Server, url: str) -> None:
        # Each almost a silence of this ticket: a status that is text, matchers that are not objects, no id.
        state.answers[("GET", "/api/v2/silences")] = lambda: web.json_response(
            [{**OUR_SILENCE, "id": "x1", "status": "active"}, {**OUR_SILENCE, "id": "x2", "matchers": "ticket"},
             {**OUR_SILENCE, "id": "x3", "matchers": [1, None]}, {**OUR_SILENCE}, "s9", None])
        notifier = Notifier(AlertPolicy(), recorder=Recorder())
        notifier.register("ns", "basic", spec(url), lambda: [replace(OPEN, phase="Acknowledged")])
        (target,) = notifier.targets.values()
        await notifier.deliver(target, NOW)
        assert notifier.report("ns", "basic").targets[0].ok is True  # type: ignore[union-attr]
        assert list(state.silences) == ["s1"], "a silence of its own, made once"
        await notifier.close()

    run(scenario)


def test_a_round_that_raises_is_a_failure_backed_off_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever escapes a round (a bug): the loop goes on, and the round counts as failed."""
    import tikv_operator.alerts.notifier as notifier_module

    monkeypatch.setattr(notifier_module, "TICK_S", 0.0)

    async def scenario(_state: Server, url: str) -> None:
        notifier = Notifier(AlertPolicy())
        notifier.register("ns", "basic", spec(url), lambda: [OPEN])
        (target,) = notifier.targets.values()

        async def broken(*_args: Any) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(notifier, "deliver", broken)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if target.health is not None:
                break
        health = notifier.report("ns", "basic").targets[0]  # type: ignore[union-attr]
        assert (health.ok, health.error) == (False, "delivery round failed (RuntimeError)")
        assert target.retry_at > 0
        assert target.task is not None
        assert not target.task.done(), "the loop goes on"
        await notifier.close()

    run(scenario)
