"""Tickets page people through the real Alertmanager (Debian 0.25) and its webhook receiver:
one alert per ticket with stable labels, one firing and one resolved notification, no second page after
an operator restart, alerts that outlive a PD outage, acknowledgement as a silence, and checks that go on
while Alertmanager is down. (A URL that is not http(s) is refused by the API server:
tests/integration/resources/test_validation.py.)"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness.kube import Cli, eventually
from harness.operator_process import OperatorProcess, SimulatedCluster, ticket, wait_for_phase, wait_for_ticket

from tests.support.alertmanager import Alertmanager, PrivateAlertmanager, start_private_alertmanager

StartOperator = Callable[..., OperatorProcess]
FAST = ("--alert-resend-interval", "2s")


def delivering_to(url: str, *extra: str) -> tuple[str, ...]:
    return ("--alertmanager-url", url, *FAST, *extra)


def condition(kubectl: Cli, kind: str, cluster: str = "basic") -> dict[str, Any]:
    status = kubectl.json("get", "tkc", cluster).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def firing(am: Alertmanager, **labels: str) -> list[dict[str, Any]]:
    return [n for n in am.notifications(**labels) if n["status"] == "firing"]


def resolved(am: Alertmanager, **labels: str) -> list[dict[str, Any]]:
    return [n for n in am.notifications(**labels) if n["status"] == "resolved"]


def test_a_store_fault_is_one_alert_one_page_and_one_all_clear(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    operator = start_operator(extra_args=delivering_to(alertmanager.url))
    make_cluster(tikv.pd_url)
    eventually(lambda: condition(kubectl, "AlertsDelivered").get("status") == "True",
               what="AlertsDelivered=True once the watchdog reached Alertmanager")
    assert alertmanager.alerts(alertname="TiKVOperatorWatchdog"), "the watchdog alert is always firing"

    tikv.fault(kind="stop-store", store=2)
    name = wait_for_ticket(kubectl, "store_down", "2")["metadata"]["name"]
    (alert,) = eventually(lambda: alertmanager.alerts(namespace=namespace), timeout=15,
                          what="the ticket's alert in GET /api/v2/alerts")
    assert alert["labels"] == {"alertname": "store_down", "namespace": namespace, "tikv_cluster": "basic",
                               "store": "2", "severity": "critical", "ticket": name}
    assert alert["annotations"]["summary"].startswith("store 2 ")
    assert "stateName=Down" in alert["annotations"]["description"]
    assert alert["generatorURL"] == f"{tikv.pd_url}/pd/api/v1/store/2"
    status = ticket(kubectl, name)["status"]
    assert alert["startsAt"].startswith(status["firstSeen"].removesuffix("Z"))

    alertmanager.wait_for_notifications(1, status="firing", timeout=15, namespace=namespace)

    tikv.fault(kind="start-store", store=2)
    wait_for_phase(kubectl, name, "Resolved")
    alertmanager.wait_for_notifications(1, status="resolved", timeout=15, namespace=namespace)
    eventually(lambda: alertmanager.alerts(namespace=namespace) == [], timeout=10,
               what="no active alert once the ticket resolved")
    # Nothing more: the resolved alert is re-sent (every 2s here) but Alertmanager pages once.
    time.sleep(8)
    assert len(firing(alertmanager, namespace=namespace)) == 1
    assert len(resolved(alertmanager, namespace=namespace)) == 1
    metrics = operator.metrics()
    sent = re.search(rf'tikv_operator_notifications_sent_total{{alertmanager="{re.escape(alertmanager.url)}"}} '
                     r"([0-9.e+]+)", metrics)
    assert sent is not None
    assert float(sent.group(1)) >= 3


def test_a_killed_and_restarted_operator_keeps_one_alert_and_pages_no_one_twice(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    first = start_operator(extra_args=delivering_to(alertmanager.url))
    make_cluster(tikv.pd_url)
    tikv.fault(kind="stop-store", store=1)
    wait_for_ticket(kubectl, "store_down", "1")
    alertmanager.wait_for_notifications(1, status="firing", timeout=20, namespace=namespace)
    (before,) = alertmanager.alerts(namespace=namespace)

    first.kill()
    start_operator(extra_args=delivering_to(alertmanager.url))
    # Long enough for the new process to post the alert several times (every 2 s).
    time.sleep(10)
    (after,) = alertmanager.alerts(namespace=namespace)
    assert after["fingerprint"] == before["fingerprint"]
    assert after["startsAt"] == before["startsAt"]
    assert after["endsAt"] > before["endsAt"], "the new operator re-sends the alert"
    assert len(firing(alertmanager, namespace=namespace)) == 1


def test_a_spec_refused_across_a_restart_keeps_its_open_tickets_paging(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    """Rule 23: a labelMatchers key only the operator checks, written while it was down. The restarted
    operator refuses the spec, and still re-sends the open ticket's alert: without that the alert lapsed
    after 4 resend intervals and Alertmanager sent everyone a resolved notification."""
    # Resent every 5 s, an alert lives 20 s: room for the restart on a busy machine.
    args = ("--alertmanager-url", alertmanager.url, "--alert-resend-interval", "5s")
    first = start_operator(extra_args=args)
    make_cluster(tikv.pd_url)
    tikv.fault(kind="stop-store", store=1)
    wait_for_ticket(kubectl, "store_down", "1")
    alertmanager.wait_for_notifications(1, status="firing", timeout=20, namespace=namespace)

    first.kill()
    kubectl("patch", "tkc", "basic", "--type=merge", "-p",
            json.dumps({"spec": {"prometheus": {"labelMatchers": {"not-a-label": "x"}}}}))
    start_operator(extra_args=args)
    eventually(lambda: (kubectl.json("get", "tkc", "basic").get("status") or {}).get("message", "").startswith(
        "spec rejected"), what="the restarted operator refusing the spec")
    (before,) = alertmanager.alerts(namespace=namespace)
    # Longer than the alert's lifetime without re-sends (4 resend intervals).
    time.sleep(25)
    (after,) = alertmanager.alerts(namespace=namespace)
    assert after["endsAt"] > before["endsAt"], "the open ticket's alert is re-sent"
    assert resolved(alertmanager, namespace=namespace) == []


@pytest.mark.timeout(240)
def test_the_alert_stays_active_through_a_pd_outage_of_many_resend_intervals(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    # Prometheus' cadence scaled down (resend 3s, endsAt now + 12s): an operator that stopped re-sending
    # while PD is unknown would see Alertmanager time the alert out three times over during the 40 s outage
    # (the same property with the 1m default takes five minutes to show).
    start_operator(extra_args=("--alertmanager-url", alertmanager.url, "--alert-resend-interval", "3s"))
    # pd_unreachable's grace shortened too, so the outage's own page comes well inside the 40 s.
    make_cluster(tikv.pd_url, invariants={"pd_unreachable": {"gracePeriod": "10s"}})
    tikv.fault(kind="stop-store", store=3)
    name = wait_for_ticket(kubectl, "store_down", "3")["metadata"]["name"]
    eventually(lambda: alertmanager.alerts(namespace=namespace, ticket=name), timeout=15,
               what="the store's alert")

    tikv.sim.fault({"fault": "pd", "mode": "unreachable"})
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        assert alertmanager.alerts(namespace=namespace, ticket=name), "the alert lapsed while PD was unknown"
        time.sleep(2.5)
    assert ticket(kubectl, name)["status"]["phase"] == "Open"
    # The outage itself pages too.
    pd_alerts = alertmanager.alerts(namespace=namespace, alertname="pd_unreachable")
    assert len(pd_alerts) == 1
    assert "store" not in pd_alerts[0]["labels"]
    tikv.sim.fault({"fault": "pd", "mode": "ok"})


def test_acknowledging_a_ticket_silences_its_pages_until_it_resolves(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    # No operator default: the cluster names its Alertmanager, and a label its route re-pages every 5 s.
    start_operator(extra_args=FAST)
    make_cluster(tikv.pd_url, alertmanager={"urls": [alertmanager.url], "labels": {"repeat": "fast"}})
    tikv.fault(kind="stop-store", store=2)
    name = wait_for_ticket(kubectl, "store_down", "2")["metadata"]["name"]
    alertmanager.wait_for_notifications(2, status="firing", timeout=30, namespace=namespace)

    kubectl("patch", "operatorticket", name, "--subresource=status", "--type=merge",
            "-p", '{"status":{"phase":"Acknowledged"}}')
    recorded = eventually(lambda: ticket(kubectl, name)["status"].get("silences"), timeout=20,
                          what="the silence id in the ticket's status")
    silence_id = recorded[alertmanager.url]
    query = alertmanager.amtool("silence", "query", f"ticket={name}", "-o", "json")
    assert query.returncode == 0, query.stderr
    (silence,) = json.loads(query.stdout)
    assert silence["id"] == silence_id
    assert silence["createdBy"] == "tikv-operator"
    assert {(m["name"], m["value"]) for m in silence["matchers"]} == {("ticket", name), ("namespace", namespace)}
    assert alertmanager.alerts(namespace=namespace) == [], "the silenced alert is no longer active"
    assert len(alertmanager.alerts(namespace=namespace, include_suppressed=True)) == 1

    time.sleep(3)  # a notification already on its way when the silence was made
    pages = len(firing(alertmanager, namespace=namespace))
    time.sleep(12)  # more than two repeat intervals of the route
    assert len(firing(alertmanager, namespace=namespace)) == pages, "pages went on after the acknowledgement"

    tikv.fault(kind="start-store", store=2)
    wait_for_phase(kubectl, name, "Resolved")
    eventually(lambda: [s["status"]["state"] for s in alertmanager.silences(ticket=name)] == ["expired"],
               timeout=20, what="the silence expired once the ticket resolved")
    eventually(lambda: not ticket(kubectl, name)["status"].get("silences"), timeout=10,
               what="the expired silence gone from the ticket's status")


def test_checks_go_on_while_alertmanager_is_down_and_deliveries_resume(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], private_alertmanager: PrivateAlertmanager,
) -> None:
    am = private_alertmanager.client
    operator = start_operator(extra_args=delivering_to(am.url))
    make_cluster(tikv.pd_url)
    tikv.fault(kind="stop-store", store=2)
    wait_for_ticket(kubectl, "store_down", "2")
    am.wait_for_notifications(1, status="firing", timeout=20, namespace=namespace)

    private_alertmanager.stop()
    failed = eventually(lambda: (c := condition(kubectl, "AlertsDelivered")).get("status") == "False" and c,
                        timeout=20, what="AlertsDelivered=False while Alertmanager is down")
    assert failed["reason"] == "DeliveryFailed"
    assert am.url in failed["message"]
    assert "Connection refused" in failed["message"]
    checked = kubectl.json("get", "tkc", "basic")["status"]["lastCheckTime"]
    # A check every second goes on regardless (the status is written at least once per refresh interval).
    tikv.fault(kind="stop-store", store=3)
    wait_for_ticket(kubectl, "store_down", "3", timeout=20)
    assert kubectl.json("get", "tkc", "basic")["status"]["lastCheckTime"] >= checked
    assert operator.healthy()
    assert re.search(rf'tikv_operator_notifications_failed_total{{alertmanager="{re.escape(am.url)}"}} [1-9]',
                     operator.metrics())

    private_alertmanager.start()
    eventually(lambda: condition(kubectl, "AlertsDelivered").get("status") == "True", timeout=60,
               what="AlertsDelivered=True once Alertmanager is back")
    # Alertmanager keeps alerts in memory only: both tickets are there again because they are re-sent.
    eventually(lambda: {a["labels"]["store"] for a in am.alerts(namespace=namespace)} == {"2", "3"}, timeout=30,
               what="both open tickets in the restarted Alertmanager")


def test_deleting_a_tikvcluster_sends_its_alerts_resolved(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    start_operator(extra_args=delivering_to(alertmanager.url))
    make_cluster(tikv.pd_url)
    tikv.fault(kind="stop-store", store=2)
    wait_for_ticket(kubectl, "store_down", "2")
    alertmanager.wait_for_notifications(1, status="firing", timeout=20, namespace=namespace)

    kubectl("delete", "tkc", "basic", "--timeout=30s")
    # Not left to time out 4 resend intervals later: the operator resolves what it no longer watches.
    alertmanager.wait_for_notifications(1, status="resolved", timeout=15, namespace=namespace)
    assert alertmanager.alerts(namespace=namespace) == []


# bcrypt of PASSWORD (Alertmanager's web config wants the hash; computed once with glibc's crypt).
USER, PASSWORD = "tikv", "page-me-not"
PASSWORD_HASH = "$2b$10$tikvoperatortestsaltxuJfTQZWItQZ91DJ6Asm1FxdhakghNCwe"


def test_an_alertmanager_that_wants_credentials_gets_them_only_from_an_opted_in_secret(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], tmp_path: Path,
) -> None:
    with start_private_alertmanager(tmp_path / "am", basic_auth=(USER, PASSWORD, PASSWORD_HASH)) as private:
        am = private.client
        assert httpx.get(f"{am.url}/api/v2/alerts", timeout=5).status_code == 401, "the web config is in force"
        operator = start_operator(extra_args=FAST)
        kubectl("create", "secret", "generic", "am-auth", f"--from-literal=username={USER}",
                f"--from-literal=password={PASSWORD}")
        make_cluster(tikv.pd_url, alertmanager={"urls": [am.url], "authSecret": {"name": "am-auth"}})
        tikv.fault(kind="stop-store", store=2)
        wait_for_ticket(kubectl, "store_down", "2")
        refused = eventually(lambda: (c := condition(kubectl, "AlertsDelivered")).get("status") == "False" and c,
                             timeout=20, what="AlertsDelivered=False: the Secret did not opt in")
        assert refused["reason"] == "CredentialsUnavailable"
        assert "not labelled tikvops.io/credentials=true" in refused["message"]
        assert am.alerts(namespace=namespace) == [], "nothing is sent without the credentials"

        kubectl("label", "secret", "am-auth", "tikvops.io/credentials=true")
        eventually(lambda: condition(kubectl, "AlertsDelivered").get("status") == "True", timeout=40,
                   what="AlertsDelivered=True with the opted-in Secret")
        (alert,) = eventually(lambda: am.alerts(namespace=namespace), timeout=15, what="the alert, sent with auth")
        assert alert["labels"]["store"] == "2"
        am.wait_for_notifications(1, status="firing", timeout=15, namespace=namespace)

        seen = operator.log() + json.dumps(kubectl.json("get", "tkc", "basic")) + kubectl("get", "events",
                                                                                            "-o", "json").stdout
        assert PASSWORD not in seen
