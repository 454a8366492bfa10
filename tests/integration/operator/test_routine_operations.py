"""What real clusters do every week, through kubectl: a PD leader change and a rolling restart open no
ticket; a store that stays down opens one that escalates; a scale-in to Tombstone resolves the store's
tickets; a disk swinging across its threshold opens at most one ticket (design.md rules 12 and 13).

PD's clocks run 10x faster than PD's defaults (heartbeat 1 s, Disconnected after 2 s, persisted
heartbeats every 30 s), and store_down's grace period is shrunk the same way (6 s for 1m), so each
scenario keeps the real proportions: a rolling restart's 30 s of silence is 3 s here."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from harness.kube import Cli, eventually
from harness.operator_process import (
    OperatorProcess,
    SimulatedCluster,
    event_reasons,
    open_tickets,
    settled,
    start_simulated_cluster,
    still,
    ticket,
    tickets,
    wait_for_phase,
    wait_for_ticket,
)
from harness.prometheus import Prometheus, ScrapeTargets
from harness.stack import DATA_DELAY_S

from tikv_sim.store_model import Timing

FIELD_PD = Timing(heartbeat_interval=1.0, disconnect_after=2.0, down_after=12.0, persist_interval=30.0)
GRACE = {"store_down": {"gracePeriod": "6s"}}


@pytest.fixture
def field(prometheus: Prometheus, prom_targets: ScrapeTargets) -> Iterator[SimulatedCluster]:
    cluster = start_simulated_cluster(prometheus, prom_targets, timing=FIELD_PD)
    yield cluster
    cluster.sim.__exit__(None, None, None)


def healthy(kubectl: Cli, name: str = "basic") -> None:
    eventually(lambda: kubectl.json("get", "tkc", name).get("status", {}).get("health") == "Healthy",
               timeout=40, what=f"TiKVCluster {name} to be Healthy")


def pd_states(pd_url: str) -> tuple[int, dict[str, str]]:
    """(HTTP status, state_name by store id) of PD's /stores, as the operator reads it."""
    try:
        response = httpx.get(f"{pd_url}/pd/api/v1/stores", timeout=2)
    except httpx.HTTPError:
        return 0, {}
    if response.status_code != 200:
        return response.status_code, {}
    return 200, {str(e["store"]["id"]): e["store"].get("state_name", "") for e in response.json()["stores"]}


def watch_pd(pd_url: str, until: Callable[[dict[str, str]], bool], timeout: float) -> list[tuple[int, dict[str, str]]]:
    """PD's answers every 0.2 s until `until(states)` holds (after at least one non-Up sighting)."""
    seen: list[tuple[int, dict[str, str]]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, states = pd_states(pd_url)
        seen.append((status, states))
        if status == 200 and until(states) and any(s != 200 or set(st.values()) != {"Up"} for s, st in seen):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"PD never reached the expected states within {timeout}s; last: {seen[-3:]}")


def test_a_pd_leader_change_and_a_rolling_restart_open_no_ticket(
    kubectl: Cli, operator: OperatorProcess, field: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(field.pd_url, invariants=GRACE)
    healthy(kubectl)

    # reconnect_seconds holds the stores' heartbeats off the new leader for 1.5 s (a slow gRPC reconnect),
    # so the all-Disconnected window is wide enough for 0.2 s polling to see it every time.
    field.fault(kind="pd-leader-change", election_seconds=1.5, not_bootstrapped_seconds=0.5, reconnect_seconds=1.5)
    seen = watch_pd(field.pd_url, lambda states: set(states.values()) == {"Up"}, timeout=20)
    # The scenario did what a real election does: no leader (503), not bootstrapped (500), then every store
    # Disconnected on stale heartbeats until its next one reached the new leader.
    assert {503, 500} <= {status for status, _ in seen}
    assert any(states and set(states.values()) == {"Disconnected"} for _, states in seen)

    field.fault(kind="rolling-restart", downtime=3, gap=2)
    seen = watch_pd(field.pd_url, lambda states: set(states.values()) == {"Up"}
                    and field.sim.summary()["timelines_running"] == 0, timeout=40)
    disconnected = {sid for _, states in seen for sid, state in states.items() if state == "Disconnected"}
    assert disconnected == {"1", "2", "3"}  # each store went silent in turn
    restarted = field.stores()
    assert all(s["state_name"] == "Up" for s in restarted)

    still(lambda: tickets(kubectl) == [], seconds=8)  # past the grace period of the last restart
    assert "TicketOpened" not in event_reasons(kubectl, "TiKVCluster", "basic")
    healthy(kubectl)


def test_a_store_that_stays_down_opens_one_ticket_that_escalates_to_critical(
    kubectl: Cli, operator: OperatorProcess, field: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(field.pd_url, invariants=GRACE)
    healthy(kubectl)
    field.fault(kind="stop-store", store=2)

    opened = wait_for_ticket(kubectl, "store_down", "2", timeout=30)
    name = opened["metadata"]["name"]
    assert opened["status"]["severity"] == "warning"
    assert opened["status"]["evidence"]["stateName"] == "Disconnected"
    assert opened["metadata"]["labels"]["tikvops.io/severity"] == "warning"

    escalated = eventually(lambda: (t := ticket(kubectl, name))["status"]["severity"] == "critical" and settled(t)
                           and t, timeout=30, what="the ticket to escalate when PD calls the store Down")
    assert escalated["metadata"]["labels"]["tikvops.io/severity"] == "critical"
    assert escalated["status"]["message"].startswith("store 2 ")
    assert " is Down: no heartbeat for " in \
        escalated["status"]["message"]
    assert "SeverityChanged" in event_reasons(kubectl, "OperatorTicket", name)
    assert [t["metadata"]["name"] for t in tickets(kubectl)] == [name]  # one ticket per incident


def test_scale_in_to_tombstone_resolves_the_stores_tickets_saying_so(
    kubectl: Cli, operator: OperatorProcess, field: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    make_cluster(field.pd_url, invariants=GRACE)
    field.fault(kind="disk", store=3, percent=90)
    disk = wait_for_ticket(kubectl, "low_disk_space", "3", timeout=30 + DATA_DELAY_S)["metadata"]["name"]

    field.fault(kind="scale-in", store=3, drain_seconds=4)
    eventually(lambda: pd_states(field.pd_url)[1].get("3") == "Offline", timeout=10, what="store 3 Offline")
    # Offline is a planned removal, not a down store; the disk ticket waits (inhibited, not resolved).
    still(lambda: open_tickets(kubectl, "store_down") == [] and ticket(kubectl, disk)["status"]["phase"] == "Open",
          seconds=2)

    resolved = wait_for_phase(kubectl, disk, "Resolved", timeout=30)
    assert "3" not in pd_states(field.pd_url)[1]  # PD's default list no longer has it
    assert resolved["status"]["resolution"] == "auto"
    assert "is Tombstone: removed from the cluster" in resolved["status"]["resolutionMessage"]
    still(lambda: open_tickets(kubectl) == [], seconds=3)
    assert open_tickets(kubectl, "store_down") == []
    cluster = kubectl.json("get", "tkc", "basic")["status"]
    assert cluster["storesUp"] == "2/2"


def test_a_disk_swinging_across_its_threshold_opens_one_ticket(
    kubectl: Cli, operator: OperatorProcess, field: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    """Thirty seconds of 1 s checks, the disk crossing 70 % every other second: at 30 s checks that is a
    quarter of an hour of a disk swinging 60 % <-> 80 %, and one hovering 69 % <-> 71 %."""
    make_cluster(field.pd_url, invariants=GRACE)
    healthy(kubectl)
    for step in range(15):
        field.fault(kind="disk", store=1, percent=80 if step % 2 == 0 else 60)
        field.fault(kind="disk", store=2, percent=71 if step % 2 == 0 else 69)
        time.sleep(2)
    time.sleep(DATA_DELAY_S)  # until the checks have read every swing

    swinging = [t for t in tickets(kubectl) if t["spec"]["invariant"] == "low_disk_space" and t["spec"]["store"] == "1"]
    assert len(swinging) == 1, [t["metadata"]["name"] for t in swinging]
    status = swinging[0]["status"]
    assert len(status.get("reopenedAt", [])) >= 3  # it did clear and come back, each time the same ticket
    assert status["flapping"] is True
    assert "TicketReopened" in event_reasons(kubectl, "OperatorTicket", swinging[0]["metadata"]["name"])

    hovering = [t for t in tickets(kubectl) if t["spec"]["invariant"] == "low_disk_space" and t["spec"]["store"] == "2"]
    assert len(hovering) == 1
    assert hovering[0]["status"]["phase"] == "Open"  # 69 % is inside the clear margin: never resolved
    assert "reopenedAt" not in hovering[0]["status"]
