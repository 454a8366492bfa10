"""An Event is best effort (rule 10): one that times out or loses its connection costs that Event, never
the rest of the check's plan."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.unit.adapters.fake_kube import FakeCore, FakeObjects
from tests.unit.adapters.test_kube_writer import CLUSTER, create
from tikv_operator.kube.api import NotLeading
from tikv_operator.kube.writer import KubeWriter


class FailingEvents(FakeCore):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    async def create_namespaced_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize("error", [TimeoutError(), aiohttp.ServerDisconnectedError(), ConnectionResetError()],
                         ids=["timeout", "disconnected", "reset"])
def test_an_event_that_fails_on_the_wire_does_not_stop_the_plan(error: BaseException) -> None:
    objects = FakeObjects()
    w = KubeWriter(objects, FailingEvents(error))  # type: ignore[arg-type]
    first, second = create("basic-store-down-s4-1"), create("basic-store-down-s5-1")
    applied = asyncio.run(w.apply("ns", CLUSTER, (first, second)))
    assert not applied.failed
    assert ("operatortickets", "basic-store-down-s5-1") in objects.store, "the second ticket was created"


def test_an_event_refused_by_the_fence_still_stops_the_writes() -> None:
    """Not leading is not an Event's failure: the replica must stop writing."""
    w = KubeWriter(FakeObjects(), FailingEvents(NotLeading("POST refused")))  # type: ignore[arg-type]
    with pytest.raises(NotLeading):
        asyncio.run(w.apply("ns", CLUSTER, (create(),)))
