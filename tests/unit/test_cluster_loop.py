"""ClusterLoop: a cluster's settings are worked out once per spec, not once per turn or per check; a daemon
started before the services exist does nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest

from tests.unit.adapters.fake_kube import FakeCore, FakeObjects
from tests.unit.test_checker import SPEC, Stopped, cluster_body, observed
from tikv_operator import handlers
from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.alerts.notifier import Notifier
from tikv_operator.checks.cluster_loop import ClusterLoop
from tikv_operator.checks.core import settings as settings_module
from tikv_operator.checks.core.settings import configure
from tikv_operator.kube.credentials import SecretCache
from tikv_operator.kube.writer import KubeWriter
from tikv_operator.model.cluster_resource import TiKVClusterSpec
from tikv_operator.services import Services


def test_a_spec_is_worked_out_once_over_many_turns_and_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    configured: list[TiKVClusterSpec] = []

    def counted(spec: TiKVClusterSpec) -> Any:
        configured.append(spec)
        return configure(spec)

    checks: list[Any] = []

    async def observe(*args: Any) -> Any:
        checks.append(args)
        return observed("Up")

    monkeypatch.setattr(settings_module, "configure", counted)
    monkeypatch.setattr(ClusterLoop, "_observe", lambda self, *args: observe(*args))
    monkeypatch.setattr("tikv_operator.checks.cluster_loop.SPEC_POLL_S", 0.0)
    objects, core = FakeObjects(), FakeCore()
    body = cluster_body(spec={**SPEC, "interval": "1s"})
    objects.put("tikvclusters", body)
    services = Services(writer=KubeWriter(objects, core), notifier=Notifier(AlertPolicy()),  # type: ignore[arg-type]
                        credentials=SecretCache(core), default_interval=timedelta(seconds=30))  # type: ignore[arg-type]

    async def run() -> None:
        loop = ClusterLoop("ns", "basic", kopf.Body(body), services, {})  # type: ignore[arg-type]
        stopped = Stopped(rounds=3)
        await loop.turn(stopped)  # the first check runs at once
        loop.last_start = 0.0  # long past: the next turn checks again
        await loop.turn(stopped)
        await loop.turn(stopped)  # not due yet: waits

    asyncio.run(run())
    assert len(checks) == 2
    assert len(configured) == 1
    assert "lastCheckTime" in objects.store[("tikvclusters", "basic")]["status"]


def test_the_daemon_does_nothing_before_the_services_exist() -> None:
    asyncio.run(handlers.watch_cluster(name="basic", namespace="ns", body=kopf.Body({}), stopped=Stopped(1),
                                       memo=kopf.Memo(), tickets_by_cluster={}))  # type: ignore[arg-type]


def test_a_refused_spec_keeps_its_open_tickets_paging_after_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec only the operator refuses (a labelMatchers key the schema cannot check) after a restart: the
    cluster's open tickets are still sent where its alertmanager section says, else their alerts lapse and
    Alertmanager resolves them while nothing is resolved."""
    from tikv_operator.tickets.core.ticket import TicketView

    monkeypatch.setattr("tikv_operator.checks.cluster_loop.SPEC_POLL_S", 0.0)
    objects, core = FakeObjects(), FakeCore()
    refused = {**SPEC, "prometheus": {"url": "http://prom:9090", "labelMatchers": {"not-a-label": "x"}},
               "alertmanager": {"urls": ["http://am-0:9093"], "labels": {"team": "storage"}, "timeout": "3s"}}
    body = cluster_body(spec=refused)
    objects.put("tikvclusters", body)
    ticket = TicketView(name="basic-store-down-s1-1", cluster="basic", invariant="store_down", store="1",
                        phase="Open", severity="critical", message="store 1 is Down")
    index = {("ns", "basic"): [ticket]}

    async def run() -> None:
        notifier = Notifier(AlertPolicy())  # a restarted operator: nothing registered
        services = Services(writer=KubeWriter(objects, core), notifier=notifier,  # type: ignore[arg-type]
                            credentials=SecretCache(core), default_interval=timedelta(seconds=30))  # type: ignore[arg-type]
        loop = ClusterLoop("ns", "basic", kopf.Body(body), services, index)  # type: ignore[arg-type]
        await loop.turn(Stopped(rounds=1))
        assert "spec rejected" in objects.store[("tikvclusters", "basic")]["status"]["message"]
        assert notifier.registered("ns", "basic"), "a refused spec stopped its delivery"
        registration = notifier.clusters[("ns", "basic")]
        assert [key[0] for key in registration.keys] == ["http://am-0:9093"]
        assert registration.context.labels == {"team": "storage"}
        assert list(registration.tickets()) == [ticket]
        alerts = notifier.desired(registration.keys[0], datetime.now(UTC))
        assert {a.wire()["labels"]["alertname"] for a in alerts} == {"store_down", "TiKVOperatorWatchdog"}
        await notifier.close()

    asyncio.run(run())


def test_a_refused_spec_keeps_the_delivery_of_the_last_good_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within one process: the registration made from the last good spec stays as it was."""
    monkeypatch.setattr("tikv_operator.checks.cluster_loop.SPEC_POLL_S", 0.0)
    objects, core = FakeObjects(), FakeCore()
    good = {**SPEC, "alertmanager": {"urls": ["http://am-0:9093"]}}
    body = cluster_body(spec={**good, "alertmanager": {"urls": ["ftp://refused"], "labels": {"bad-label": "x"}}})
    objects.put("tikvclusters", body)

    async def run() -> None:
        notifier = Notifier(AlertPolicy())
        notifier.register("ns", "basic", TiKVClusterSpec.model_validate(good), lambda: [])
        services = Services(writer=KubeWriter(objects, core), notifier=notifier,  # type: ignore[arg-type]
                            credentials=SecretCache(core), default_interval=timedelta(seconds=30))  # type: ignore[arg-type]
        loop = ClusterLoop("ns", "basic", kopf.Body(body), services, {})  # type: ignore[arg-type]
        await loop.turn(Stopped(rounds=1))
        assert [key[0] for key in notifier.clusters[("ns", "basic")].keys] == ["http://am-0:9093"]
        await notifier.close()

    asyncio.run(run())
