"""The original tool's success criteria, through kubectl: a store fault opens a ticket people can list,
filter, hold, unhold and resolve; recovery auto-resolves it; transitions are Events (rules 4, 6, 10)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import (
    VENV_BIN,
    OperatorProcess,
    SimulatedCluster,
    event_reasons,
    open_tickets,
    settled,
    still,
    ticket,
    wait_for_phase,
    wait_for_ticket,
)


def test_store_down_opens_a_ticket_that_kubectl_lists_and_recovery_resolves_it(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url)
    eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("health") == "Healthy",
               what="the cluster to be Healthy")

    tikv.fault(kind="stop-store", store=2)
    opened = wait_for_ticket(kubectl, "store_down", "2")
    name = opened["metadata"]["name"]
    assert name == "basic-store-down-s2-1"

    table = kubectl("get", "operatortickets").stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "SEVERITY", "INVARIANT", "STORE", "COUNT", "FIRST", "SEEN",
                                "HELD", "CAUSE", "AGE"]
    row = next(line.split() for line in table[1:] if line.startswith(name))
    assert row[1:5] == ["Open", "critical", "store_down", "2"]
    assert row[7] == "false"

    by_label = kubectl("get", "operatortickets", "-l", "tikvops.io/phase=open", "-o", "name").stdout.split()
    assert by_label == [f"operatorticket.tikvops.io/{name}"]
    as_json = json.loads(kubectl("get", "operatortickets", "-o", "json").stdout)
    status = next(t for t in as_json["items"] if t["metadata"]["name"] == name)["status"]
    assert status["evidence"]["stateName"] == "Down"  # Disconnected first, but that waits out a 1m grace
    assert status["message"].startswith("store 2 ")
    assert status["occurrences"] >= 1

    cluster = kubectl.json("get", "tkc", "basic")["status"]
    assert cluster["health"] == "Degraded"
    assert cluster["storesUp"] == "2/3"
    assert cluster["openTickets"] == 1

    tikv.fault(kind="start-store", store=2)
    resolved = wait_for_phase(kubectl, name, "Resolved")
    assert resolved["status"]["resolution"] == "auto"
    assert resolved["metadata"]["labels"]["tikvops.io/phase"] == "resolved"
    assert kubectl("get", "operatortickets", "-l", "tikvops.io/phase=open", "-o", "name").stdout.split() == []
    eventually(lambda: kubectl.json("get", "tkc", "basic")["status"].get("health") == "Healthy",
               what="the cluster to be Healthy again")

    described = kubectl("describe", "operatorticket", name).stdout
    assert "TicketOpened" in described
    assert "TicketResolved" in described
    assert {"TicketOpened", "TicketResolved"} <= set(event_reasons(kubectl, "TiKVCluster", "basic"))


def test_a_held_ticket_stays_open_after_recovery_and_auto_resolves_once_unheld(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url)
    tikv.fault(kind="stop-store", store=1)
    name = wait_for_ticket(kubectl, "store_down", "1")["metadata"]["name"]

    kubectl("patch", "operatorticket", name, "--type=merge", "-p", '{"spec":{"held":true}}')
    eventually(lambda: ticket(kubectl, name)["metadata"]["labels"]["tikvops.io/held"] == "true",
               what="the held label")
    assert "true" in kubectl("get", "operatorticket", name).stdout.splitlines()[1].split()
    assert "TicketHeld" in event_reasons(kubectl, "OperatorTicket", name)

    tikv.fault(kind="start-store", store=1)
    eventually(lambda: kubectl.json("get", "tkc", "basic")["status"].get("storesUp") == "3/3",
               what="the store to be seen Up")
    still(lambda: ticket(kubectl, name)["status"]["phase"] == "Open", seconds=4)

    kubectl("patch", "operatorticket", name, "--type=merge", "-p", '{"spec":{"held":false}}')
    resolved = wait_for_phase(kubectl, name, "Resolved")
    assert resolved["status"]["resolution"] == "auto"
    assert resolved["metadata"]["labels"]["tikvops.io/held"] == "false"
    assert "TicketUnheld" in event_reasons(kubectl, "OperatorTicket", name)


def test_a_manual_resolve_wins_over_hold_and_a_persisting_condition_opens_a_new_ticket(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url)
    tikv.fault(kind="stop-store", store=3)
    name = wait_for_ticket(kubectl, "store_down", "3")["metadata"]["name"]
    kubectl("patch", "operatorticket", name, "--type=merge", "-p", '{"spec":{"held":true}}')

    kubectl("patch", "operatorticket", name, "--subresource=status", "--type=merge",
            "-p", '{"status":{"phase":"Resolved"}}')
    done = eventually(lambda: (t := ticket(kubectl, name))["status"].get("resolution") == "manual" and settled(t)
                      and t, what="the manual resolution to be recorded")
    assert done["spec"]["held"] is False
    assert done["metadata"]["labels"]["tikvops.io/phase"] == "resolved"
    assert done["metadata"]["labels"]["tikvops.io/held"] == "false"
    assert done["status"]["resolvedAt"]
    assert "TicketResolvedManually" in event_reasons(kubectl, "OperatorTicket", name)

    # The store is still down: the next check opens a new ticket (no cooldown).
    reopened = wait_for_ticket(kubectl, "store_down", "3")
    assert reopened["metadata"]["name"] == "basic-store-down-s3-2"
    assert ticket(kubectl, name)["status"]["phase"] == "Resolved"


def test_acknowledge_is_recorded_and_the_ticket_still_auto_resolves(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url)
    tikv.fault(kind="stop-store", store=2)
    name = wait_for_ticket(kubectl, "store_down", "2")["metadata"]["name"]
    kubectl("patch", "operatorticket", name, "--subresource=status", "--type=merge",
            "-p", '{"status":{"phase":"Acknowledged"}}')
    eventually(lambda: ticket(kubectl, name)["metadata"]["labels"]["tikvops.io/phase"] == "acknowledged",
               what="the acknowledged label")
    assert "TicketAcknowledged" in event_reasons(kubectl, "OperatorTicket", name)
    assert [t["metadata"]["name"] for t in open_tickets(kubectl)] == [name]  # no second ticket
    tikv.fault(kind="start-store", store=2)
    assert wait_for_phase(kubectl, name, "Resolved")["status"]["resolution"] == "auto"


def test_deleting_the_cluster_removes_its_tickets(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url)
    tikv.fault(kind="stop-store", store=1)
    wait_for_ticket(kubectl, "store_down", "1")
    kubectl("delete", "tkc", "basic", "--wait=false")
    eventually(lambda: kubectl("get", "operatortickets", "-o", "name").stdout.strip() == "", timeout=20,
               what="garbage collection of the tickets")
    eventually(lambda: "basic" not in kubectl("get", "tkc", "-o", "name").stdout, timeout=20,
               what="the TiKVCluster to go (the operator releases its finalizer)")


def test_the_cli_hold_and_resolve_are_recorded_as_events_too(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(tikv.pd_url)
    tikv.fault(kind="stop-store", store=1)
    name = wait_for_ticket(kubectl, "store_down", "1")["metadata"]["name"]
    cli = Cli(str(VENV_BIN / "tikv-operator"), kubectl.env, kubectl.namespace)
    assert cli("tickets", "hold", name, "-n", str(kubectl.namespace)).stdout.startswith(f"Holding ticket {name}")
    eventually(lambda: "TicketHeld" in event_reasons(kubectl, "OperatorTicket", name), what="the TicketHeld Event")
    assert cli("tickets", "resolve", name, "-n", str(kubectl.namespace)).stdout == f"Resolved ticket {name}\n"
    eventually(lambda: "TicketResolvedManually" in event_reasons(kubectl, "OperatorTicket", name),
               what="the TicketResolvedManually Event")
    assert ticket(kubectl, name)["status"]["resolution"] == "manual"
