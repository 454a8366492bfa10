"""The catalogue beyond the first five invariants: each rule's threshold, gate and unknowns, and
the PromQL that feeds it, pinned so that a typo like upstream's (an underscored label value, `=` on a
regex, a dead metric) cannot pass."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tikv_operator.checks.core.catalogue import ENTRIES, INVARIANT_NAMES
from tikv_operator.checks.core.cluster_status import custom_invariants
from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.invariants import evaluate
from tikv_operator.checks.core.observation import MetricsObservation, Observation, PDObservation, Series, Store
from tikv_operator.checks.core.queries import (
    CHECK_LABEL,
    CUSTOM,
    KEY_LABEL,
    P99_LATENCY,
    PD_HEALTH,
    STORE_HEALTH,
    STORE_SIZE,
    with_matchers,
)
from tikv_operator.checks.core.settings import configure, queries_for
from tikv_operator.checks.core.store_memory import EMPTY, StoreMemory, remember
from tikv_operator.model.cluster_resource import TiKVClusterSpec

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
GIB = 2**30


def spec(**fields: Any) -> TiKVClusterSpec:
    return TiKVClusterSpec.model_validate({"pd": {"url": "http://basic-pd.tidb:2379"},
                                           "prometheus": {"url": "http://prom:9090", **fields.pop("prometheus", {})},
                                           **fields})


def store(id: str, state: str = "Up", **fields: Any) -> Store:
    pod = f"basic-tikv-{int(id) - 1}"
    fields.setdefault("capacity_bytes", 100 * GIB)
    fields.setdefault("available_bytes", 60 * GIB)
    fields.setdefault("slow_score", 1.0)
    fields.setdefault("leader_count", 10)
    fields.setdefault("start_timestamp", 1_700_000_000)
    return Store(id, f"{pod}.basic-tikv-peer.tidb.svc:20160", f"{pod}.basic-tikv-peer.tidb.svc:20180", state,
                 **fields)


def row(check: str, value: float, key: str = "", **labels: str) -> Series:
    """A row of a union query: its check label, the store key for per-store checks."""
    return Series({CHECK_LABEL: check, **({KEY_LABEL: key} if key else {}), **labels}, value)


def healthy_rows(stores: int = 3) -> dict[str, tuple[Series, ...]]:
    per_store = [r for i in range(stores) for r in (
        row("raft_log_lag", 10, f"basic-tikv-{i}"), row("raft_append_slow", 0.005, f"basic-tikv-{i}"),
        row("raft_apply_slow", 0.004, f"basic-tikv-{i}"), row("write_stall", 0, f"basic-tikv-{i}"),
        row("write_stall_l0", 2, f"basic-tikv-{i}"))]
    sizes = [Series({KEY_LABEL: f"basic-tikv-{i}", "type": t}, v) for i in range(stores)
             for t, v in (("capacity", 100 * GIB), ("available", 60 * GIB))]
    pd = [row("pd_regions", 0, type=t) for t in ("miss-peer-region-count", "down-peer-region-count",
                                                  "pending-peer-region-count")]
    pd += [row("pd_leaders", 1), row("pd_leader_changes", 0), row("pd_leader_settled", 1)]
    p99 = [Series({KEY_LABEL: f"basic-tikv-{i}", "type": "kv_get"}, 0.01) for i in range(stores)]
    return {STORE_HEALTH: tuple(per_store), STORE_SIZE: tuple(sizes), PD_HEALTH: tuple(pd), P99_LATENCY: tuple(p99)}


def with_rows(values: dict[str, tuple[Series, ...]], query: str, *rows: Series, drop: str = "") -> dict[str, Any]:
    kept = tuple(r for r in values[query] if not drop or r.labels.get(CHECK_LABEL) != drop)
    return {**values, query: kept + rows}


def observe(stores: tuple[Store, ...], values: dict[str, tuple[Series, ...]] | None = None,
            failures: dict[str, str] | None = None, at: datetime = NOW, cluster: TiKVClusterSpec | None = None,
            reachable: bool = True) -> Observation:
    cluster = cluster or spec()
    queries, parts = queries_for(cluster, configure(cluster))
    metrics = MetricsObservation("http://prom:9090", reachable, queries, healthy_rows() if values is None else values,
                                 "" if reachable else "connection refused", failures or {}, parts=parts)
    return Observation("basic", at, PDObservation("http://pd", True, stores), metrics)


def judge(obs: Observation, memory: StoreMemory = EMPTY, cluster: TiKVClusterSpec | None = None
          ) -> dict[tuple[str, str], Finding]:
    found = evaluate(obs, configure(cluster or spec()), memory)
    result = {f.identity: f for f in found}
    assert len(result) == len(found), "two findings for one identity"
    return result


STORES = (store("1"), store("2"), store("3"))


def test_a_healthy_cluster_is_ok_on_every_invariant() -> None:
    found = judge(observe(STORES))
    assert {f.invariant for f in found.values()} == set(INVARIANT_NAMES)
    assert {(f.identity, f.verdict) for f in found.values() if f.verdict != "ok"} == set()


def test_a_store_that_is_not_up_inhibits_every_store_scoped_invariant_but_down_and_restarts() -> None:
    """Rule 9, for the built-ins and a store-scoped custom invariant alike (one wrapper, engine.up_only)."""
    cluster = spec(customInvariants=[{"name": "mine", "expr": "x{$matchers} > 0", "scope": "store"}])
    found = judge(observe((store("1", "Disconnected"), *STORES[1:]), cluster=cluster), cluster=cluster)
    judged_anyway = {"store_down", "store_restarted"}
    inhibited = {name for name, e in ENTRIES.items() if e.scope == "store"} - judged_anyway | {"mine"}
    for name in inhibited:
        f = found[(name, "1")]
        assert (f.verdict, f.cause, f.evidence["inhibitedBy"]) == ("unknown", "inhibited", "store_down"), name
    for name in judged_anyway:
        assert found[(name, "1")].cause != "inhibited", name


# --- from PD's /stores ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("score", "verdict"), [(79, "ok"), (80, "violated"), (100, "violated")])
def test_store_slow_at_pds_own_threshold(score: float, verdict: str) -> None:
    found = judge(observe((store("1", slow_score=score),)))[("store_slow", "1")]
    assert (found.verdict, found.severity, found.evidence["slowScore"]) == (verdict, "critical", score)


def test_store_slow_without_a_score_is_unknown_and_not_up_is_inhibited() -> None:
    assert judge(observe((store("1", slow_score=None),)))[("store_slow", "1")].cause == "no-data"
    tiflash = store("2", slow_score=None, labels=(("engine", "tiflash"),))
    assert ("store_slow", "2") not in judge(observe((tiflash,)))
    assert judge(observe((store("1", "Disconnected", slow_score=99),)))[("store_slow", "1")].cause == "inhibited"


@pytest.mark.parametrize(("available", "verdict", "clears"),
                         [(19, "violated", True), (20, "ok", False), (24.9, "ok", False), (25, "ok", True)])
def test_store_low_space_below_a_fifth_free_with_a_clear_margin(available: float, verdict: str, clears: bool) -> None:
    found = judge(observe((store("1", available_bytes=int(available * GIB)),)))[("store_low_space", "1")]
    assert (found.verdict, found.clears) == (verdict, clears)
    assert found.evidence["source"] == "GET /pd/api/v1/stores"


def test_store_low_space_with_pds_0b_capacity_is_unknown() -> None:
    found = judge(observe((store("1", capacity_bytes=0, available_bytes=0),)))[("store_low_space", "1")]
    assert (found.verdict, found.cause) == ("unknown", "no-data")


def _restarts(*starts: int, gap: timedelta = timedelta(seconds=30), window: str = "10m"
              ) -> dict[tuple[str, str], Finding]:
    cluster = spec(invariants={"store_restarted": {"window": window}})
    memory, obs = EMPTY, None
    for i, start in enumerate(starts):
        obs = observe((store("1", start_timestamp=start),), at=NOW + i * gap, cluster=cluster)
        memory = remember(memory, obs, timedelta(minutes=10))
    assert obs is not None
    return judge(obs, memory, cluster)


def test_store_restarted_counts_changes_of_start_timestamp_in_the_window() -> None:
    assert _restarts(100, 100, 100)[("store_restarted", "1")].verdict == "ok"
    once = _restarts(100, 200, 200)[("store_restarted", "1")]
    assert (once.verdict, once.evidence["restarts"]) == ("ok", 1)  # one restart is routine (a rolling restart)
    twice = _restarts(100, 200, 300)[("store_restarted", "1")]
    assert (twice.verdict, twice.evidence["restarts"], twice.severity) == ("violated", 2, "warning")
    # 0 is PD's "1970" start before the first heartbeat: not a restart, and not forgotten either.
    assert _restarts(100, 0, 100)[("store_restarted", "1")].evidence["restarts"] == 0
    # Restarts older than the window no longer count.
    old = _restarts(100, 200, 300, 300, gap=timedelta(seconds=20), window="30s")[("store_restarted", "1")]
    assert old.verdict == "ok"


def test_a_restart_seen_late_counts_from_when_it_happened_not_from_when_it_was_seen() -> None:
    """Found by the fault soak: a store restarted while PD answered 'malformed' for 33 s; the check that
    finally saw it took that moment as the restart's, and a rolling restart 42 s later made two restarts in a
    60 s window, although they were 74 s apart."""
    cluster = spec(invariants={"store_restarted": {"window": "60s"}})
    base = int(NOW.timestamp())
    sightings = [(0, base - 600), (13, base - 600),  # PD answers until 13 s; the store restarts at 15 s
                 (48, base + 15),  # PD is back at 48 s and shows that restart for the first time
                 (90, base + 89)]  # a rolling restart at 89 s: 74 s after the first
    memory, obs = EMPTY, None
    for at, start in sightings:
        obs = observe((store("1", start_timestamp=start),), at=NOW + timedelta(seconds=at), cluster=cluster)
        memory = remember(memory, obs, timedelta(seconds=60))
    assert obs is not None
    found = judge(obs, memory, cluster)[("store_restarted", "1")]
    assert (found.verdict, found.evidence["restarts"]) == ("ok", 1)


def test_memory_is_kept_while_pd_does_not_answer_and_forgets_stores_pd_dropped() -> None:
    obs = observe((store("1", start_timestamp=100), store("2")))
    memory = remember(EMPTY, obs, timedelta(minutes=10))
    blind = replace(obs, pd=PDObservation("http://pd", False, error="down"))
    assert remember(memory, blind, timedelta(minutes=10)) == memory
    assert set(remember(memory, observe((store("2"),)), timedelta(minutes=10)).starts) == {"2"}


def test_store_leader_lost_only_for_a_store_that_held_leaders() -> None:
    before = observe((store("1"), store("2"), store("3")))
    memory = remember(EMPTY, before, timedelta(minutes=10))
    after = observe((store("1", leader_count=0), store("2"), store("3")))
    lost = judge(after, remember(memory, after, timedelta(minutes=10)))[("store_leader_lost", "1")]
    assert (lost.verdict, lost.evidence["otherStoresLeaders"], lost.grace_period) == ("violated", 20, None)
    assert ENTRIES["store_leader_lost"].grace_period == timedelta(minutes=10)
    # A new store (no leaders yet) is not flagged; nor is one that just restarted.
    fresh = observe((store("1"), store("2"), store("4", leader_count=0)))
    assert judge(fresh, remember(memory, fresh, timedelta(minutes=10)))[("store_leader_lost", "4")].verdict == "ok"
    restarted = observe((store("1", leader_count=0, start_timestamp=1_700_000_500), store("2"), store("3")))
    assert judge(restarted, remember(memory, restarted, timedelta(minutes=10)))[
        ("store_leader_lost", "1")].verdict == "ok"
    # Nobody holds leaders: PD's counts say nothing.
    none = observe(tuple(store(i, leader_count=0) for i in "123"))
    assert judge(none, remember(memory, none, timedelta(minutes=10)))[("store_leader_lost", "1")].verdict == "unknown"


# --- PD's gauges, through the leader gate --------------------------------------------------------------


def test_pd_health_reads_the_hyphenated_types_through_the_leader_gate() -> None:
    queries, parts = queries_for(spec(prometheus={"labelMatchers": {"tidb_cluster": "tidb-basic"}}), configure(spec()))
    regions = parts["pd_regions"][1]
    assert 'type=~"miss-peer-region-count|down-peer-region-count|pending-peer-region-count"' in regions
    assert "miss_peer" not in regions  # upstream's PD_miss_peer_region_count typo never matches
    assert '* ignoring (type) group_left () (etcd_server_is_leader{tidb_cluster="tidb-basic"} == 1)' in regions
    assert parts["pd_leaders"][1] == 'count((etcd_server_is_leader{tidb_cluster="tidb-basic"} == 1))'
    assert 'max(increase(etcd_server_leader_changes_seen_total{tidb_cluster="tidb-basic"}[10m]))' in queries[PD_HEALTH]
    # Members that led throughout the rate window: a new leader may still export its previous term's gauges.
    assert parts["pd_leader_settled"][1] == \
        'count(min_over_time(etcd_server_is_leader{tidb_cluster="tidb-basic"}[2m]) == 1)'


@pytest.mark.parametrize(("invariant", "kind", "value", "verdict"), [
    ("region_miss_peer", "miss-peer-region-count", 100, "ok"),
    ("region_miss_peer", "miss-peer-region-count", 101, "violated"),
    ("region_down_peer", "down-peer-region-count", 0, "ok"),
    ("region_down_peer", "down-peer-region-count", 1, "violated"),
    ("region_pending_peer", "pending-peer-region-count", 100, "ok"),
    ("region_pending_peer", "pending-peer-region-count", 101, "violated"),
])
def test_region_thresholds_are_the_official_ones(invariant: str, kind: str, value: float, verdict: str) -> None:
    values = healthy_rows()
    values[PD_HEALTH] = (*(r for r in values[PD_HEALTH] if r.labels.get("type") != kind),
                         row("pd_regions", value, type=kind))
    found = judge(observe(STORES, values))[(invariant, "")]
    assert (found.verdict, found.evidence["regions"]) == (verdict, value)


def test_a_pd_leader_elected_within_the_rate_window_does_not_clear_a_region_ticket() -> None:
    """Found by the fault soak: right after a PD leader change the new leader said 'leader' while it
    still exported the region gauges of its previous term (0 miss-peer), and a miss-peer ticket resolved
    mid-fault. Within the rate window of a change its low numbers are ok but clear nothing; high ones still
    count."""
    fresh = with_rows(healthy_rows(), PD_HEALTH, drop="pd_leader_settled")  # no member led all the window
    for name in ("region_miss_peer", "region_down_peer", "region_pending_peer"):
        found = judge(observe(STORES, fresh))[(name, "")]
        assert (found.verdict, found.clears) == ("ok", False)
        assert judge(observe(STORES, healthy_rows()))[(name, "")].clears is True
    high = with_rows(fresh, PD_HEALTH, row("pd_regions", 500, type="miss-peer-region-count"),
                     drop="pd_regions")
    assert judge(observe(STORES, high))[("region_miss_peer", "")].verdict == "violated"


@pytest.mark.parametrize(("leaders", "cause"), [(None, "no-data"), (2, "ambiguous")])
def test_region_gauges_without_exactly_one_pd_leader_are_unknown(leaders: int | None, cause: str) -> None:
    values = with_rows(healthy_rows(), PD_HEALTH, *([row("pd_leaders", leaders)] if leaders else []),
                       drop="pd_leaders")
    for name in ("region_miss_peer", "region_down_peer", "region_pending_peer"):
        found = judge(observe(STORES, values))[(name, "")]
        assert (found.verdict, found.cause) == ("unknown", cause)
    # Leader changes are counted during an election too, but not over several PD clusters' series.
    flapping = judge(observe(STORES, values))[("pd_leader_flapping", "")]
    assert (flapping.verdict, flapping.cause) == (("ok", "") if leaders is None else ("unknown", "ambiguous"))


@pytest.mark.parametrize(("changes", "verdict"), [(2.4, "ok"), (2.6, "violated"), (5, "violated")])
def test_pd_leader_flapping_counts_changes_not_one_routine_change(changes: float, verdict: str) -> None:
    values = with_rows(healthy_rows(), PD_HEALTH, row("pd_leader_changes", changes), drop="pd_leader_changes")
    assert judge(observe(STORES, values))[("pd_leader_flapping", "")].verdict == verdict


# --- TiKV's raft and storage metrics ------------------------------------------------------------------


@pytest.mark.parametrize(("check", "value", "verdict", "clears"), [
    ("raft_log_lag", 5000, "ok", False), ("raft_log_lag", 5001, "violated", True), ("raft_log_lag", 3999, "ok", True),
    ("raft_append_slow", 1.0, "ok", False), ("raft_append_slow", 1.2, "violated", True),
    ("raft_apply_slow", 1.5, "violated", True), ("raft_apply_slow", 0.1, "ok", True),
])
def test_raft_p99_thresholds(check: str, value: float, verdict: str, clears: bool) -> None:
    values = with_rows(healthy_rows(1), STORE_HEALTH, row(check, value, "basic-tikv-0"), drop=check)
    found = judge(observe((store("1"),), values))[(check, "1")]
    assert (found.verdict, found.clears, found.severity) == (verdict, clears, "critical")


def test_raft_p99_nan_is_idle_and_two_series_are_ambiguous() -> None:
    nan = with_rows(healthy_rows(1), STORE_HEALTH, row("raft_log_lag", math.nan, "basic-tikv-0"), drop="raft_log_lag")
    assert judge(observe((store("1"),), nan))[("raft_log_lag", "1")].cause == "idle"
    two = with_rows(healthy_rows(1), STORE_HEALTH, row("raft_log_lag", 1, "basic-tikv-0", namespace="a"),
                    row("raft_log_lag", 1, "basic-tikv-0", namespace="b"), drop="raft_log_lag")
    assert judge(observe((store("1"),), two))[("raft_log_lag", "1")].cause == "ambiguous"


@pytest.mark.parametrize(("stall", "l0", "verdict"), [(0, 80, "ok"), (1500, 2, "violated"), (0, 81, "violated")])
def test_write_stall_is_a_stall_in_the_window_or_l0_above_80(stall: float, l0: float, verdict: str) -> None:
    values = with_rows(healthy_rows(1), STORE_HEALTH, row("write_stall", stall, "basic-tikv-0"), drop="write_stall")
    values = with_rows(values, STORE_HEALTH, row("write_stall_l0", l0, "basic-tikv-0"), drop="write_stall_l0")
    assert judge(observe((store("1"),), values))[("write_stall", "1")].verdict == verdict


def test_write_stall_query_keeps_the_worst_stall_of_the_window_not_its_delta() -> None:
    _, parts = queries_for(spec(invariants={"write_stall": {"window": "5m"}}), configure(spec(
        invariants={"write_stall": {"window": "5m"}})))
    stall = parts["write_stall"][1]
    assert 'max_over_time(tikv_engine_write_stall{type="write_stall_max"}[5m])' in stall
    assert "delta(" not in stall
    assert "tikv_scheduler_l0_avg" in parts["write_stall_l0"][1]


def test_critical_error_absent_is_ok_only_for_a_scraped_store() -> None:
    found = judge(observe(STORES))[("critical_error", "1")]
    assert (found.verdict, found.message) == ("ok", "store 1: no critical error since it started")
    unscraped = {**healthy_rows(), STORE_SIZE: ()}
    assert judge(observe(STORES, unscraped))[("critical_error", "1")].cause == "no-data"
    errors = with_rows(healthy_rows(), STORE_HEALTH, row("critical_error", 1, "basic-tikv-0"))
    hit = judge(observe(STORES, errors))[("critical_error", "1")]
    assert (hit.verdict, hit.grace_period, ENTRIES["critical_error"].grace_period) == ("violated", None, timedelta(0))


def test_critical_error_query_counts_a_first_error_that_rate_misses() -> None:
    _, parts = queries_for(spec(), configure(spec()))
    expr = parts["critical_error"][1]
    assert "(increase(tikv_critical_error_total{}[1m]) > 0) or " in expr
    assert "(tikv_critical_error_total{} unless tikv_critical_error_total{} offset 1m)" in expr


def test_a_failed_union_query_blinds_only_its_own_checks() -> None:
    values = {k: v for k, v in healthy_rows().items() if k != STORE_HEALTH}
    found = judge(observe(STORES, values, failures={STORE_HEALTH: "HTTP 503: overloaded"}))
    for name in ("raft_log_lag", "raft_append_slow", "raft_apply_slow", "write_stall", "critical_error"):
        assert (found[(name, "1")].cause, "overloaded" in found[(name, "1")].message) == ("query-failed", True)
    assert found[("region_miss_peer", "")].verdict == "ok"
    assert found[("low_disk_space", "1")].verdict == "ok"


def test_at_most_five_queries_and_a_disabled_invariant_is_not_asked() -> None:
    customs = [{"name": f"mine_{i}", "expr": "up == 0"} for i in range(8)]
    full = spec(customInvariants=customs)
    queries, _ = queries_for(full, configure(full))
    assert len(queries) == 5
    assert queries[CUSTOM].count('"tikvops_check", "custom/mine_') == 8
    off = {name: {"enabled": False} for name in ("raft_log_lag", "region_miss_peer", "region_down_peer",
                                                 "region_pending_peer")}
    quiet = spec(invariants=off)
    queries, parts = queries_for(quiet, configure(quiet))
    assert "tikv_raftstore_log_lag" not in queries[STORE_HEALTH]
    assert "pd_regions_status" not in queries[PD_HEALTH]
    assert "raft_log_lag" not in parts


def test_every_override_applies_to_every_builtin() -> None:
    overrides = {name: {"threshold": 7, "gracePeriod": "7s", "severity": "info", "keepFiringFor": "3s"}
                 for name in INVARIANT_NAMES}
    configs = configure(spec(invariants=overrides))
    for name in INVARIANT_NAMES:
        c = configs[name]
        assert (c.threshold, c.grace_period, c.severity, c.keep_firing_for) == (
            7, timedelta(seconds=7), "info", timedelta(seconds=3)), name


# --- custom invariants ----------------------------------------------------------------------------------


def test_matchers_placeholder_expands_inside_braces_or_to_nothing() -> None:
    expr = 'sum by (instance) (rate(tikv_channel_full_total{type="x",$matchers}[5m])) > 0'
    assert with_matchers(expr, {"tidb_cluster": "tidb-basic", "a": 'q"'}) == (
        'sum by (instance) (rate(tikv_channel_full_total{type="x",a="q\\"",tidb_cluster="tidb-basic"}[5m])) > 0')
    assert with_matchers(expr, {}) == 'sum by (instance) (rate(tikv_channel_full_total{type="x",}[5m])) > 0'


def _custom(scope: str, rows: tuple[Series, ...], failure: str = "") -> tuple[TiKVClusterSpec, Observation]:
    cluster = spec(customInvariants=[{"name": "channel_full", "expr": "x{$matchers} > 0", "scope": scope,
                                      "summary": "channels are full", "severity": "critical", "for": "2m"}])
    values = {**healthy_rows(), CUSTOM: rows} if not failure else healthy_rows()
    return cluster, observe(STORES, values, {CUSTOM: failure} if failure else None, cluster=cluster)


def test_a_cluster_scoped_custom_invariant_is_violated_by_any_series() -> None:
    cluster, obs = _custom("cluster", (row("custom/channel_full", 3, instance="10.0.0.1:20180"),))
    found = judge(obs, cluster=cluster)[("channel_full", "")]
    assert (found.verdict, found.severity) == ("violated", "critical")
    assert found.message == "channels are full: 1 series: {instance='10.0.0.1:20180'} = 3"
    assert configure(cluster)["channel_full"].grace_period == timedelta(minutes=2)
    cluster, obs = _custom("cluster", ())
    assert judge(obs, cluster=cluster)[("channel_full", "")].verdict == "ok"


def test_a_store_scoped_custom_invariant_maps_series_to_stores() -> None:
    cluster, obs = _custom("store", (row("custom/channel_full", 3, "basic-tikv-1"),))
    found = judge(obs, cluster=cluster)
    assert (found[("channel_full", "2")].verdict, found[("channel_full", "1")].verdict) == ("violated", "ok")
    cluster, obs = _custom("store", (row("custom/channel_full", 3),))  # `sum(...)`: no instance left
    lost = judge(obs, cluster=cluster)[("channel_full", "1")]
    assert (lost.verdict, lost.cause) == ("unknown", "ambiguous")
    assert "must keep the instance and pod labels" in lost.message


def test_a_malformed_custom_expression_is_unknown_with_prometheus_own_error() -> None:
    error = "HTTP 400 Bad Request: bad_data: 1:9: parse error: unexpected right parenthesis ')'"
    cluster, obs = _custom("cluster", (), failure=error)
    findings = evaluate(obs, configure(cluster))
    found = {f.identity: f for f in findings}[("channel_full", "")]
    assert (found.verdict, found.cause) == ("unknown", "query-failed")
    status, reason, message = custom_invariants(findings) or ("", "", "")
    assert (status, reason) == ("False", "QueryFailed")
    assert "bad_data: 1:9: parse error: unexpected right parenthesis" in message
    assert {f.identity: f for f in findings}[("raft_log_lag", "1")].verdict == "ok"


def test_custom_names_cannot_take_a_builtin_name_or_repeat() -> None:
    with pytest.raises(ValueError, match="built-in invariant"):
        spec(customInvariants=[{"name": "store_down", "expr": "up"}])
    with pytest.raises(ValueError, match="unique"):
        spec(customInvariants=[{"name": "a_b", "expr": "up"}, {"name": "a_b", "expr": "up"}])


def test_a_memory_that_cannot_vouch_makes_restarts_and_leaders_lost_unknown_not_ok() -> None:
    """Rule 24: a memory that began now (an operator that just started, with no memory in the status) has
    not seen what came before it."""
    recent = int((NOW - timedelta(minutes=3)).timestamp())  # within store_restarted's 10m window
    obs = observe((store("1", leader_count=0), store("2", start_timestamp=recent), store("3")))
    found = judge(obs, remember(EMPTY, obs, timedelta(minutes=10)))
    lost = found[("store_leader_lost", "1")]
    assert (lost.verdict, lost.cause) == ("unknown", "history")
    assert not lost.blind  # every operator that starts goes through it: the cluster's health is not Unknown
    restarted = found[("store_restarted", "2")]
    assert (restarted.verdict, restarted.cause) == ("unknown", "history")
    assert "judged again at 2026-12-07T03:10:00Z" in restarted.message
    assert found[("store_restarted", "1")].verdict == "ok"  # its process started long before the window
    # Watched for a whole window, store 2 is judged; a store that restarted while watched is known to hold none.
    later = observe((store("1", leader_count=0, start_timestamp=recent), store("2", start_timestamp=recent),
                     store("3")), at=NOW + timedelta(minutes=10))
    memory = remember(remember(EMPTY, obs, timedelta(minutes=10)), later, timedelta(minutes=10))
    found = judge(later, memory)
    assert found[("store_restarted", "2")].verdict == "ok"
    assert found[("store_leader_lost", "1")].verdict == "ok"
