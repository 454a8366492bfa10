"""The operator's own restarts change no verdict (docs/design.md, rule 24): with a store_leader_lost and a
store_restarted ticket open and their faults still there in tikv_sim, a SIGKILLed and restarted operator, and
a leader handover between two replicas, leave both tickets Open (kubectl get operatortickets), and the real
Alertmanager's webhook receiver gets no resolved notification for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import OperatorProcess, SimulatedCluster, open_tickets, wait_for_ticket

from tests.support.alertmanager import Alertmanager

StartOperator = Callable[..., OperatorProcess]
WATCHED = ("store_leader_lost", "store_restarted")


def delivering(alertmanager: Alertmanager, *extra: str) -> tuple[str, ...]:
    # Alerts are valid for 4 resend intervals: 60 s covers a restarted process' start on a loaded machine (16 s
    # seen), so Alertmanager does not expire them meanwhile (that would be a resolved notification of its own).
    return ("--alertmanager-url", alertmanager.url, "--alert-resend-interval", "15s", *extra)


def both_tickets_open(kubectl: Cli, namespace: str, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
                      alertmanager: Alertmanager) -> set[str]:
    """Store 3 loses all its leaders for good; store 1 restarts twice (a crash loop within the 10m window)."""
    make_cluster(tikv.pd_url, invariants={"store_leader_lost": {"gracePeriod": "2s"}})
    eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("health") == "Healthy",
               timeout=40, what="a Healthy cluster first (store 3 seen holding leaders)")
    tikv.fault(kind="leaders", store=3, count=0)
    for _ in range(2):
        tikv.fault(kind="restart-store", store=1, downtime=0.5)
        eventually(lambda: tikv.stores()[0]["running"], what="store 1 back")
        time.sleep(3)  # several checks see each restart (PD learns it at the next heartbeat)
    names = {wait_for_ticket(kubectl, "store_leader_lost", "3")["metadata"]["name"],
             wait_for_ticket(kubectl, "store_restarted", "1", timeout=20)["metadata"]["name"]}
    for invariant in WATCHED:
        alertmanager.wait_for_notifications(1, status="firing", timeout=20, namespace=namespace, alertname=invariant)
    return names


def still_open(kubectl: Cli, alertmanager: Alertmanager, namespace: str, names: set[str]) -> None:
    """The same tickets Open, and nothing resolved sent for them, for long enough for many checks (1 s) and
    the new process' first deliveries (at once) and a resend (15 s)."""
    deadline = time.monotonic() + 16
    while time.monotonic() < deadline:
        opened = {t["metadata"]["name"] for t in open_tickets(kubectl) if t["spec"]["invariant"] in WATCHED}
        assert opened == names, f"no longer open: {sorted(names - opened)}"
        sent = [n["labels"] for n in alertmanager.notifications(namespace=namespace)
                if n["status"] == "resolved" and n["labels"]["alertname"] in WATCHED]
        assert sent == [], f"resolved notifications sent: {sent}"
        time.sleep(0.5)


def test_a_sigkilled_and_restarted_operator_keeps_the_tickets_open(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    first = start_operator(extra_args=delivering(alertmanager))
    names = both_tickets_open(kubectl, namespace, tikv, make_cluster, alertmanager)
    first.kill()
    second = start_operator(extra_args=delivering(alertmanager))
    eventually(lambda: second.metric("tikv_operator_checks_total") >= 2, timeout=30,
               what="the restarted operator's checks")
    still_open(kubectl, alertmanager, namespace, names)
    memory = kubectl.json("get", "tkc", "basic")["status"]["storeMemory"]
    assert {s["id"]: s.get("led") for s in memory["stores"]}["3"] is True
    assert len({s["id"]: s for s in memory["stores"]}["1"]["restarts"]) == 2


def test_a_leader_handover_keeps_the_tickets_open(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    elect = ("--leader-elect", "--leader-election-namespace", namespace)
    a, b = (start_operator(extra_args=delivering(alertmanager, *elect)) for _ in range(2))
    leader, standby = eventually(
        lambda: (a, b) if a.metric("tikv_operator_leader") == 1.0 else (b, a) if b.metric(
            "tikv_operator_leader") == 1.0 else None, timeout=30, what="one replica to lead")
    names = both_tickets_open(kubectl, namespace, tikv, make_cluster, alertmanager)
    assert leader.stop() == 0  # SIGTERM releases the Lease: the standby's new term starts at once
    eventually(lambda: standby.metric("tikv_operator_checks_total") >= 2, timeout=30,
               what="the new leader's checks")
    still_open(kubectl, alertmanager, namespace, names)
