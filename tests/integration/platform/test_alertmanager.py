"""The platform's real Alertmanager, used the way the operator will: post alerts through API v2, silence
them, and see what the webhook receiver (a pager, in production) was sent."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from harness.kube import eventually

from tests.support.alertmanager import Alertmanager, PrivateAlertmanager, alert

# The platform routes repeat="fast" alerts with repeat_interval 5s and group_interval 2s, so a firing
# alert is re-notified at most every ~6s; waiting this long without one proves repeats stopped.
FAST_REPEAT_QUIET_S = 7.5
# group_wait 1s and group_interval 2s: by then a new group has been flushed to the receiver (or deduplicated).
GROUP_FLUSH_S = 3.0


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_a_posted_alert_is_listed_notified_once_and_resolved(alertmanager: Alertmanager) -> None:
    namespace = unique("am-alert")
    labels = {"alertname": "TiKVStoreDown", "namespace": namespace, "ticket": f"{namespace}-store-down-s2"}

    alertmanager.post_alerts([alert(labels, annotations={"summary": "store 2 is Down"})])

    listed = eventually(lambda: alertmanager.alerts(namespace=namespace), timeout=10, what="the alert listed")
    assert [a["labels"] for a in listed] == [labels]
    assert listed[0]["annotations"] == {"summary": "store 2 is Down"}
    assert listed[0]["status"]["state"] == "active"
    firing = alertmanager.wait_for_notifications(1, status="firing", namespace=namespace)
    assert firing[0]["labels"] == labels
    assert firing[0]["receiver"] == "webhook"

    # The operator re-posts an open ticket every check: the same labels are the same alert, no new page.
    alertmanager.post_alerts([alert(labels)])
    alertmanager.post_alerts([alert(labels, firing=False)])

    alertmanager.wait_for_notifications(1, status="resolved", namespace=namespace)
    assert [n["status"] for n in alertmanager.notifications(namespace=namespace)] == ["firing", "resolved"]
    assert alertmanager.alerts(namespace=namespace) == []


def test_a_silence_stops_repeats_shows_in_amtool_and_expires(alertmanager: Alertmanager) -> None:
    namespace = unique("am-silence")
    ticket = f"{namespace}-ticket"
    labels = {"alertname": "TiKVStoreDown", "namespace": namespace, "ticket": ticket, "repeat": "fast"}
    alertmanager.post_alerts([alert(labels)])
    alertmanager.wait_for_notifications(2, status="firing", timeout=15, namespace=namespace)

    silence_id = alertmanager.create_silence({"ticket": ticket}, comment="acknowledged by the on-call",
                                             created_by="alice")

    query = alertmanager.amtool("silence", "query", f"ticket={ticket}")
    assert query.returncode == 0, query.stderr
    assert silence_id in query.stdout
    assert "alice" in query.stdout
    silenced = eventually(lambda: alertmanager.alerts(include_suppressed=True, namespace=namespace), timeout=10,
                          what="the alert listed as silenced")
    # Alertmanager 0.28+ adds mutedBy (time intervals) beside these three.
    status = silenced[0]["status"]
    assert {k: status[k] for k in ("state", "silencedBy", "inhibitedBy")} == {
        "state": "suppressed", "silencedBy": [silence_id], "inhibitedBy": []}
    assert alertmanager.alerts(namespace=namespace) == []
    notified = len(alertmanager.notifications(namespace=namespace))
    time.sleep(FAST_REPEAT_QUIET_S)
    assert len(alertmanager.notifications(namespace=namespace)) == notified, "a silenced alert was re-notified"

    alertmanager.expire_silence(silence_id)

    [expired] = alertmanager.silences(ticket=ticket)
    assert expired["id"] == silence_id
    assert expired["status"]["state"] == "expired"
    assert silence_id not in alertmanager.amtool("silence", "query", f"ticket={ticket}").stdout
    assert silence_id in alertmanager.amtool("silence", "query", "--expired", f"ticket={ticket}").stdout
    eventually(lambda: alertmanager.alerts(namespace=namespace), timeout=10, what="the alert active again")
    alertmanager.post_alerts([alert(labels, firing=False)])


def test_a_restarted_alertmanager_keeps_silences_and_notification_log_but_not_alerts(
    private_alertmanager: PrivateAlertmanager,
) -> None:
    am = private_alertmanager.client
    labels = {"alertname": "TiKVStoreDown", "namespace": "private", "ticket": "private-store-down-s1"}
    am.post_alerts([alert(labels)])
    am.wait_for_notifications(1, status="firing")
    silence_id = am.create_silence({"ticket": "another-ticket"}, comment="kept across a restart")

    private_alertmanager.stop()

    with pytest.raises(httpx.ConnectError):
        am.post_alerts([alert(labels)])

    private_alertmanager.start()

    assert private_alertmanager.client.url == am.url
    assert [s["id"] for s in am.silences(ticket="another-ticket")] == [silence_id]
    # Alerts live in memory only: the operator's next check re-posts what is open.
    assert am.alerts() == []
    am.post_alerts([alert(labels)])
    eventually(am.alerts, timeout=10, what="the re-posted alert listed")
    time.sleep(GROUP_FLUSH_S)
    am.post_alerts([alert(labels, firing=False)])
    am.wait_for_notifications(1, status="resolved")
    # The notification log survived: the re-posted alert, flushed once, was not paged a second time.
    assert [n["status"] for n in am.notifications()] == ["firing", "resolved"]
