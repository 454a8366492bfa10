"""Rule 24: an operator restart or a leader handover changes no verdict. A fresh ClusterChecker (a new process,
or ClusterLoop's checker of a new term) resumed from the status the last one wrote goes on from the same
memory of the stores: a store_leader_lost or store_restarted ticket whose condition persists stays open, and a
memory that cannot vouch (none written, too old) makes those verdicts unknown, never ok."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.adapters.fake_kube import FakeCore, FakeObjects
from tests.unit.core.test_catalogue import GIB, healthy_rows, row, with_rows
from tests.unit.core.test_catalogue import observe as catalogue_observe
from tests.unit.core.test_catalogue import store as catalogue_store
from tests.unit.test_checker import cluster_body, index_of, settings_for
from tikv_operator.checks.checker import CheckResult, ClusterChecker
from tikv_operator.checks.core.invariants.declarations import DECLARATIONS
from tikv_operator.checks.core.observation import MetricsObservation, Observation, PDObservation, Series, Store
from tikv_operator.checks.core.queries import KEY_LABEL, P99_LATENCY, PD_HEALTH, STORE_HEALTH, STORE_SIZE
from tikv_operator.kube.writer import KubeWriter

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
STEP = timedelta(seconds=30)
LONG_AGO = int((T0 - timedelta(days=3)).timestamp())  # stores 1 and 3 started days before


def crash_loop_start(at: datetime) -> int:
    """Store 2 restarts every two minutes from T0 + 1m: PD's start_timestamp of its current process."""
    if at < T0 + timedelta(minutes=1):
        return LONG_AGO
    return int((T0 + timedelta(minutes=1) + (at - T0 - timedelta(minutes=1)) // timedelta(minutes=2)
                * timedelta(minutes=2)).timestamp())


def observed(at: datetime) -> Observation:
    """Store 1 holds leaders until T0 + 1m and none after (evicted), while stores 2 and 3 hold theirs."""
    stores = (Store("1", "tikv-1:20160", start_timestamp=LONG_AGO, leader_count=10 if at < T0 + STEP * 2 else 0),
              Store("2", "tikv-2:20160", start_timestamp=crash_loop_start(at), leader_count=10),
              Store("3", "tikv-3:20160", start_timestamp=LONG_AGO, leader_count=10))
    return Observation("basic", at, PDObservation("http://pd:2379", True, stores),
                       MetricsObservation("http://prom:9090", True))


def body_of(objects: FakeObjects) -> dict[str, Any]:
    return objects.store[("tikvclusters", "basic")]


def run(checker: ClusterChecker, objects: FakeObjects, at: datetime) -> CheckResult:
    body = body_of(objects)
    return asyncio.run(checker.check(body, settings_for(body), index_of(objects), now=at))


def new_checker(objects: FakeObjects) -> ClusterChecker:
    """A checker as a new process or a new term makes it: nothing in memory but what the status says."""
    async def observer(_: Any, now: datetime, __: Any) -> Observation:
        return observed(now)

    objects.store.setdefault(("tikvclusters", "basic"), cluster_body())
    return ClusterChecker("ns", "basic", observer, KubeWriter(objects, FakeCore()))  # type: ignore[arg-type]


def both_tickets_open() -> tuple[FakeObjects, list[datetime]]:
    """An old checker watches from T0 until both tickets are open (store_leader_lost's 10m grace)."""
    objects = FakeObjects()
    clock = [T0]
    old = new_checker(objects)
    while clock[0] < T0 + timedelta(minutes=12, seconds=30):
        run(old, objects, clock[0])
        clock[0] += STEP
    assert open_tickets(objects) == {("store_leader_lost", "1"), ("store_restarted", "2")}
    return objects, clock


def open_tickets(objects: FakeObjects) -> set[tuple[str, str]]:
    return {(t.invariant, t.store) for t in index_of(objects)() if t.phase == "Open"}


def verdicts(result: CheckResult) -> dict[tuple[str, str], str]:
    return {(f.invariant, f.store): f.verdict for f in result.findings
            if f.invariant in ("store_leader_lost", "store_restarted")}


def resolved(result: CheckResult) -> list[str]:
    return [op.event.reason for op in result.plan.operations if op.event and "Resolved" in op.event.reason]


def test_a_restart_or_a_new_term_keeps_open_leader_lost_and_restarted_tickets_open() -> None:
    objects, clock = both_tickets_open()
    # The process dies (or loses the Lease) after its last check; the next one checks 30 s later.
    fresh = new_checker(objects)
    result = run(fresh, objects, clock[0])
    assert resolved(result) == []
    assert open_tickets(objects) == {("store_leader_lost", "1"), ("store_restarted", "2")}
    found = verdicts(result)
    assert found[("store_leader_lost", "1")] == "violated"
    assert found[("store_restarted", "2")] == "violated"
    # And again: the resumed memory goes on learning (store 2's next restart is counted).
    clock[0] += STEP
    again = run(fresh, objects, clock[0])
    assert verdicts(again)[("store_restarted", "2")] == "violated"
    assert resolved(again) == []


def test_a_memory_nobody_kept_up_is_not_carried_and_its_verdicts_are_unknown_not_ok() -> None:
    objects, clock = both_tickets_open()
    # Every replica was down for ten minutes: what happened meanwhile was not watched (rule 16's staleness).
    clock[0] += timedelta(minutes=10)
    fresh = new_checker(objects)
    result = run(fresh, objects, clock[0])
    found = {(f.invariant, f.store): f for f in result.findings}
    assert found[("store_leader_lost", "1")].verdict == "unknown"
    assert "judged again once it holds leaders or restarts" in found[("store_leader_lost", "1")].message
    assert found[("store_restarted", "2")].verdict == "unknown"
    assert "judged again at 2026-11-25T03:32:30Z" in found[("store_restarted", "2")].message
    assert found[("store_restarted", "1")].verdict == "ok"  # its process is days old: no restart in the window
    assert resolved(result) == []
    assert open_tickets(objects) == {("store_leader_lost", "1"), ("store_restarted", "2")}
    # The memory started over: the status says so, and the next process cannot take the stale one as recent.
    assert body_of(objects)["status"]["storeMemory"]["since"] == "2026-11-25T03:22:30Z"


def test_a_status_without_memory_makes_the_verdicts_unknown_not_ok() -> None:
    """An operator upgraded from a version that kept the memory in the process only."""
    objects, clock = both_tickets_open()
    status = body_of(objects)["status"]
    status.pop("storeMemory")
    fresh = new_checker(objects)
    result = run(fresh, objects, clock[0])
    found = verdicts(result)
    assert (found[("store_leader_lost", "1")], found[("store_restarted", "2")]) == ("unknown", "unknown")
    assert resolved(result) == []


def test_a_change_of_memory_is_written_by_the_check_that_saw_it() -> None:
    """Status writes are coalesced per refresh interval (rule 3), but a restart sighting or a store that led is
    written at once: a SIGKILL after that check loses nothing of it."""
    objects, clock = both_tickets_open()
    checker = new_checker(objects)
    run(checker, objects, clock[0])
    restarted = run(checker, objects, clock[0] + STEP)  # store 2 restarts at 03:13:00
    assert restarted.status_written
    (store,) = [s for s in body_of(objects)["status"]["storeMemory"]["stores"] if s["id"] == "2"]
    assert "2026-11-25T03:13:00Z" in store["restarts"]
    quiet = run(checker, objects, clock[0] + STEP * 2)  # nothing new but the time: coalesced
    assert not quiet.status_written


# --- Every invariant: a restart or a handover in the middle of its open ticket changes no verdict ----------

CATALOGUE_SPEC = {"pd": {"url": "http://basic-pd.tidb:2379"}, "prometheus": {"url": "http://prom:9090"}}
OPEN_BY = 24  # checks of the old process: past the longest grace period (10m) of every invariant


def restarting_start(k: int) -> int:
    """Store 2 restarts at checks 20, 21 and 22, then runs: PD's start_timestamp at check k."""
    return LONG_AGO if k < 20 else int((T0 + STEP * min(k, 22)).timestamp())


def pd_row(check: str, value: float, **labels: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    drop = check if check != "pd_regions" else ""
    return lambda v: with_rows(v if drop else {**v, PD_HEALTH: tuple(r for r in v[PD_HEALTH] if r.labels.get(
        "type") != labels.get("type"))}, PD_HEALTH, row(check, value, **labels), drop=drop)


def store_row(check: str, value: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda v: with_rows(v, STORE_HEALTH, row(check, value, "basic-tikv-0"), drop=check)


# How each invariant is violated at check k (store 1 or the cluster): stores and Prometheus' rows.
STORE_FAULTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "store_down": lambda k: {"state": "Down"},
    "store_slow": lambda k: {"slow_score": 100.0},
    "store_low_space": lambda k: {"available_bytes": GIB},
    "store_leader_lost": lambda k: {"leader_count": 10 if k < 2 else 0},
}
ROW_FAULTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "high_latency": lambda v: {**v, P99_LATENCY: (Series({KEY_LABEL: "basic-tikv-0", "type": "kv_get"}, 5.0),
                                                  *v[P99_LATENCY][1:])},
    "low_disk_space": lambda v: {**v, STORE_SIZE: (Series({KEY_LABEL: "basic-tikv-0", "type": "available"}, GIB),
                                                   *(s for s in v[STORE_SIZE] if not (
                                                       s.labels[KEY_LABEL] == "basic-tikv-0"
                                                       and s.labels["type"] == "available")))},
    "region_miss_peer": pd_row("pd_regions", 500, type="miss-peer-region-count"),
    "region_down_peer": pd_row("pd_regions", 5, type="down-peer-region-count"),
    "region_pending_peer": pd_row("pd_regions", 500, type="pending-peer-region-count"),
    "pd_leader_flapping": pd_row("pd_leader_changes", 5),
    "raft_log_lag": store_row("raft_log_lag", 10000),
    "raft_append_slow": store_row("raft_append_slow", 5.0),
    "raft_apply_slow": store_row("raft_apply_slow", 5.0),
    "write_stall": store_row("write_stall", 1500),
    "critical_error": lambda v: with_rows(v, STORE_HEALTH, row("critical_error", 1, "basic-tikv-0")),
}


def faulty(invariant: str, k: int, at: datetime) -> Observation:
    one = STORE_FAULTS.get(invariant, lambda _: {})(k)
    state = one.pop("state", "Up")
    two = {"start_timestamp": restarting_start(k)} if invariant == "store_restarted" else {}
    stores = (catalogue_store("1", state, **one), catalogue_store("2", **two), catalogue_store("3"))
    values = ROW_FAULTS.get(invariant, lambda v: v)(healthy_rows())
    obs = catalogue_observe(stores, values, at=at, reachable=invariant != "prometheus_unreachable")
    if invariant == "pd_unreachable":
        obs = replace(obs, pd=PDObservation(obs.pd.url, False, error="connection refused"))
    return obs


def catalogue_checker(objects: FakeObjects, invariant: str, k: list[int]) -> ClusterChecker:
    async def observer(_: Any, now: datetime, __: Any) -> Observation:
        return faulty(invariant, k[0], now)

    objects.store.setdefault(("tikvclusters", "basic"), cluster_body(spec=CATALOGUE_SPEC))
    return ClusterChecker("ns", "basic", observer, KubeWriter(objects, FakeCore()))  # type: ignore[arg-type]


@pytest.mark.parametrize("invariant", [e.name for e in DECLARATIONS])
def test_a_restart_or_handover_mid_ticket_changes_no_verdict(invariant: str) -> None:
    objects, k = FakeObjects(), [0]
    old = catalogue_checker(objects, invariant, k)
    for k[0] in range(OPEN_BY + 1):
        before = run(old, objects, T0 + STEP * k[0])
    tickets = open_tickets(objects)
    assert any(name == invariant for name, _ in tickets), "the fault opened no ticket"
    # The process is SIGKILLed or loses the Lease; the next checker (a new process or a new term) takes up from
    # the status 30 s later, and PD and Prometheus still say the same.
    fresh = catalogue_checker(objects, invariant, k)
    after = run(fresh, objects, T0 + STEP * (OPEN_BY + 1))
    was = {f.identity: f.verdict for f in before.findings}
    now = {f.identity: f.verdict for f in after.findings}
    changed = {i: (was.get(i), v) for i, v in now.items() if was.get(i) != v}
    assert changed == {}, "a restart changed verdicts"
    assert resolved(after) == []
    assert open_tickets(objects) == tickets
