"""The edit handler records a person's edit with a few retries and never raises (kopf does not retry
on.event handlers); /healthz fails only while a check runs past its budget, and says which; the
open-tickets gauge is read from a snapshot the event loop takes."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import kopf
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from tests.unit.adapters.fake_kube import FakeCore, FakeObjects
from tikv_operator import handlers, health, self_metrics
from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.alerts.notifier import Notifier
from tikv_operator.kube.credentials import SecretCache
from tikv_operator.kube.writer import KubeWriter
from tikv_operator.services import Services
from tikv_operator.tickets.core.ticket import TicketView
from tikv_operator.watchdog import Watchdog

NAME = "basic-store-down-s4-1"


def resolved_by_hand(objects: FakeObjects) -> dict[str, Any]:
    """`kubectl patch --subresource=status -p '{"status":{"phase":"Resolved"}}'` on a held ticket."""
    objects.put("tikvclusters", {"apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster",
                                 "metadata": {"name": "basic", "namespace": "ns", "uid": "u-1"}})
    return objects.put("operatortickets", {
        "apiVersion": "tikvops.io/v1alpha1", "kind": "OperatorTicket",
        "metadata": {"name": NAME, "namespace": "ns", "uid": "t-1",
                     "labels": {"tikvops.io/phase": "open", "tikvops.io/held": "true"},
                     "annotations": {"tikvops.io/recorded": "Open/held"}},
        "spec": {"cluster": "basic", "invariant": "store_down", "store": "4", "held": True},
        "status": {"phase": "Resolved", "severity": "critical"},
    })


def memo_with(writer: KubeWriter, core: FakeCore) -> kopf.Memo:
    return kopf.Memo(services=Services(writer=writer, notifier=Notifier(AlertPolicy()),
                                       credentials=SecretCache(core)))  # type: ignore[arg-type]


def run_handler(objects: FakeObjects, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> FakeCore:
    monkeypatch.setattr(handlers, "RECORD_BACKOFF_S", 0.0)
    core = FakeCore()
    memo = memo_with(KubeWriter(objects, core), core)  # type: ignore[arg-type]
    asyncio.run(handlers.ticket_changed(type="MODIFIED", body=body, namespace="ns", memo=memo))
    return core


def failing(times: int, status: int = 503) -> Any:
    left = {"n": times}

    def fault(verb: str, name: str) -> ApiException | None:
        if verb.startswith("patch") and left["n"] > 0:
            left["n"] -= 1
            return ApiException(status=status, reason="ServiceUnavailable")
        return None

    return fault


def test_an_api_blip_while_recording_a_manual_resolve_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = FakeObjects(failing(2))
    core = run_handler(objects, resolved_by_hand(objects), monkeypatch)
    ticket = objects.store[("operatortickets", NAME)]
    assert ticket["metadata"]["labels"] == {"tikvops.io/phase": "resolved", "tikvops.io/held": "false"}
    assert ticket["spec"]["held"] is False
    assert ticket["status"]["resolution"] == "manual"
    assert core.reasons(NAME) == ["TicketResolvedManually"]


def test_a_longer_outage_is_left_to_the_next_check_without_raising(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    objects = FakeObjects(failing(10))
    with caplog.at_level(logging.WARNING, logger="tikv_operator"):
        core = run_handler(objects, resolved_by_hand(objects), monkeypatch)
    assert core.events == []
    assert sum(verb.startswith("patch") for verb, _, _ in objects.calls) == handlers.RECORD_ATTEMPTS
    assert "the next check records it" in caplog.text
    assert "ServiceUnavailable" in caplog.text


def test_a_ticket_changed_again_is_recorded_from_its_newer_event(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = FakeObjects()
    stale = resolved_by_hand(objects)
    objects.put("operatortickets", objects.store[("operatortickets", NAME)])  # a newer version exists
    core = run_handler(objects, stale, monkeypatch)
    assert sum(verb.startswith("patch") for verb, _, _ in objects.calls) == 1  # one 409, no retries
    assert core.events == []


def test_liveness_fails_only_for_a_check_past_its_budget() -> None:
    now = {"t": 0.0}
    dog = Watchdog(stall_timeout_s=60, clock=lambda: now["t"])
    with dog.check("ns", "slow-pd", probe_timeouts_s=15):
        now["t"] = 70.0  # PD taking its full timeout, and more: within budget
        assert dog.stalled() == []
        now["t"] = 76.0
        assert dog.stalled() == ["the check of ns/slow-pd has run 76s, past its 75s budget"]
    assert dog.stalled() == []  # the check finished


def test_healthz_answers_500_with_the_stuck_checks_while_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    now = {"t": 0.0}
    dog = Watchdog(stall_timeout_s=1, clock=lambda: now["t"])
    monkeypatch.setattr(health, "WATCHDOG", dog)

    async def get() -> tuple[int, dict[str, Any]]:
        response = await health._healthz(None)  # type: ignore[arg-type]
        return response.status, json.loads(response.text or "")

    assert asyncio.run(get()) == (200, {"status": "ok", "checksRunning": 0})
    with dog.check("ns", "basic", probe_timeouts_s=1):
        now["t"] = 5.0
        status, body = asyncio.run(get())
    assert (status, body["status"]) == (500, "stalled")
    assert body["stalled"] == ["the check of ns/basic has run 5s, past its 2s budget"]


def test_the_open_tickets_gauge_reads_a_snapshot_not_the_live_index() -> None:
    live: list[TicketView] = [TicketView("a", "c", "store_down", "1", phase="Open", severity="critical"),
                              TicketView("b", "c", "store_down", "2", phase="Resolved", severity="critical")]
    gauge = self_metrics.OpenTickets()
    gauge.count(live)
    live.append(TicketView("c", "c", "store_down", "3", phase="Open", severity="warning"))  # the loop moves on
    (family,) = gauge.collect()
    assert {s.labels["severity"]: s.value for s in family.samples}["critical"] == 1
    assert {s.labels["severity"]: s.value for s in family.samples}["warning"] == 0


def test_the_edit_handler_does_not_race_the_operators_own_transition(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watch event of the status half of an auto-resolve reaches the edit handler before the writer has
    written the labels: the handler must leave that ticket to the writer, whose Event must not be lost."""
    from tikv_operator.tickets.core.lifecycle import PatchTicket, TicketEvent

    objects = FakeObjects()
    core = FakeCore()
    writer = KubeWriter(objects, core)  # type: ignore[arg-type]
    memo = memo_with(writer, core)
    objects.put("tikvclusters", {"apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster",
                                 "metadata": {"name": "basic", "namespace": "ns", "uid": "u-1"}})
    version = objects.put("operatortickets", {
        "apiVersion": "tikvops.io/v1alpha1", "kind": "OperatorTicket",
        "metadata": {"name": NAME, "namespace": "ns",
                     "labels": {"tikvops.io/phase": "open", "tikvops.io/held": "false"},
                     "annotations": {"tikvops.io/recorded": "Open/unheld"}},
        "spec": {"cluster": "basic", "invariant": "store_down", "store": "4", "held": False},
        "status": {"phase": "Open", "severity": "critical"},
    })["metadata"]["resourceVersion"]
    original = objects.patch_namespaced_custom_object_status

    async def status_then_the_watch_event(*args: Any, **kwargs: Any) -> dict[str, Any]:
        written = await original(*args, **kwargs)
        await handlers.ticket_changed(type="MODIFIED", body=written, namespace="ns", memo=memo)
        return written

    monkeypatch.setattr(objects, "patch_namespaced_custom_object_status", status_then_the_watch_event)
    resolve = PatchTicket(NAME, status={"phase": "Resolved", "resolution": "auto"},
                          labels={"tikvops.io/phase": "resolved", "tikvops.io/held": "false"},
                          annotations={"tikvops.io/recorded": "Resolved/unheld"},
                          event=TicketEvent("TicketResolved", f"{NAME}: condition cleared"), resource_version=version)
    applied = asyncio.run(writer.apply("ns", objects.store[("tikvclusters", "basic")], (resolve,)))
    assert not applied.failed
    assert core.reasons(NAME) == ["TicketResolved"]
    assert objects.store[("operatortickets", NAME)]["metadata"]["labels"]["tikvops.io/phase"] == "resolved"
