"""Tenants that share an Alertmanager share nothing else: one cluster's spec.alertmanager.timeout or
rotated credentials never change another cluster's delivery, and a connection another cluster's round uses is
never closed under it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web

from tests.unit.test_notifier import NOW, OPEN, Recorder, Server, run, spec
from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.alerts.notifier import Notifier
from tikv_operator.kube.credentials import AlertmanagerCredentials, BearerToken


def posted(server: Server) -> list[tuple[str, str, bool]]:
    """(alertname, severity, firing) of every alert posted; these tests deliver at NOW and a few seconds after,
    so a firing alert ends minutes after NOW (4 resends) and a resolved one at most seconds after it."""
    soon = (NOW + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [(a["labels"]["alertname"], a["labels"]["severity"], a["endsAt"] > soon)
            for post in server.posts for a in post]


def test_a_tenant_with_a_zero_timeout_does_not_stop_another_tenants_pages() -> None:
    run(_a_tenant_with_a_zero_timeout_does_not_stop_another_tenants_pages)


async def _a_tenant_with_a_zero_timeout_does_not_stop_another_tenants_pages(state: Server, url: str) -> None:
    notifier = Notifier(AlertPolicy(), recorder=Recorder())
    notifier.register("team-b", "basic", spec(url), lambda: [OPEN], timeout_s=10.0)
    notifier.register("team-a", "basic", spec(url), lambda: [], timeout_s=0.0)  # the smallest the schema allows
    for target in list(notifier.targets.values()):
        await notifier.deliver(target, NOW)
    assert ("store_down", "warning", True) in posted(state), "team-b's page arrives"
    assert notifier.report("team-b", "basic").targets[0].ok is True  # type: ignore[union-attr]
    assert notifier.report("team-a", "basic").targets[0].ok is False  # type: ignore[union-attr]
    await notifier.close()


def test_two_timeouts_on_one_alertmanager_keep_their_connections() -> None:
    run(_two_timeouts_on_one_alertmanager_keep_their_connections)


async def _two_timeouts_on_one_alertmanager_keep_their_connections(state: Server, url: str) -> None:
    notifier = Notifier(AlertPolicy(), recorder=Recorder())
    notifier.register("team-a", "basic", spec(url), lambda: [OPEN], timeout_s=5.0)
    notifier.register("team-b", "basic", spec(url), lambda: [], timeout_s=7.0)
    clients = {key: target.client for key, target in notifier.targets.items()}
    for _ in range(3):  # every check registers again
        notifier.register("team-a", "basic", spec(url), lambda: [OPEN], timeout_s=5.0)
        notifier.register("team-b", "basic", spec(url), lambda: [], timeout_s=7.0)
    assert {key: target.client for key, target in notifier.targets.items()} == clients, "no client replaced"
    await notifier.close()


def test_a_changed_timeout_neither_resolves_nor_doubles_the_clusters_alerts() -> None:
    run(_a_changed_timeout_neither_resolves_nor_doubles_the_clusters_alerts)


async def _a_changed_timeout_neither_resolves_nor_doubles_the_clusters_alerts(state: Server, url: str) -> None:
    notifier = Notifier(AlertPolicy(), recorder=Recorder())
    notifier.register("ns", "basic", spec(url), lambda: [OPEN], timeout_s=10.0)
    await notifier.deliver(next(iter(notifier.targets.values())), NOW)
    notifier.register("ns", "basic", spec(url), lambda: [OPEN], timeout_s=5.0)
    for step in range(1, 4):
        for target in list(notifier.targets.values()):
            await notifier.deliver(target, NOW + timedelta(seconds=step))
    assert all(firing for _, _, firing in posted(state)), "nothing resolved while the ticket is open"
    await notifier.close()


def test_rotated_credentials_never_close_a_connection_mid_request() -> None:
    async def main() -> None:
        received, release = asyncio.Event(), asyncio.Event()
        posts: list[object] = []

        async def slow_alerts(request: web.Request) -> web.Response:
            body = await request.json()
            received.set()
            await asyncio.wait_for(release.wait(), 10)
            posts.append(body)
            return web.Response()

        app = web.Application()
        app.router.add_post("/api/v2/alerts", slow_alerts)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        try:
            notifier = Notifier(AlertPolicy(), recorder=Recorder())
            old = AlertmanagerCredentials(auth=BearerToken("am-auth", "old-token"))
            notifier.register("ns", "basic", spec(url), lambda: [OPEN], credentials=old)
            (target,) = notifier.targets.values()
            round_ = asyncio.create_task(notifier.deliver(target, NOW))
            await asyncio.wait_for(received.wait(), 10)  # the post is in flight
            new = AlertmanagerCredentials(auth=BearerToken("am-auth", "new-token"))
            notifier.register("ns", "basic", spec(url), lambda: [OPEN], credentials=new)
            await asyncio.sleep(0.1)
            release.set()
            await asyncio.wait_for(round_, 10)
            assert target.health is not None
            assert target.health.ok is True, target.health
            assert len(posts) == 1
            await notifier.close()
        finally:
            await runner.cleanup()

    asyncio.run(main())
