"""Tickets as Alertmanager alerts: labels, cadence, resolve, escalation, silences (alerts.core.delivery)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tikv_operator.alerts.core.delivery import (
    WATCHDOG,
    AlertContext,
    AlertPolicy,
    DeliveryReport,
    Sent,
    TargetHealth,
    alerts_delivered,
    is_our_silence,
    plan_sends,
    silence_body,
    silence_ops,
    superseded,
    ticket_alert,
    watchdog_alert,
)
from tikv_operator.model.cluster_resource import AlertmanagerSpec
from tikv_operator.tickets.core.ticket import TicketView

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
POLICY = AlertPolicy()
CONTEXT = AlertContext("tidb", "basic", {"team": "storage"}, "http://pd:2379", "http://prom:9090")


def ticket(**fields: object) -> TicketView:
    base = TicketView(name="basic-store-down-s2-1", cluster="basic", invariant="store_down", store="2",
                      phase="Open", severity="warning", first_seen=T0 - timedelta(minutes=2),
                      message="store 2 (10.0.0.2:20160) is Disconnected: no heartbeat for 80s",
                      evidence={"stateName": "Disconnected", "address": "10.0.0.2:20160",
                                "secondsSinceHeartbeat": 80, "source": "GET /pd/api/v1/stores"})
    return replace(base, **fields)  # type: ignore[arg-type]


def test_an_open_ticket_is_a_firing_alert_with_exactly_the_promised_labels() -> None:
    alert = ticket_alert(ticket(), CONTEXT, T0, POLICY)
    assert alert is not None
    assert alert.firing
    assert dict(alert.labels) == {"alertname": "store_down", "namespace": "tidb", "tikv_cluster": "basic",
                                  "store": "2", "severity": "warning", "ticket": "basic-store-down-s2-1",
                                  "team": "storage"}
    body = alert.wire()
    assert body["startsAt"] == "2026-12-03T09:58:00Z"
    assert body["endsAt"] == "2026-12-03T10:04:00Z"  # now + 4 x the 1m resend
    assert body["annotations"]["summary"].startswith("store 2 (10.0.0.2:20160) is Disconnected")
    assert "stateName=Disconnected" in body["annotations"]["description"]
    assert "source" not in body["annotations"]["description"]
    assert body["generatorURL"] == "http://pd:2379/pd/api/v1/store/2"
    assert "runbook_url" not in body["annotations"]


def test_a_cluster_wide_ticket_has_no_store_label_and_a_metric_one_links_its_query() -> None:
    pd = ticket(name="basic-pd-unreachable-1", invariant="pd_unreachable", store="", severity="critical",
                evidence={"url": "http://pd:2379", "error": "cannot connect"})
    assert "store" not in ticket_alert(pd, CONTEXT, T0, POLICY).labels  # type: ignore[union-attr]
    latency = ticket(invariant="high_latency", evidence={"query": 'histogram_quantile(0.99, x{a="b"})'})
    url = ticket_alert(latency, CONTEXT, T0, POLICY).generator_url  # type: ignore[union-attr]
    assert url.startswith("http://prom:9090/graph?g0.expr=histogram_quantile%280.99%2C%20x%7Ba%3D%22b%22%7D%29")


def test_the_runbook_template_names_the_invariant() -> None:
    policy = AlertPolicy(runbook_url="https://runbooks.example/{invariant}.md")
    alert = ticket_alert(ticket(), CONTEXT, T0, policy)
    assert alert is not None
    assert alert.annotations["runbook_url"] == "https://runbooks.example/store_down.md"
    # A cluster's own invariant has no runbook among the built-ins': no link to a page that does not exist.
    custom = ticket_alert(replace(ticket(), invariant="channel_full"), CONTEXT, T0, policy)
    assert custom is not None
    assert "runbook_url" not in custom.annotations


def test_extra_labels_cannot_replace_the_identity() -> None:
    with pytest.raises(ValidationError, match="cannot set"):
        AlertmanagerSpec.model_validate({"labels": {"severity": "page"}})
    with pytest.raises(ValidationError, match="label names"):
        AlertmanagerSpec.model_validate({"labels": {"team-name": "x"}})
    sneaky = replace(CONTEXT, labels={"ticket": "other"})  # not through the schema: still ignored
    assert ticket_alert(ticket(), sneaky, T0, POLICY).labels["ticket"] == "basic-store-down-s2-1"  # type: ignore[union-attr]


def test_a_resolved_ticket_ends_at_its_resolution_and_is_sent_for_15_minutes() -> None:
    resolved = ticket(phase="Resolved", resolved_at=T0)
    alert = ticket_alert(resolved, CONTEXT, T0 + timedelta(minutes=14), POLICY)
    assert alert is not None
    assert not alert.firing
    assert alert.wire()["endsAt"] == "2026-12-03T10:00:00Z"
    assert ticket_alert(resolved, CONTEXT, T0 + timedelta(minutes=16), POLICY) is None


def test_a_ticket_without_status_sends_nothing_until_it_has_one() -> None:
    assert ticket_alert(ticket(phase=None, severity=None), CONTEXT, T0, POLICY) is None


def test_an_acknowledged_or_held_ticket_still_fires() -> None:
    for variant in (ticket(phase="Acknowledged"), ticket(held=True)):
        alert = ticket_alert(variant, CONTEXT, T0, POLICY)
        assert alert is not None
        assert alert.firing


def test_sending_follows_prometheus_cadence() -> None:
    alert = ticket_alert(ticket(), CONTEXT, T0, POLICY)
    assert alert is not None
    assert plan_sends([alert], {}, T0, POLICY).alerts == (alert,)  # new: at once
    sent = {alert.fingerprint: Sent(alert, T0)}
    assert plan_sends([alert], sent, T0 + timedelta(seconds=59), POLICY).alerts == ()
    assert plan_sends([alert], sent, T0 + timedelta(minutes=1), POLICY).alerts == (alert,)  # resend
    resolved = alert.resolved(T0 + timedelta(seconds=5))
    assert plan_sends([resolved], sent, T0 + timedelta(seconds=5), POLICY).alerts == (resolved,)  # state change


def test_the_less_urgent_label_sets_of_a_risen_ticket_are_sent_resolved_by_whoever_leads() -> None:
    critical = ticket_alert(ticket(severity="critical"), CONTEXT, T0, POLICY)
    warning = ticket_alert(ticket(), CONTEXT, T0, POLICY)
    emergency = ticket_alert(ticket(severity="emergency"), CONTEXT, T0, POLICY)
    assert critical is not None
    assert warning is not None
    assert emergency is not None
    (old,) = superseded(critical, T0)
    assert dict(old.labels) == {**critical.labels, "severity": "warning"}
    assert not old.firing
    assert old.ends_at == T0
    assert superseded(warning, T0) == []  # nothing opens below a warning and rises
    assert [dict(a.labels)["severity"] for a in superseded(emergency, T0)] == ["critical", "warning"]
    # A resolved ticket's old label set ends when the ticket did.
    resolved = critical.resolved(T0 + timedelta(seconds=30))
    assert [a.ends_at for a in superseded(resolved, T0 + timedelta(minutes=1))] == [T0 + timedelta(seconds=30)]


def test_a_label_set_no_longer_wanted_is_resolved_then_forgotten() -> None:
    warning = ticket_alert(ticket(), CONTEXT, T0, POLICY)
    critical = ticket_alert(ticket(severity="critical"), CONTEXT, T0, POLICY)
    assert warning is not None
    assert critical is not None
    sent = {warning.fingerprint: Sent(warning, T0)}
    # Escalation: the critical alert fires and the warning one is resolved at once.
    sends = plan_sends([critical], sent, T0 + timedelta(seconds=10), POLICY)
    assert [(dict(a.labels)["severity"], a.firing) for a in sends.alerts] == [("critical", True), ("warning", False)]
    assert sends.alerts[1].ends_at == T0 + timedelta(seconds=10)
    retired = {warning.fingerprint: Sent(sends.alerts[1], T0 + timedelta(seconds=10))}
    assert plan_sends([], retired, T0 + timedelta(minutes=2), POLICY).alerts == (sends.alerts[1],)  # re-sent
    late = plan_sends([], retired, T0 + timedelta(minutes=16), POLICY)
    assert late.alerts == ()
    assert late.forget == (warning.fingerprint,)


def test_the_watchdog_always_fires() -> None:
    alert = watchdog_alert(T0, T0 + timedelta(hours=1), POLICY, {})
    assert alert.firing
    assert alert.labels["alertname"] == WATCHDOG
    assert alert.ends_at == T0 + timedelta(hours=1, minutes=4)


def test_acknowledging_silences_and_any_other_phase_expires_the_silence() -> None:
    urls = ["http://am-0:9093", "http://am-1:9093"]
    assert [(o.action, o.alertmanager) for o in silence_ops(ticket(phase="Acknowledged"), urls)] == [
        ("create", "http://am-0:9093"), ("create", "http://am-1:9093")]
    half = ticket(phase="Acknowledged", silences={"http://am-0:9093": "s0"})
    assert [o.alertmanager for o in silence_ops(half, urls)] == ["http://am-1:9093"]
    done = ticket(phase="Resolved", silences={"http://am-0:9093": "s0"})
    assert [(o.action, o.silence_id) for o in silence_ops(done, urls)] == [("expire", "s0")]
    assert silence_ops(ticket(), urls) == []


def test_a_silence_matches_the_ticket_in_its_namespace_only() -> None:
    body = silence_body(ticket(phase="Acknowledged"), "tidb", T0, POLICY)
    assert {(m["name"], m["value"]) for m in body["matchers"]} == {("ticket", "basic-store-down-s2-1"),
                                                                   ("namespace", "tidb")}
    assert body["endsAt"] == "2026-12-04T10:00:00Z"
    assert body["createdBy"] == "tikv-operator"
    found = {**body, "id": "x", "status": {"state": "active"}}
    assert is_our_silence(found, "tidb", "basic-store-down-s2-1")
    assert not is_our_silence({**found, "status": {"state": "expired"}}, "tidb", "basic-store-down-s2-1")
    assert not is_our_silence(found, "other", "basic-store-down-s2-1")


@pytest.mark.parametrize(("report", "status", "reason"), [
    (DeliveryReport(), "Unknown", "NotConfigured"),
    (DeliveryReport(disabled=True), "Unknown", "Disabled"),
    (DeliveryReport((TargetHealth("http://am:9093"),)), "Unknown", "Pending"),
    (DeliveryReport((TargetHealth("http://am:9093", True),)), "True", "Delivered"),
    (DeliveryReport((TargetHealth("http://am:9093", True), TargetHealth("http://am-1:9093", False, "HTTP 500", T0))),
     "False", "DeliveryFailed"),
    (DeliveryReport((TargetHealth("http://am:9093", True),), problem="Secret x not labelled"),
     "False", "CredentialsUnavailable"),
])
def test_the_condition_says_whether_tickets_page(report: DeliveryReport, status: str, reason: str) -> None:
    assert alerts_delivered(report)[:2] == (status, reason)


def test_a_failing_alertmanager_is_named_with_its_error() -> None:
    report = DeliveryReport((TargetHealth("http://am-1:9093", False, "POST /api/v2/alerts: HTTP 500", T0),))
    assert alerts_delivered(report)[2] == ("tickets are not reaching http://am-1:9093: POST /api/v2/alerts: HTTP 500 "
                                           "(since 2026-12-03T10:00:00Z)")
