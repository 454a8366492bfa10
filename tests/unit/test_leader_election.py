"""Leadership as the process sees it, and the fence every write passes."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tikv_operator.election.core.leases import LeaseRecord, LeaseTiming
from tikv_operator.election.leadership import Leadership, LeaseElector, default_namespace, new_identity
from tikv_operator.kube.api import NotLeading, TimedApiClient


def api_client(**options: Any) -> TimedApiClient:
    """aiohttp wants a running loop to make its connector; no request is sent in these tests."""
    async def make() -> TimedApiClient:
        return TimedApiClient(**options)
    return asyncio.run(make())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_without_election_the_process_always_acts() -> None:
    assert Leadership().acting()


def test_a_leader_acts_until_its_renew_deadline_by_its_own_clock() -> None:
    clock = Clock()
    leadership = Leadership(elected=True, timing=LeaseTiming(), identity="a", clock=clock)
    assert not leadership.acting()
    leadership.start(renewed_at=clock.now)
    assert leadership.acting()
    assert leadership.term == 1
    clock.now += 9.9
    assert leadership.acting()
    clock.now += 0.1  # frozen or cut off: nothing renewed, and the election loop has not even run
    assert not leadership.acting()
    leadership.stop()
    leadership.start(renewed_at=clock.now)
    assert leadership.term == 2  # a new term: what the earlier one remembered is not trusted


def test_the_namespace_comes_from_the_downward_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "tikv-system")
    assert default_namespace() == "tikv-system"


def test_identities_are_the_pod_name_and_unique_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "tikv-operator-7d9f-abcde")
    first, second = new_identity(), new_identity()
    assert first.startswith("tikv-operator-7d9f-abcde_")
    assert first != second


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_the_fence_refuses_writes_before_any_request(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    monkeypatch.setattr(client.ApiClient, "call_api", lambda self, path, verb, *a, **k: sent.append(verb))
    api = api_client(fence=lambda: False)
    with pytest.raises(NotLeading, match="does not hold the Lease"):
        api.call_api("/apis/tikvops.io/v1alpha1/namespaces/ns/operatortickets", method)
    assert sent == []


def test_the_fence_lets_reads_through_and_writes_while_leading(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, Any]] = []
    monkeypatch.setattr(client.ApiClient, "call_api",
                        lambda self, path, verb, *a, **k: sent.append((verb, k["_request_timeout"])))
    leading = [False]
    def fence() -> bool:
        return leading[0]
    api = api_client(fence=fence, timeout_s=3.0, user_agent="tikv-operator/1 (a)")
    api.call_api("/api/v1/namespaces/ns/secrets/s", "GET")
    leading[0] = True
    api.call_api("/api/v1/namespaces/ns/events", "POST")
    assert sent == [("GET", 3.0), ("POST", 3.0)]
    assert api.user_agent == "tikv-operator/1 (a)"


class MemoryLock:
    """A Lease with the API server's optimistic concurrency (409 on a stale resourceVersion), in memory,
    recording every write as the audit log would."""

    where = "lease ns/tikv-operator"

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.writes: list[str] = []

    async def get(self) -> tuple[LeaseRecord, str] | None:
        return None if self.record is None else (self.record, str(self.version))

    async def create(self, record: LeaseRecord) -> str:
        self.writes.append(f"create {record.holder}")
        if self.record is not None:
            raise ApiException(status=409)
        self.record, self.version = record, 1
        return "1"

    async def replace(self, record: LeaseRecord, version: str) -> str:
        self.writes.append(f"replace {record.holder or '-'}")
        if version != str(self.version):
            raise ApiException(status=409)
        self.record, self.version = record, self.version + 1
        return str(self.version)


def elector(lock: MemoryLock, name: str, clock: Clock) -> LeaseElector:
    return LeaseElector(lock, Leadership(elected=True, identity=name, clock=clock))  # type: ignore[arg-type]


def test_two_replicas_one_leader_and_a_frozen_one_does_not_write_when_it_wakes() -> None:
    async def scenario() -> None:
        clock, lock = Clock(), MemoryLock()
        a, b = elector(lock, "a", clock), elector(lock, "b", clock)
        await a.attempt()
        await b.attempt()
        assert a.leadership.acting()
        assert not b.leadership.acting()
        # a freezes; b sees no renewal for the lease duration and takes over.
        for _ in range(8):
            clock.now += 2
            await b.attempt()
        assert b.leadership.acting()
        assert lock.record is not None
        assert lock.record.holder == "b"
        assert lock.record.transitions == 1
        written = len(lock.writes)
        await a.attempt()  # a wakes up believing it leads
        assert not a.leadership.acting()
        assert lock.writes[written:] == []  # it read the Lease, saw b's, and wrote nothing
    asyncio.run(scenario())


def test_a_released_lease_is_taken_at_the_next_attempt() -> None:
    async def scenario() -> None:
        clock, lock = Clock(), MemoryLock()
        a, b = elector(lock, "a", clock), elector(lock, "b", clock)
        await a.attempt()
        await b.attempt()
        await a.release()
        assert not a.leadership.acting()
        assert lock.record is not None
        assert lock.record.holder == ""
        clock.now += 2
        await b.attempt()
        assert b.leadership.acting()
    asyncio.run(scenario())


def test_a_release_after_a_renewal_whose_answer_was_lost_still_hands_the_lease_back() -> None:
    async def scenario() -> None:
        clock, lock = Clock(), MemoryLock()
        a = elector(lock, "a", clock)
        await a.attempt()
        lock.version += 1  # a's renewal landed, but SIGTERM cancelled it before its answer was read
        await a.release()
        assert lock.record is not None
        assert lock.record.holder == ""  # a standby takes over at its next try, not after 15 s
    asyncio.run(scenario())


def test_a_release_never_overwrites_another_replicas_lease() -> None:
    async def scenario() -> None:
        clock, lock = Clock(), MemoryLock()
        a = elector(lock, "a", clock)
        await a.attempt()
        assert lock.record is not None
        lock.record, lock.version = dataclasses.replace(lock.record, holder="b"), lock.version + 1
        await a.release()
        assert lock.record.holder == "b"
        assert lock.writes[-1] == "replace -"  # tried with its version once, got 409, read, wrote nothing more
    asyncio.run(scenario())
