"""The invariant catalogue end to end: each invariant opens a ticket when tikv_sim shows its fault
to the real Prometheus (or in PD's answer), and resolves when the fault is gone, seen through kubectl.

Faults on different stores run at the same time, as they do in real incidents; the grace periods and
windows are shrunk (seconds instead of minutes) so the whole catalogue runs in a few minutes."""

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
    wait_for_phase,
    wait_for_ticket,
)

FAST = {"gracePeriod": "2s"}


def condition(kubectl: Cli, kind: str, name: str = "basic") -> dict[str, Any]:
    status = kubectl.json("get", "tkc", name).get("status", {})
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def resolved(kubectl: Cli, opened: dict[str, Any], timeout: float = 45) -> dict[str, Any]:
    done = wait_for_phase(kubectl, opened["metadata"]["name"], "Resolved", timeout=timeout)
    assert done["status"]["resolution"] == "auto"
    return done


def test_pd_answer_invariants_open_and_clear(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    """store_slow, store_low_space, store_restarted and store_leader_lost, from the one /stores answer."""
    make_cluster(tikv.pd_url, invariants={
        "store_slow": FAST, "store_low_space": FAST, "store_leader_lost": FAST, "low_disk_space": {"enabled": False},
        "store_restarted": {"window": "25s"}})
    eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("health") == "Healthy",
               timeout=40, what="a Healthy cluster first")
    tikv.fault(kind="slow-score", store=1, score=95)
    tikv.fault(kind="disk", store=2, percent=88)
    tikv.fault(kind="leaders", store=3, count=0)

    slow = wait_for_ticket(kubectl, "store_slow", "1")
    assert (slow["status"]["severity"], slow["status"]["evidence"]["slowScore"]) == ("critical", 95)
    space = wait_for_ticket(kubectl, "store_low_space", "2")
    assert space["status"]["evidence"]["availableRatio"] < 0.2
    leaders = wait_for_ticket(kubectl, "store_leader_lost", "3")
    assert leaders["status"]["evidence"]["leaderCount"] == 0
    assert "lost all its Raft leaders" in leaders["status"]["message"]

    # One restart is routine; the second within the window is a crash loop.
    tikv.fault(kind="restart-store", store=1, downtime=0.5)
    eventually(lambda: tikv.stores()[0]["running"], what="store 1 back")
    still(lambda: open_tickets(kubectl, "store_restarted") == [], seconds=3)
    tikv.fault(kind="restart-store", store=1, downtime=0.5)
    restarted = wait_for_ticket(kubectl, "store_restarted", "1", timeout=20)
    assert restarted["status"]["evidence"]["restarts"] == 2

    tikv.fault(kind="slow-score", store=1, score=1)
    tikv.fault(kind="disk", store=2, percent=30)
    tikv.fault(kind="leaders", store=3, count=20)
    for opened in (slow, space, leaders):
        resolved(kubectl, opened)
    resolved(kubectl, restarted, timeout=60)  # once the restarts leave the 25s window
    assert open_tickets(kubectl, "store_down") == []  # a 0.5 s restart is no down store


def test_raft_and_storage_invariants_open_and_clear(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    """raft_log_lag, raft_append_slow, raft_apply_slow, write_stall and critical_error from TiKV's metrics."""
    make_cluster(tikv.pd_url, prometheus={"rateWindow": "10s"}, invariants={
        "raft_log_lag": FAST, "raft_append_slow": FAST, "raft_apply_slow": FAST,
        "write_stall": {"gracePeriod": "2s", "window": "10s"}, "critical_error": {"window": "10s"}})
    eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("health") == "Healthy",
               timeout=40, what="a Healthy cluster first (every store has its raft and storage series)")
    tikv.fault(kind="raft-log-lag", store=1, entries=8000)
    tikv.fault(kind="raft-append", store=2, p99_ms=2000)
    tikv.fault(kind="raft-apply", store=3, p99_ms=1500)
    tikv.fault(kind="write-stall", store=1, micros=250000)
    tikv.fault(kind="critical-error", store=2)

    # The evidence is what the opening check saw: the rate window still held some healthy seconds then.
    lag = wait_for_ticket(kubectl, "raft_log_lag", "1")
    assert 5000 < lag["status"]["evidence"]["p99Entries"] <= 10240
    append = wait_for_ticket(kubectl, "raft_append_slow", "2")
    assert 1 < append["status"]["evidence"]["p99Seconds"] <= 2
    apply_ = wait_for_ticket(kubectl, "raft_apply_slow", "3")
    stall = wait_for_ticket(kubectl, "write_stall", "1")
    assert stall["status"]["evidence"]["maxStallMicros"] == 250000
    error = wait_for_ticket(kubectl, "critical_error", "2")
    assert error["status"]["severity"] == "critical"
    assert error["status"]["evidence"]["errors"] >= 1  # the store's first error: rate() would have missed it

    tikv.fault(kind="raft-log-lag", store=1, entries=10)
    tikv.fault(kind="raft-append", store=2, p99_ms=5)
    tikv.fault(kind="raft-apply", store=3, p99_ms=5)
    tikv.fault(kind="write-stall", store=1, micros=0)
    for opened in (lag, append, apply_, stall, error):  # stall and error: once out of their 10s windows
        resolved(kubectl, opened)


def test_pd_gauges_are_read_from_the_leader_only_and_flapping_counts_changes(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    """region_miss_peer, region_down_peer, region_pending_peer through the leader gate; pd_leader_flapping."""
    make_cluster(tikv.pd_url, invariants={
        "region_miss_peer": FAST, "region_down_peer": FAST, "region_pending_peer": FAST,
        "pd_leader_flapping": {"gracePeriod": "0s", "window": "30s"}})
    eventually(lambda: kubectl.json("get", "tkc", "basic").get("status", {}).get("health") == "Healthy",
               timeout=40, what="a Healthy cluster first")

    # Followers keep exporting stale region gauges: only the leader's count.
    tikv.fault(kind="regions", member="followers", **{"miss-peer": 500, "down-peer": 9, "pending-peer": 500})
    still(lambda: open_tickets(kubectl) == [], seconds=6)

    tikv.fault(kind="regions", **{"miss-peer": 150, "down-peer": 3, "pending-peer": 120})
    miss = wait_for_ticket(kubectl, "region_miss_peer")
    assert (miss["status"]["evidence"]["regions"], miss["status"]["severity"]) == (150, "critical")
    down = wait_for_ticket(kubectl, "region_down_peer")
    assert down["status"]["evidence"]["regions"] == 3
    pending = wait_for_ticket(kubectl, "region_pending_peer")
    assert pending["spec"].get("store", "") == ""  # cluster-wide
    tikv.fault(kind="regions", **{"miss-peer": 0, "down-peer": 0, "pending-peer": 0})
    for opened in (miss, down, pending):
        resolved(kubectl, opened)

    # One leader change is routine (an upgrade); three within the window is flapping.
    tikv.fault(kind="pd-leader-change", election_seconds=0.3, not_bootstrapped_seconds=0.2)
    still(lambda: open_tickets(kubectl, "pd_leader_flapping") == [], seconds=5)
    for _ in range(2):
        tikv.fault(kind="pd-leader-change", election_seconds=0.3, not_bootstrapped_seconds=0.2)
        eventually(lambda: tikv.sim.summary()["clusters"][0]["pd_leader_phase"] == "serving", what="a PD leader")
    flapping = wait_for_ticket(kubectl, "pd_leader_flapping", timeout=30)
    assert flapping["status"]["evidence"]["leaderChanges"] >= 3
    resolved(kubectl, flapping, timeout=60)  # once the changes leave the 30s window
    assert open_tickets(kubectl, "region_miss_peer") == []
    assert open_tickets(kubectl, "pd_unreachable") == []


def test_custom_invariants_open_resolve_and_a_malformed_one_is_a_condition(
    kubectl: Cli, operator: OperatorProcess, tikv: SimulatedCluster, make_cluster: Callable[..., Any],
) -> None:
    customs = [
        {"name": "l0_files_high", "scope": "store", "severity": "critical", "summary": "too many L0 files",
         "expr": "max by (instance) (tikv_scheduler_l0_avg{$matchers}) > 50", "for": "1s"},
        {"name": "any_l0_high", "expr": "max(tikv_scheduler_l0_avg{$matchers}) > 50", "keepFiringFor": "3s"},
    ]
    make_cluster(tikv.pd_url, customInvariants=customs)
    eventually(lambda: condition(kubectl, "CustomInvariants").get("reason") == "Evaluated", timeout=40,
               what="the custom invariants evaluated")

    tikv.fault(kind="l0-avg", store=2, files=60)
    per_store = wait_for_ticket(kubectl, "l0_files_high", "2")
    assert per_store["status"]["severity"] == "critical"
    assert per_store["status"]["message"].startswith("too many L0 files: store 2 ")
    assert per_store["metadata"]["labels"]["tikvops.io/invariant"] == "l0_files_high"
    cluster_wide = wait_for_ticket(kubectl, "any_l0_high")
    assert cluster_wide["metadata"]["name"] == "basic-any-l0-high-1"
    assert open_tickets(kubectl, "l0_files_high", "1") == []
    tikv.fault(kind="l0-avg", store=2, files=2)
    resolved(kubectl, per_store)
    resolved(kubectl, cluster_wide)

    # A malformed expression: a condition with Prometheus' own error, the other invariants still judged.
    broken = [*customs, {"name": "typo", "expr": "rate(tikv_scheduler_l0_avg{$matchers}[1m]"}]
    kubectl("patch", "tkc", "basic", "--type=merge", "-p",
            json.dumps({"spec": {"customInvariants": broken}}))
    failed = eventually(lambda: (c := condition(kubectl, "CustomInvariants")).get("status") == "False" and c,
                        timeout=30, what="the CustomInvariants condition to say what is wrong")
    assert failed["reason"] == "QueryFailed"
    assert failed["message"].startswith("typo: ")
    assert "bad_data" in failed["message"]
    assert "parse error" in failed["message"]
    tikv.fault(kind="l0-avg", store=3, files=70)
    wait_for_ticket(kubectl, "l0_files_high", "3")  # the good ones keep working
    assert operator.healthy()
    assert "TicketOpened" in event_reasons(kubectl, "TiKVCluster", "basic")
