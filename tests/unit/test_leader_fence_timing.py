"""The fence's margin: a write let through just before the renew deadline is answered (or given up) before a
standby may take the Lease, and a replica that shuts down hands the Lease back only after its writes ended."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.unit.test_leader_election import Clock, MemoryLock, api_client, elector
from tikv_operator.election.core.leases import LeaseTiming
from tikv_operator.election.leadership import Leadership
from tikv_operator.kube.api import API_TIMEOUT_SECONDS, TimedApiClient


def test_a_timing_that_leaves_no_time_for_a_write_is_refused() -> None:
    assert any("time for one API request" in p for p in LeaseTiming(lease_duration_s=10.5,
                                                                    renew_deadline_s=10).problems())
    assert LeaseTiming().problems() == []


def test_a_write_sent_at_the_renew_deadline_ends_before_a_standby_may_act(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[float] = []
    monkeypatch.setattr(client.ApiClient, "call_api",
                        lambda self, path, verb, *a, **k: sent.append(k["_request_timeout"]))
    clock = Clock()
    leadership = Leadership(elected=True, timing=LeaseTiming(), identity="a", clock=clock)
    leadership.start(renewed_at=clock.now)
    api = api_client(fence=leadership.acting, fence_time_left=leadership.time_left)
    api.call_api("/api/v1/namespaces/ns/events", "POST")  # just renewed: the usual timeout
    clock.now += 9.9  # the last moment the fence lets a write through
    api.call_api("/api/v1/namespaces/ns/events", "POST")
    api.call_api("/api/v1/namespaces/ns/secrets/s", "GET")  # a read changes nothing anyone relies on
    assert sent[0] == API_TIMEOUT_SECONDS
    # A standby may take over 15 s after the renewal, 5.1 s from now: the write is over by then.
    assert sent[1] <= 15 - 9.9 + 1e-6
    assert sent[2] == API_TIMEOUT_SECONDS


def test_a_release_waits_for_the_writes_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        clock, lock = Clock(), MemoryLock()
        a = elector(lock, "a", clock)
        await a.attempt()
        done = asyncio.Event()
        order: list[str] = []

        async def slow_write(self: Any, path: str, verb: str, *args: Any, **kwargs: Any) -> None:
            await asyncio.sleep(0.2)
            order.append("ticket patched")
            done.set()

        monkeypatch.setattr(client.ApiClient, "call_api", slow_write)
        api = TimedApiClient(fence=a.leadership.acting)
        write = asyncio.create_task(api.call_api("/apis/tikvops.io/v1alpha1/namespaces/ns/operatortickets/t",
                                                 "PATCH"))
        await asyncio.sleep(0.01)  # the write is in flight
        real_replace = lock.replace

        async def replace(record: Any, version: str) -> str:
            order.append("lease released")
            return await real_replace(record, version)

        lock.replace = replace  # type: ignore[method-assign]
        await a.release()
        await write
        assert order == ["ticket patched", "lease released"]
        await api.close()

    asyncio.run(scenario())


def test_run_refuses_a_lease_duration_that_leaves_no_time_for_a_write() -> None:
    from tests.unit.test_cli import run_refused

    assert "time for one API request" in run_refused("--leader-elect", "--leader-election-lease-duration", "10500ms")
