"""Rule 22 the way a cluster's owner meets it: an invariant turned off with kubectl (`enabled: false`), or a
custom invariant taken out of the spec, closes its open tickets, held ones too, and the real Alertmanager
gets their alerts resolved, while the fault that opened them is still there."""

from __future__ import annotations

import json
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
    wait_for_phase,
    wait_for_ticket,
)

from tests.support.alertmanager import Alertmanager

StartOperator = Callable[..., OperatorProcess]
INTERVAL_S = 5
# Resolved within two check intervals of the edit, plus the second the operator takes to see a new spec.
WITHIN_TWO_INTERVALS = 2 * INTERVAL_S + 5


def test_disabling_an_invariant_resolves_its_tickets_held_ones_too_and_their_alerts(
    kubectl: Cli, namespace: str, start_operator: StartOperator, tikv: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    start_operator(extra_args=("--alertmanager-url", alertmanager.url, "--alert-resend-interval", "2s"))
    make_cluster(tikv.pd_url, interval=f"{INTERVAL_S}s", invariants={"store_slow": {"gracePeriod": "1s"}})
    tikv.fault(kind="slow-score", store=1, score=95)
    tikv.fault(kind="slow-score", store=2, score=95)
    first = wait_for_ticket(kubectl, "store_slow", "1", timeout=45)["metadata"]["name"]
    second = wait_for_ticket(kubectl, "store_slow", "2", timeout=45)["metadata"]["name"]
    # A person holds one of them: it would never auto-resolve.
    kubectl("patch", "operatorticket", second, "--type=merge", "-p", '{"spec":{"held":true}}')
    eventually(lambda: ticket(kubectl, second)["metadata"]["labels"].get("tikvops.io/held") == "true",
               timeout=20, what="the hold recorded")
    for name in (first, second):
        alertmanager.wait_for_notifications(1, status="firing", timeout=20, namespace=namespace, ticket=name)

    kubectl("patch", "tkc", "basic", "--type=merge", "-p",
            json.dumps({"spec": {"invariants": {"store_slow": {"enabled": False}}}}))
    why = "invariant store_slow was disabled (spec.invariants.store_slow.enabled: false)"
    for name in (first, second):
        done = wait_for_phase(kubectl, name, "Resolved", timeout=WITHIN_TWO_INTERVALS)
        assert done["status"]["resolution"] == "auto"
        assert done["status"]["resolutionMessage"] == why
    assert ticket(kubectl, second)["spec"].get("held") is False, "the disable wins over the hold"
    assert open_tickets(kubectl) == []
    for name in (first, second):
        alertmanager.wait_for_notifications(1, status="resolved", timeout=20, namespace=namespace, ticket=name)
    eventually(lambda: alertmanager.alerts(namespace=namespace, alertname="store_slow") == [], timeout=20,
               what="no store_slow alert active at Alertmanager")
    assert "TicketResolved" in event_reasons(kubectl, "TiKVCluster", "basic")
    # The stores are still slow: nothing opens again while the invariant is off.
    still(lambda: open_tickets(kubectl) == [], seconds=2 * INTERVAL_S)


def test_removing_a_custom_invariant_resolves_its_ticket(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    custom = {"name": "l0_files_high", "scope": "store", "severity": "critical",
              "expr": "max by (instance) (tikv_scheduler_l0_avg{$matchers}) > 50", "for": "1s"}
    make_cluster(tikv.pd_url, interval=f"{INTERVAL_S}s", customInvariants=[custom])
    tikv.fault(kind="l0-avg", store=2, files=60)
    name = wait_for_ticket(kubectl, "l0_files_high", "2", timeout=60)["metadata"]["name"]

    kubectl("patch", "tkc", "basic", "--type=merge", "-p", json.dumps({"spec": {"customInvariants": []}}))
    done = wait_for_phase(kubectl, name, "Resolved", timeout=WITHIN_TWO_INTERVALS)
    assert done["status"]["resolution"] == "auto"
    assert done["status"]["resolutionMessage"] == ("custom invariant l0_files_high was removed from "
                                                   "spec.customInvariants")
