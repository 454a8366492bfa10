"""ClusterLoop: a cluster's settings are worked out once per spec, not once per turn or per check; a daemon
started before the services exist does nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
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
from tikv_operator.checks.core.invariants import configure
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
