"""design.md's lifecycle rules 1-3, 5, 7-9 and 11, driven through the real API server with kubectl."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import (
    OperatorProcess,
    SimulatedCluster,
    event_reasons,
    open_tickets,
    still,
    ticket,
    tickets,
    wait_for_phase,
    wait_for_ticket,
)
from harness.prometheus import Prometheus

from tests.integration.operator.conftest import StartOperator

CLOSED = "http://127.0.0.1:9"  # discard port: nothing listens there on these machines


def identities_of_open(kubectl: Cli) -> list[tuple[str, str]]:
    return sorted((t["spec"]["invariant"], t["spec"].get("store", "")) for t in open_tickets(kubectl))


def test_rule1_two_operators_at_once_never_duplicate_a_ticket(
    kubectl: Cli, start_operator: StartOperator, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    start_operator()
    start_operator()
    make_cluster(tikv.pd_url)
    for store in (1, 2, 3):
        tikv.fault(kind="stop-store", store=store)
    eventually(lambda: len(open_tickets(kubectl, "store_down")) == 3, what="three store_down tickets")
    still(lambda: len(tickets(kubectl)) == 3, seconds=4)
    assert identities_of_open(kubectl) == [("store_down", "1"), ("store_down", "2"), ("store_down", "3")]


def test_rule1_sigkill_in_the_middle_of_checks_leaves_one_complete_ticket_per_identity(
    kubectl: Cli, start_operator: StartOperator, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url)
    for store in (1, 2, 3):
        tikv.fault(kind="stop-store", store=store)
    # Kill the operator at different moments of its first checks: before, during and after ticket writes.
    for delay in (1.0, 2.2, 2.6, 3.0):
        process = start_operator()
        time.sleep(delay)
        process.kill()
    start_operator()
    eventually(lambda: len(open_tickets(kubectl, "store_down")) == 3, what="three store_down tickets")
    still(lambda: len(tickets(kubectl)) == 3, seconds=3)
    for t in tickets(kubectl):
        assert t["metadata"]["name"].endswith("-1")
        assert t["status"]["phase"] == "Open"
        assert t["status"]["severity"] == "critical"  # a status cut short by the kill was written later


def test_rule2_grace_period_survives_an_operator_restart(
    kubectl: Cli, start_operator: StartOperator, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    process = start_operator()
    make_cluster(tikv.pd_url, invariants={"pd_unreachable": {"gracePeriod": "8s"}})
    eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("health") == "Healthy",
               what="a first check")
    tikv.fault(kind="pd", mode="500")
    pending = eventually(
        lambda: kubectl.json("get", "tkc", "basic")["status"].get("pendingViolations"), what="a pending violation")
    assert pending[0]["invariant"] == "pd_unreachable"
    first_seen = pending[0]["firstSeen"]
    assert open_tickets(kubectl) == []
    process.kill()
    time.sleep(2)
    start_operator()
    opened = wait_for_ticket(kubectl, "pd_unreachable", timeout=20)
    assert opened["status"]["firstSeen"] == first_seen
    assert "500" in opened["status"]["message"]
    created = opened["metadata"]["creationTimestamp"]
    assert created >= _plus_seconds(first_seen, 8)


def _plus_seconds(stamp: str, seconds: int) -> str:
    from datetime import datetime, timedelta

    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ") + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_rule3_counters_are_refreshed_at_most_once_per_refresh_interval(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url, tickets={"refreshInterval": "3s"})
    tikv.fault(kind="stop-store", store=2)
    name = wait_for_ticket(kubectl, "store_down", "2")["metadata"]["name"]
    versions: set[str] = set()
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        versions.add(ticket(kubectl, name)["metadata"]["resourceVersion"])
        time.sleep(0.3)
    # Seven one-second checks saw the violation; without coalescing that is seven writes.
    assert 2 <= len(versions) <= 4
    status = ticket(kubectl, name)["status"]
    assert status["occurrences"] >= 5
    assert status["lastSeen"] > status["firstSeen"]


def test_rule5_unreachable_pd_never_resolves_and_opens_pd_unreachable(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url, invariants={"pd_unreachable": {"gracePeriod": "2s"}})
    tikv.fault(kind="stop-store", store=1)
    store_ticket = wait_for_ticket(kubectl, "store_down", "1")["metadata"]["name"]

    tikv.fault(kind="pd", mode="unreachable")
    tikv.fault(kind="start-store", store=1)  # recovered, but nobody can see it
    pd_ticket = wait_for_ticket(kubectl, "pd_unreachable")
    assert pd_ticket["metadata"]["name"] == "basic-pd-unreachable-1"
    assert pd_ticket["status"]["severity"] == "critical"
    still(lambda: ticket(kubectl, store_ticket)["status"]["phase"] == "Open", seconds=3)
    cluster = kubectl.json("get", "tkc", "basic")["status"]
    conditions = {c["type"]: c["status"] for c in cluster["conditions"]}
    assert conditions["PDReachable"] == "False"

    tikv.fault(kind="pd", mode="ok")
    assert wait_for_phase(kubectl, store_ticket, "Resolved")["status"]["resolution"] == "auto"
    assert wait_for_phase(kubectl, "basic-pd-unreachable-1", "Resolved")["status"]["resolution"] == "auto"


def test_rule5_unreachable_prometheus_never_resolves_metric_tickets(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
    prometheus: Prometheus,
) -> None:
    manifest = make_cluster(tikv.pd_url, invariants={"prometheus_unreachable": {"gracePeriod": "2s"}})
    tikv.fault(kind="disk", store=2, percent=85)
    disk = wait_for_ticket(kubectl, "low_disk_space", "2")
    assert disk["status"]["evidence"]["usedRatio"] == 0.85
    name = disk["metadata"]["name"]

    kubectl("patch", "tkc", "basic", "--type=merge", "-p", f'{{"spec":{{"prometheus":{{"url":"{CLOSED}"}}}}}}')
    tikv.fault(kind="disk", store=2, percent=10)  # fixed, but Prometheus cannot tell
    prom_ticket = wait_for_ticket(kubectl, "prometheus_unreachable")
    assert prom_ticket["status"]["severity"] == "warning"
    assert ticket(kubectl, name)["status"]["phase"] == "Open"
    still(lambda: ticket(kubectl, name)["status"]["phase"] == "Open", seconds=3)

    url = manifest["spec"]["prometheus"]["url"]
    kubectl("patch", "tkc", "basic", "--type=merge", "-p", f'{{"spec":{{"prometheus":{{"url":"{url}"}}}}}}')
    assert wait_for_phase(kubectl, name, "Resolved")["status"]["resolution"] == "auto"
    wait_for_phase(kubectl, prom_ticket["metadata"]["name"], "Resolved")


def test_rule7_tickets_opened_in_one_check_share_a_batch_and_rule9_inhibits_metrics_of_a_store_not_up(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    # Two stores already Down when the operator first looks: one check opens both tickets.
    tikv.fault(kind="stop-store", store=1)
    tikv.fault(kind="stop-store", store=2)
    eventually(lambda: {s["state_name"] for s in tikv.stores()[:2]} == {"Down"}, what="stores 1 and 2 Down")
    # Store 3 is being removed (Offline) but keeps serving metrics, with a full disk.
    tikv.fault(kind="store-state", store=3, state="Offline")
    tikv.fault(kind="disk", store=3, percent=90)
    make_cluster(tikv.pd_url)
    eventually(lambda: len(open_tickets(kubectl, "store_down")) == 2, what="two store_down tickets")
    batches = {t["status"]["batch"] for t in open_tickets(kubectl, "store_down")}
    assert len(batches) == 1
    still(lambda: open_tickets(kubectl, "low_disk_space", "3") == [], seconds=3)
    assert open_tickets(kubectl, "store_down", "3") == []  # Offline is not down
    tikv.fault(kind="store-state", store=3, state="Up")
    wait_for_ticket(kubectl, "low_disk_space", "3")


def test_rule8_flapping_rule13_reopening_and_rule11_retention(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url, flapping={"count": 2, "window": "10m"}, tickets={"resolvedRetention": "6s"})
    tikv.fault(kind="stop-store", store=2)
    first = wait_for_ticket(kubectl, "store_down", "2")
    name = first["metadata"]["name"]
    assert first["status"]["flapping"] is False
    tikv.fault(kind="start-store", store=2)
    wait_for_phase(kubectl, name, "Resolved")
    tikv.fault(kind="stop-store", store=2)
    # Back within the flapping window: the same ticket reopens, its second opening marks it flapping.
    again = wait_for_ticket(kubectl, "store_down", "2")
    assert again["metadata"]["name"] == name
    assert again["status"]["flapping"] is True
    assert len(again["status"]["reopenedAt"]) == 1
    assert "resolvedAt" not in again["status"]
    described = kubectl("describe", "operatorticket", name).stdout
    assert "TicketReopened" in described
    assert "Flapping:" in described
    assert [t["metadata"]["name"] for t in tickets(kubectl)] == [name]
    # Rule 11: once resolved again, the ticket is deleted when its retention is over.
    tikv.fault(kind="start-store", store=2)
    wait_for_phase(kubectl, name, "Resolved")
    eventually(lambda: name not in kubectl("get", "otk", "-o", "name").stdout, timeout=20,
               what="the resolved ticket to be deleted after retention")
    assert "TicketDeleted" in event_reasons(kubectl, "TiKVCluster", "basic")


def test_interval_changes_and_pause_take_effect_without_a_restart(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url, interval="1h")
    # The first check runs at once; Prometheus may not have scraped the new cluster yet, so its verdict may be
    # Unknown (blind) rather than Healthy. Either way no ticket: the point here is that it ran.
    first = eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("lastCheckTime"),
                       what="the first check")
    assert kubectl.json("get", "tkc", "basic")["status"]["health"] in {"Healthy", "Unknown"}
    tikv.fault(kind="stop-store", store=3)
    still(lambda: open_tickets(kubectl) == [], seconds=4)
    assert kubectl.json("get", "tkc", "basic")["status"]["lastCheckTime"] == first  # 1h: no second check
    kubectl("patch", "tkc", "basic", "--type=merge", "-p", '{"spec":{"interval":"1s"}}')
    name = wait_for_ticket(kubectl, "store_down", "3", timeout=15)["metadata"]["name"]

    kubectl("patch", "tkc", "basic", "--type=merge", "-p", '{"spec":{"paused":true}}')
    eventually(lambda: kubectl.json("get", "tkc", "basic")["status"].get("message") == "checks paused",
               what="the paused message")
    tikv.fault(kind="start-store", store=3)
    still(lambda: ticket(kubectl, name)["status"]["phase"] == "Open", seconds=4)
    kubectl("patch", "tkc", "basic", "--type=merge", "-p", '{"spec":{"paused":false}}')
    wait_for_phase(kubectl, name, "Resolved")
