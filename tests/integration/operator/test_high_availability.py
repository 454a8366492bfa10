"""Two replicas with `--leader-elect`, as the chart runs them: one acts, the other stands by; a killed,
stopped or partitioned holder is replaced, and nothing is lost, repeated or written twice.

Every claim is checked the way an SRE would: the Lease with kubectl, tickets and Events with kubectl, the
replicas' own metrics, and the API server's audit log for who wrote what, when."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from harness.kube import Cli, eventually
from harness.operator_process import (
    OperatorProcess,
    SimulatedCluster,
    event_reasons,
    open_tickets,
    still,
    tickets,
    wait_for_ticket,
)
from harness.platform import PlatformInfo

from tests.support.audit import writes

StartOperator = Callable[..., OperatorProcess]
# client-go's defaults, which the operator keeps: a dead holder is replaced within duration + retry period.
LEASE_DURATION_S, RETRY_PERIOD_S = 15.0, 2.0
# The standby's first check follows its taking the Lease by at most its poll (0.5 s); a loaded machine
# gets a little more.
SLACK_S = 2.0


def replicas(start_operator: StartOperator, namespace: str) -> tuple[OperatorProcess, OperatorProcess]:
    args = ("--leader-elect", "--leader-election-namespace", namespace)
    return start_operator(extra_args=args), start_operator(extra_args=args)


def roles(a: OperatorProcess, b: OperatorProcess) -> tuple[OperatorProcess, OperatorProcess]:
    """(leader, standby) once exactly one of the two leads, by their own tikv_operator_leader."""
    def exactly_one() -> tuple[OperatorProcess, OperatorProcess] | None:
        leading = [p.metric("tikv_operator_leader") for p in (a, b)]
        if sorted(leading) != [0.0, 1.0]:
            return None
        return (a, b) if leading[0] == 1.0 else (b, a)
    return eventually(exactly_one, timeout=30, what="exactly one replica to lead")


def holder(kubectl: Cli) -> str:
    return str(kubectl.json("get", "lease", "tikv-operator")["spec"].get("holderIdentity") or "")


def checks(process: OperatorProcess) -> float:
    return process.metric("tikv_operator_checks_total")


def tickets_for(kubectl: Cli, store: str) -> list[dict[str, Any]]:
    return [t for t in tickets(kubectl) if t["spec"]["invariant"] == "store_down" and t["spec"].get("store") == store]


def test_one_replica_acts_and_a_killed_leader_is_replaced_without_a_lost_or_duplicate_ticket(
    kubectl: Cli, namespace: str, platform: PlatformInfo, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any],
) -> None:
    a, b = replicas(start_operator, namespace)
    make_cluster(tikv.pd_url, tickets={"refreshInterval": "1s"})  # every check writes its counters
    leader, standby = roles(a, b)

    # `kubectl get lease` names the holder; the log says who leads.
    assert holder(kubectl) == leader.identity()
    assert leader.identity() in kubectl("get", "lease", "tikv-operator").stdout
    assert f"started leading: lease {namespace}/tikv-operator is held by {leader.identity()}" in leader.log()
    # Exactly one runs checks: the standby's cache is warm, its checks none.
    eventually(lambda: checks(leader) >= 3, what="the leader to check")
    still(lambda: checks(standby) == 0, seconds=3)
    assert standby.metric("tikv_operator_leader_transitions_total") == 0

    # An open incident, then the holder dies (a node lost: no clean-up at all).
    tikv.fault(kind="stop-store", store=1)
    first = wait_for_ticket(kubectl, "store_down", "1")
    leader.kill()
    killed = time.monotonic()
    # A fault that starts while nobody leads: its ticket opens after the takeover.
    tikv.fault(kind="stop-store", store=2)
    eventually(lambda: standby.metric("tikv_operator_leader") == 1.0, timeout=LEASE_DURATION_S + 10,
               what="the standby to take the Lease")
    eventually(lambda: checks(standby) >= 1, timeout=10, what="the new leader's first check")
    took = time.monotonic() - killed
    assert took <= LEASE_DURATION_S + RETRY_PERIOD_S + SLACK_S, f"failover took {took:.1f}s"
    assert holder(kubectl) == standby.identity()
    assert standby.metric("tikv_operator_leader_transitions_total") == 1

    second = wait_for_ticket(kubectl, "store_down", "2", timeout=30)
    created_by_new_leader = {w.name for w in writes(platform.audit_log, standby.identity(), namespace)
                             if w.verb == "create" and w.resource == "operatortickets"}
    assert second["metadata"]["name"] in created_by_new_leader
    # The first incident is the same ticket, counted on by the new leader; no second ticket for it.
    occurrences = int(first["status"]["occurrences"])
    eventually(lambda: int(tickets_for(kubectl, "1")[0]["status"]["occurrences"]) > occurrences, timeout=30,
               what="the new leader to count the open ticket's occurrences")
    assert [t["metadata"]["name"] for t in tickets_for(kubectl, "1")] == [first["metadata"]["name"]]
    assert [t["metadata"]["name"] for t in tickets_for(kubectl, "2")] == [second["metadata"]["name"]]
    assert len(open_tickets(kubectl, "store_down")) == 2
    # One TicketOpened each, whoever opened them.
    for ticket in (first, second):
        reasons = event_reasons(kubectl, "OperatorTicket", ticket["metadata"]["name"])
        assert reasons.count("TicketOpened") == 1, reasons


def test_sigterm_hands_the_lease_over_within_seconds(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any],
) -> None:
    a, b = replicas(start_operator, namespace)
    make_cluster(tikv.pd_url)
    leader, standby = roles(a, b)
    eventually(lambda: checks(leader) >= 1, what="the leader to check")

    started = time.monotonic()
    code = leader.stop()  # SIGTERM, as a rolling update or a node drain stops the pod
    eventually(lambda: standby.metric("tikv_operator_leader") == 1.0, timeout=15, interval=0.1,
               what="the standby to take the released Lease")
    took = time.monotonic() - started
    assert code == 0, leader.log()
    assert took <= RETRY_PERIOD_S * 1.1 + SLACK_S, f"handover after SIGTERM took {took:.1f}s"
    assert "stopped leading: shutting down" in leader.log()
    assert f"released lease {namespace}/tikv-operator" in leader.log()
    assert holder(kubectl) == standby.identity()
    eventually(lambda: checks(standby) >= 1, timeout=10, what="the new leader's first check")


def test_a_frozen_holder_writes_nothing_once_it_lost_the_lease(
    kubectl: Cli, namespace: str, platform: PlatformInfo, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any],
) -> None:
    """SIGSTOP past the renew deadline is what a partition from the API server looks like to the others:
    the holder is silent, then comes back believing it still leads, maybe in the middle of a check."""
    a, b = replicas(start_operator, namespace)
    make_cluster(tikv.pd_url, tickets={"refreshInterval": "1s"})  # every check writes: many chances to be wrong
    leader, standby = roles(a, b)
    tikv.fault(kind="stop-store", store=1)
    wait_for_ticket(kubectl, "store_down", "1")
    frozen = leader.identity()
    # The audit log does attribute writes to the replica: the leader's are there (the test can fail).
    before = writes(platform.audit_log, frozen, namespace)
    assert {w.resource for w in before} >= {"operatortickets", "operatortickets/status", "events", "leases"}, before

    # PD answers after 0.7 s: most of the time a check is waiting on it, so the freeze likely catches the
    # holder in the middle of one, with its writes still to come.
    tikv.fault(kind="pd", mode="hang", hang_seconds=0.7)
    time.sleep(2)
    leader.pause()
    try:
        eventually(lambda: standby.metric("tikv_operator_leader") == 1.0, timeout=LEASE_DURATION_S + 10,
                   what="the standby to take the Lease from the frozen holder")
        eventually(lambda: any(w.resource == "operatortickets/status"
                               for w in writes(platform.audit_log, standby.identity(), namespace)),
                   timeout=15, what="the new leader to write the open ticket")
        resumed = datetime.now(UTC)
    finally:
        leader.resume()
    eventually(lambda: "stopped leading: " in leader.log(), timeout=15, what="the old holder to notice")
    assert leader.metric("tikv_operator_leader") == 0.0
    time.sleep(3)  # time enough for any write it still had in mind

    late = [str(w) for w in writes(platform.audit_log, frozen, namespace) if w.received >= resumed]
    assert late == [], "the replica that lost the Lease wrote:\n" + "\n".join(late)
    assert holder(kubectl) == standby.identity()
    settled = checks(leader)
    still(lambda: checks(leader) == settled, seconds=2)
    assert len(tickets_for(kubectl, "1")) == 1
