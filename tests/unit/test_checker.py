"""ClusterChecker and the daemon around it, against an in-memory API: tickets are read after the probes,
a ticket edited during a check is not overwritten, openTickets counts what exists, the grace clocks are
taken up from the status, and a paused or unusable spec is said on the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from tests.unit.adapters.fake_kube import FakeCore, FakeObjects
from tikv_operator import handlers
from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.alerts.notifier import Notifier
from tikv_operator.checks.checker import ClusterChecker
from tikv_operator.checks.cluster_loop import ClusterLoop
from tikv_operator.checks.core.observation import MetricsObservation, Observation, PDObservation, Store
from tikv_operator.checks.core.settings import ClusterSettings, settings_of
from tikv_operator.kube.credentials import SecretCache
from tikv_operator.kube.writer import KubeWriter
from tikv_operator.services import Services
from tikv_operator.tickets.core.ticket import TicketView

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
SPEC = {"pd": {"url": "http://pd:2379"}, "prometheus": {"url": "http://prom:9090"}}
TICKETS = "operatortickets"


def cluster_body(status: dict[str, Any] | None = None, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "tikvops.io/v1alpha1", "kind": "TiKVCluster",
            "metadata": {"name": "basic", "namespace": "ns", "uid": "u-1", "generation": 1},
            "spec": spec or SPEC, "status": status or {}}


def settings_for(body: dict[str, Any]) -> ClusterSettings:
    """The settings a check of `body` runs with (the operator's default interval, 30s)."""
    settings = settings_of(body["spec"], timedelta(seconds=30))
    assert isinstance(settings, ClusterSettings)
    return settings


def observed(state: str = "Up") -> Observation:
    pd = PDObservation("http://pd:2379", True, (Store("4", "tikv-4:20160", state_name=state),))
    return Observation("basic", T0, pd, MetricsObservation("http://prom:9090", True))


def open_ticket(objects: FakeObjects, held: bool = False) -> dict[str, Any]:
    return objects.put(TICKETS, {
        "apiVersion": "tikvops.io/v1alpha1", "kind": "OperatorTicket",
        "metadata": {"name": "basic-store-down-s4-1", "namespace": "ns",
                     "labels": {"tikvops.io/phase": "open", "tikvops.io/held": "true" if held else "false"},
                     "annotations": {"tikvops.io/recorded": "Open/held" if held else "Open/unheld"},
                     "creationTimestamp": "2026-11-25T02:50:00Z"},
        "spec": {"cluster": "basic", "invariant": "store_down", "store": "4", "held": held},
        "status": {"phase": "Open", "severity": "critical", "occurrences": 3, "lastSeen": "2026-11-25T02:59:00Z",
                   "firstSeen": "2026-11-25T02:50:00Z"},
    })


def index_of(objects: FakeObjects) -> Callable[[], list[TicketView]]:
    return lambda: [TicketView.from_resource(o) for (plural, _), o in objects.store.items() if plural == TICKETS]


def checker_for(objects: FakeObjects, observe: Callable[[], Awaitable[Observation]]) -> ClusterChecker:
    async def observer(*_: Any) -> Observation:
        return await observe()

    objects.put("tikvclusters", cluster_body())
    return ClusterChecker("ns", "basic", observer, KubeWriter(objects, FakeCore()))  # type: ignore[arg-type]


def hold(objects: FakeObjects) -> None:
    """What `kubectl patch --type merge -p '{"spec":{"held":true}}'` does."""
    ticket = objects.store[(TICKETS, "basic-store-down-s4-1")]
    ticket["spec"]["held"] = True
    objects.put(TICKETS, ticket)


def test_a_hold_made_while_the_probes_run_is_planned_on_not_overwritten() -> None:
    objects = FakeObjects()
    open_ticket(objects)

    async def probes_during_which_a_person_holds_the_ticket() -> Observation:
        hold(objects)
        return observed("Up")  # the store is back: without the hold the ticket would auto-resolve

    checker = checker_for(objects, probes_during_which_a_person_holds_the_ticket)
    result = asyncio.run(checker.check(cluster_body(), settings_for(cluster_body()), index_of(objects), now=T0))
    ticket = objects.store[(TICKETS, "basic-store-down-s4-1")]
    assert ticket["status"]["phase"] == "Open"
    assert not result.conflicts


def test_a_hold_made_after_the_plan_makes_the_resolve_a_conflict_not_a_lost_update() -> None:
    objects = FakeObjects()
    open_ticket(objects)
    checker = checker_for(objects, lambda: asyncio.sleep(0, observed("Up")))
    snapshot = index_of(objects)()  # the index lags: it still has the version before the hold
    hold(objects)
    result = asyncio.run(checker.check(cluster_body(), settings_for(cluster_body()), lambda: snapshot, now=T0))
    assert result.conflicts == {"basic-store-down-s4-1"}
    assert objects.store[(TICKETS, "basic-store-down-s4-1")]["status"]["phase"] == "Open"
    # The next check plans from the hold: it records it (no edit handler runs here) and resolves nothing.
    again = asyncio.run(checker.check(cluster_body(), settings_for(cluster_body()), index_of(objects),
                                      now=T0 + timedelta(seconds=30)))
    assert [op.event.reason for op in again.plan.operations if op.event] == ["TicketHeld"]
    assert not again.conflicts
    assert objects.store[(TICKETS, "basic-store-down-s4-1")]["status"]["phase"] == "Open"


def test_open_tickets_counts_only_tickets_that_exist() -> None:
    def refuse_creates(verb: str, name: str) -> ApiException | None:
        return ApiException(status=422, reason="Invalid") if verb == "create" else None

    objects = FakeObjects(refuse_creates)
    checker = checker_for(objects, lambda: asyncio.sleep(0, observed("Down")))
    result = asyncio.run(checker.check(cluster_body(), settings_for(cluster_body()), index_of(objects), now=T0))
    assert result.failed_writes == 1
    status = objects.store[("tikvclusters", "basic")]["status"]
    assert status["openTickets"] == 0
    assert status["health"] != "Degraded"


def test_grace_clocks_are_taken_up_from_the_status_the_last_process_wrote() -> None:
    objects = FakeObjects()
    pending = [{"invariant": "store_down", "store": "4", "firstSeen": "2026-11-25T02:58:00Z"}]
    checker = checker_for(objects, lambda: asyncio.sleep(0, observed("Disconnected")))
    body = cluster_body({"pendingViolations": pending})
    asyncio.run(checker.check(body, settings_for(body), index_of(objects), now=T0))
    # Disconnected for 2 minutes by the clock in the status: past the 1m grace period, so a ticket opens.
    (ticket,) = index_of(objects)()
    assert ticket.invariant == "store_down"
    assert ticket.first_seen == datetime(2026, 11, 25, 2, 58, tzinfo=UTC)


def first_check_after_a_handover(first_seen: str, last_check: str
                                 ) -> tuple[FakeObjects, ClusterChecker, dict[str, Any]]:
    """Store 4 Disconnected, pending since `first_seen` by the status the last process wrote at `last_check`;
    this process's first check runs at T0."""
    objects = FakeObjects()
    pending = [{"invariant": "store_down", "store": "4", "firstSeen": first_seen}]
    checker = checker_for(objects, lambda: asyncio.sleep(0, observed("Disconnected")))
    body = cluster_body({"pendingViolations": pending, "lastCheckTime": last_check})
    asyncio.run(checker.check(body, settings_for(body), index_of(objects), now=T0))
    return objects, checker, body


def test_a_grace_clock_is_not_carried_over_a_time_nobody_checked() -> None:
    # The last process checked at 02:57 and died; 3 minutes later nobody knows what happened in between.
    objects, checker, body = first_check_after_a_handover("2026-11-25T02:57:00Z", "2026-11-25T02:57:00Z")
    assert index_of(objects)() == []
    status = objects.store[("tikvclusters", "basic")]["status"]
    restarted = {"invariant": "store_down", "store": "4", "firstSeen": "2026-11-25T03:00:00Z"}
    assert status["pendingViolations"] == [restarted]
    # Watched from then on: its own grace later, a ticket.
    asyncio.run(checker.check(body, settings_for(body), index_of(objects), now=T0 + timedelta(seconds=30)))
    assert index_of(objects)() == []
    asyncio.run(checker.check(body, settings_for(body), index_of(objects), now=T0 + timedelta(seconds=60)))
    (ticket,) = index_of(objects)()
    assert ticket.first_seen == T0


def test_a_grace_clock_is_carried_over_a_handover_within_its_checks() -> None:
    objects, _, _ = first_check_after_a_handover("2026-11-25T02:58:30Z", "2026-11-25T02:59:00Z")
    (ticket,) = index_of(objects)()
    assert ticket.first_seen == datetime(2026, 11, 25, 2, 58, 30, tzinfo=UTC)


def test_checks_that_stopped_within_one_process_restart_the_grace_clock_too() -> None:
    objects = FakeObjects()
    checker = checker_for(objects, lambda: asyncio.sleep(0, observed("Disconnected")))
    asyncio.run(checker.check(cluster_body(), settings_for(cluster_body()), index_of(objects), now=T0))
    # The API server was away for 5 minutes: no check of this process went through.
    later = T0 + timedelta(minutes=5)
    asyncio.run(checker.check(cluster_body(), settings_for(cluster_body()), index_of(objects), now=later))
    assert index_of(objects)() == []
    assert [p.first_seen for p in checker.pending or []] == ["2026-11-25T03:05:00Z"]


class Stopped:
    """kopf.DaemonStopped as the daemon uses it: falsy until stopped, and a wait that stops after `rounds`."""

    reason = None  # not stopped for a reason: the operator keeps the cluster's alerts

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def __bool__(self) -> bool:
        return self.rounds <= 0

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109  (kopf's signature)
        self.rounds -= 1
        await asyncio.sleep(0)
        return self.rounds <= 0


def run_daemon(body: dict[str, Any], objects: FakeObjects, rounds: int = 1) -> None:
    objects.put("tikvclusters", body)
    core = FakeCore()
    memo = kopf.Memo(services=Services(default_interval=timedelta(seconds=30), writer=KubeWriter(objects, core),  # type: ignore[arg-type]
                                       notifier=Notifier(AlertPolicy()), credentials=SecretCache(core)))  # type: ignore[arg-type]
    asyncio.run(handlers.watch_cluster(name="basic", namespace="ns", body=body, stopped=Stopped(rounds),
                                       memo=memo, tickets_by_cluster={}))


def test_the_daemon_says_a_spec_it_cannot_use_on_the_cluster() -> None:
    objects = FakeObjects()
    body = cluster_body(spec={**SPEC, "prometheus": {"url": "http://prom:9090", "labelMatchers": {"1bad": "x"}}})
    run_daemon(body, objects)
    status = objects.store[("tikvclusters", "basic")]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], status["health"]) == ("False", "InvalidSpec", "Unknown")
    assert ready["message"].startswith("spec.prometheus.labelMatchers: ")


def test_the_daemon_of_a_paused_cluster_says_so_and_does_not_check() -> None:
    objects = FakeObjects()
    run_daemon(cluster_body(spec={**SPEC, "paused": True}), objects)
    assert objects.store[("tikvclusters", "basic")]["status"] == {"message": "checks paused"}


def test_a_cancelled_daemon_leaves_no_metric_series(monkeypatch: pytest.MonkeyPatch) -> None:
    from tikv_operator import self_metrics

    async def cancelled(*_: Any, **__: Any) -> None:
        self_metrics.CHECKS.labels("ns", "basic").inc()
        raise asyncio.CancelledError

    monkeypatch.setattr(ClusterLoop, "turn", cancelled)
    with pytest.raises(asyncio.CancelledError):
        run_daemon(cluster_body(), FakeObjects())
    assert ("ns", "basic") not in {tuple(s.labels.values()) for m in self_metrics.CHECKS.collect()
                                   for s in m.samples}

