"""What grows with time or with clusters is bounded: retention deletes a wave of expired tickets a few per
check, the open-tickets gauge counts one cluster per check, metric label sets of Alertmanagers no longer used
and of custom invariants no longer violated go, and a target whose resolved alerts cannot be delivered is
dropped after the retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from tests.unit.core.test_lifecycle import T0, finding, plan, ticket
from tests.unit.test_notifier import NOW, OPEN, Server, run, spec
from tikv_operator import self_metrics
from tikv_operator.alerts.core.delivery import AlertPolicy
from tikv_operator.alerts.notifier import Notifier
from tikv_operator.tickets.core.lifecycle import MAX_DELETIONS_PER_CHECK, DeleteTicket
from tikv_operator.tickets.core.ticket import TicketView


def test_a_wave_of_expired_tickets_is_deleted_a_few_per_check_oldest_first() -> None:
    wave = [ticket(f"basic-store-down-s4-{n}", "Resolved", resolution="auto",
                   resolved_at=T0 - timedelta(hours=168, minutes=n)) for n in range(1, 3 * MAX_DELETIONS_PER_CHECK)]
    deleted = [op.name for op in plan([finding("ok")], wave).operations if isinstance(op, DeleteTicket)]
    assert len(deleted) == MAX_DELETIONS_PER_CHECK
    oldest = sorted(wave, key=lambda t: t.resolved_at)[:MAX_DELETIONS_PER_CHECK]  # type: ignore[arg-type,return-value]
    assert set(deleted) == {t.name for t in oldest}


def test_the_open_tickets_gauge_is_counted_per_cluster_and_forgets_a_deleted_one() -> None:
    gauge = self_metrics.OpenTickets()
    gauge.count_cluster("ns", "a", [TicketView("a-1", "a", "store_down", "1", phase="Open", severity="critical")])
    gauge.count_cluster("ns", "b", [TicketView("b-1", "b", "store_down", "1", phase="Open", severity="critical"),
                                    TicketView("b-2", "b", "store_down", "2", phase="Resolved", severity="warning")])
    (family,) = gauge.collect()
    assert {s.labels["severity"]: s.value for s in family.samples}["critical"] == 2
    gauge.forget("ns", "b")
    (family,) = gauge.collect()
    assert {s.labels["severity"]: s.value for s in family.samples}["critical"] == 1


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_custom_invariants_no_longer_violated_leave_the_violations_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(self_metrics, "_clock", lambda: clock[0])
    self_metrics.count_violation("store_down")
    self_metrics.count_violation("my_custom_rule_x1")
    assert sample("tikv_operator_violations_found_total", invariant="my_custom_rule_x1") == 1
    clock[0] += self_metrics.CUSTOM_LABEL_IDLE_S + 1
    self_metrics.count_violation("store_down")  # prunes on the way
    assert sample("tikv_operator_violations_found_total", invariant="my_custom_rule_x1") is None
    assert sample("tikv_operator_violations_found_total", invariant="store_down") is not None


def test_a_target_no_cluster_uses_and_that_cannot_deliver_goes_with_its_metrics() -> None:
    run(_a_target_no_cluster_uses_and_that_cannot_deliver_goes_with_its_metrics)


async def _a_target_no_cluster_uses_and_that_cannot_deliver_goes_with_its_metrics(state: Server, url: str) -> None:
    policy = AlertPolicy()
    notifier = Notifier(policy)
    notifier.register("ns", "basic", spec(url), lambda: [OPEN])
    (target,) = notifier.targets.values()
    await notifier.deliver(target, NOW)
    assert sample("tikv_operator_notifications_sent_total", alertmanager=url)
    notifier.retire("ns", "basic")
    state.fail = True  # the resolved alerts never get there
    await notifier.deliver(target, NOW + timedelta(seconds=1))
    assert not notifier.unused(target, NOW + timedelta(seconds=1)), "it keeps trying for a while"
    later = NOW + policy.resolved_retention + timedelta(seconds=2)
    await notifier.deliver(target, later)
    assert notifier.unused(target, later), "given up after the retention"
    await notifier.drop(target)
    assert target.key not in notifier.targets
    assert sample("tikv_operator_notifications_sent_total", alertmanager=url) is None
    assert sample("tikv_operator_notifications_failed_total", alertmanager=url) is None
    await notifier.close()
