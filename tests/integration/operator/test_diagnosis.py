"""Correlated diagnosis end to end (design.md rules 26 and 27), through kubectl and the real Alertmanager's
webhook receiver: a store outage with the simulator's cascade on (Down, leaders moved, down peers, latency on the
stores that took over) pages once, through the Down store's ticket; every symptom ticket names it; the cause is
Diagnosed and its page carries the diagnosis; recovery pages no one. Then a symptom that outlives its cause pages
on its own. PD's clocks are seconds here (max-store-down-time 3 s) and the grace periods too."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness.kube import Cli, eventually
from harness.operator_process import (
    FAST_PD,
    OperatorProcess,
    SimulatedCluster,
    start_simulated_cluster,
    ticket,
    wait_for_phase,
    wait_for_ticket,
)

from tests.support.alertmanager import Alertmanager
from tikv_sim.store_model import Timing

StartOperator = Callable[..., OperatorProcess]
# Leaders move within 1 s and report the dead peers down 3 s later, at a region heartbeat a second; the stores
# that took over answer 3x slower for 20 s (the cascade's factor, over the simulator's 10 ms p99).
CASCADE = Timing(heartbeat_interval=FAST_PD.heartbeat_interval, disconnect_after=FAST_PD.disconnect_after,
                 down_after=FAST_PD.down_after, election_timeout=1, peer_down_after=3, region_heartbeat_interval=1,
                 latency_recovery=20, replace_seconds_per_region=600)
QUICK = {"gracePeriod": "3s"}


@pytest.fixture
def cascading(prometheus: Any, prom_targets: Any) -> Iterator[SimulatedCluster]:
    cluster = start_simulated_cluster(prometheus, prom_targets, cascade=True, timing=CASCADE)
    try:
        yield cluster
    finally:
        cluster.sim.__exit__(None, None, None)


def firing_names(am: Alertmanager, namespace: str) -> list[str]:
    return [n["labels"]["alertname"] for n in am.notifications(namespace=namespace) if n["status"] == "firing"]


def cause_of(kubectl: Cli, name: str) -> str:
    return str((ticket(kubectl, name).get("status") or {}).get("cause", {}).get("ticket", ""))


def wide_row(kubectl: Cli, name: str) -> dict[str, str]:
    """The ticket's row of `kubectl get operatortickets -o wide`, by column header."""
    lines = kubectl("get", "operatortickets", "-o", "wide").stdout.splitlines()
    header = lines[0]
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    rows = [{header[a:b].strip(): line[a:b].strip() for a, b in bounds} for line in lines[1:]]
    return next(r for r in rows if r["NAME"] == name)


def test_one_store_outage_pages_once_through_its_cause_and_a_symptom_that_outlives_it_pages_alone(
    kubectl: Cli, namespace: str, start_operator: StartOperator, cascading: SimulatedCluster,
    make_cluster: Callable[..., Any], alertmanager: Alertmanager,
) -> None:
    start_operator(extra_args=("--alertmanager-url", alertmanager.url, "--alert-resend-interval", "2s"))
    make_cluster(cascading.pd_url, prometheus={"rateWindow": "10s"}, invariants={
        "high_latency": {**QUICK, "threshold": 0.02}, "region_down_peer": QUICK})
    eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("health") == "Healthy",
               timeout=40, what="a Healthy cluster first")

    cascading.fault(kind="stop-store", store=3)
    down = wait_for_ticket(kubectl, "store_down", "3")["metadata"]["name"]
    regions = wait_for_ticket(kubectl, "region_down_peer", timeout=30)["metadata"]["name"]
    latency = [wait_for_ticket(kubectl, "high_latency", s, timeout=30)["metadata"]["name"] for s in ("1", "2")]
    for symptom in (regions, *latency):
        assert cause_of(kubectl, symptom) == down, f"{symptom} names its cause"
        assert wide_row(kubectl, symptom)["CAUSE"] == down
    assert wide_row(kubectl, down)["CAUSE"] in ("", "<none>")

    diagnosed = wait_for_phase(kubectl, down, "Diagnosed", timeout=15)
    diagnosis = diagnosed["status"]["diagnosis"]
    assert diagnosis["summary"].startswith("store 3 is Down since ")
    assert "region_down_peer" in diagnosis["summary"]
    assert diagnosis["runbook"] == "docs/runbooks/store_down.md"
    assert {regions} <= {e["ticket"] for e in diagnosis["explains"]}
    assert wide_row(kubectl, down)["PHASE"] == "Diagnosed"
    assert diagnosed["metadata"]["labels"]["tikvops.io/phase"] == "diagnosed"
    eventually(lambda: "region_down_peer" in alertmanager.alerts(namespace=namespace, alertname="store_down")[0]
               ["annotations"].get("diagnosis", ""), timeout=15, what="the diagnosis in the cause's alert")
    # A diagnosis silences nothing: the cause's page is not suppressed.
    assert not alertmanager.silences(ticket=down)

    # Recovery: latency settles while the store is still away, then the store comes back. Nothing pages.
    for name in latency:
        wait_for_phase(kubectl, name, "Resolved", timeout=45)
    cascading.fault(kind="start-store", store=3)
    wait_for_phase(kubectl, down, "Resolved", timeout=20)
    wait_for_phase(kubectl, regions, "Resolved", timeout=30)
    time.sleep(4)  # a few resends (every 2 s) and Alertmanager's 1 s group wait
    assert set(firing_names(alertmanager, namespace)) == {"store_down"}, "only the cause paged"

    # A symptom that outlives its cause: latency set on store 1 while store 2 is away, kept after it returns.
    cascading.fault(kind="stop-store", store=2)
    down2 = wait_for_ticket(kubectl, "store_down", "2")["metadata"]["name"]
    cascading.fault(kind="latency", store=1, p99_ms=50)
    slow = wait_for_ticket(kubectl, "high_latency", "1", timeout=30)["metadata"]["name"]
    eventually(lambda: cause_of(kubectl, slow) == down2, timeout=10, what="the latency ticket names store 2's")
    assert "high_latency" not in firing_names(alertmanager, namespace)
    cascading.fault(kind="start-store", store=2)
    wait_for_phase(kubectl, down2, "Resolved", timeout=20)
    # (The stores that took store 2's leaders are slow for 20 s after it left, so their latency may outlive it
    # too, and page as well: store 1's latency is the one this test keeps.)
    (paged,) = eventually(lambda: [n for n in alertmanager.notifications(namespace=namespace, alertname="high_latency",
                                                                         store="1") if n["status"] == "firing"],
                          timeout=20, what="store 1's latency pages on its own")
    assert "outlived its cause" in paged["alert"]["annotations"]["cause"]
    assert ticket(kubectl, slow)["status"]["phase"] == "Open"
