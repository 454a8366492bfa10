"""The invariant engine over recorded PD bodies and query results (reference/tikv.md examples, and the
deployments of reference/deployments.md)."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.pd_bodies import REFERENCE_STORES as REFERENCE_BODY
from tikv_operator.checks.core.findings import Finding
from tikv_operator.checks.core.invariants import CATALOGUE, evaluate
from tikv_operator.checks.core.observation import MetricsObservation, Observation, PDObservation, Series, Store
from tikv_operator.checks.core.pd_model import PDAnswerError, parse_stores
from tikv_operator.checks.core.queries import (
    CHECK_LABEL,
    EVAL_TIME,
    FOREGROUND_TYPES,
    KEY_LABEL,
    P99_LATENCY,
    PD_HEALTH,
    STORE_HEALTH,
    STORE_SIZE,
    check_queries,
)
from tikv_operator.checks.core.settings import configure
from tikv_operator.model.cluster_resource import TiKVClusterSpec

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
PD_URL = "http://basic-pd.tidb:2379"
PROM_URL = "http://basic-prometheus.tidb:9090"
GIB = 2**30

# The /stores example of reference/tikv.md: store 1 Up, store 4 Down with "0B" sizes.
REFERENCE_STORES = json.dumps(REFERENCE_BODY)
POD1 = "basic-tikv-0"  # store 1's pod: the key under TidbMonitor and kube-prometheus
S1 = "basic-tikv-0.basic-tikv-peer.tidb.svc:20180"  # store 1's status address: the key under tiup


def spec(**invariants: Any) -> TiKVClusterSpec:
    return TiKVClusterSpec.model_validate(
        {"pd": {"url": PD_URL}, "prometheus": {"url": PROM_URL}, "invariants": invariants}
    )


def stores_from(body: str) -> tuple[Store, ...]:
    return parse_stores(body).observed()


def store(id: str, state: str = "Up", pod: str | None = None, **fields: Any) -> Store:
    pod = pod or f"basic-tikv-{int(id) - 1}"
    return Store(id, f"{pod}.basic-tikv-peer.tidb.svc:20160", f"{pod}.basic-tikv-peer.tidb.svc:20180", state,
                 **fields)


def series(key: str, value: float, **labels: str) -> Series:
    """A sample as the check's queries return it: the store key label plus the scrape's labels."""
    return Series({KEY_LABEL: key, **labels}, value)


def healthy(key: str = POD1, p99: float = 0.012, capacity: float = 100 * GIB, available: float = 60 * GIB,
            **labels: str) -> dict[str, list[Series]]:
    return {P99_LATENCY: [series(key, p99, type="kv_get", **labels)],
            STORE_SIZE: [series(key, capacity, type="capacity", **labels),
                         series(key, available, type="available", **labels)]}


def merged(*parts: dict[str, list[Series]]) -> dict[str, list[Series]]:
    out: dict[str, list[Series]] = {}
    for part in parts:
        for name, values in part.items():
            out.setdefault(name, []).extend(values)
    return out


def metrics(values: dict[str, list[Series]] | None = None, reachable: bool = True, error: str = "",
            failures: dict[str, str] | None = None) -> MetricsObservation:
    answered = {name: tuple(v) for name, v in (values or {}).items()}
    return MetricsObservation(PROM_URL, reachable, check_queries({}), answered, error, failures or {})


def observe(stores: tuple[Store, ...], prom: MetricsObservation, pd_error: str = "",
            **pd_fields: Any) -> Observation:
    pd = PDObservation(PD_URL, not pd_error, () if pd_error else stores, pd_error, **pd_fields)
    return Observation("basic", NOW, pd, prom)


def judge(stores: tuple[Store, ...], prom: MetricsObservation, **overrides: Any) -> dict[tuple[str, str], Finding]:
    return by_identity(evaluate(observe(stores, prom), configure(spec(**overrides))))


def by_identity(findings: list[Finding]) -> dict[tuple[str, str], Finding]:
    result = {f.identity: f for f in findings}
    assert len(result) == len(findings), "two findings for one identity"
    return result


# --- store_down: PD's own semantics ------------------------------------------------------------------


def test_reference_example_down_store_is_violated_at_once_and_its_metric_invariants_inhibited() -> None:
    found = judge(stores_from(REFERENCE_STORES), metrics(healthy()))
    down = found[("store_down", "4")]
    assert down.verdict == "violated"
    assert down.severity == "critical"
    assert down.grace_period is not None
    assert down.grace_period.total_seconds() == 0
    assert down.message.startswith("store 4 (basic-tikv-1.basic-tikv-peer.tidb.svc:20160) is Down: no heartbeat for ")
    assert down.evidence["stateName"] == "Down"
    assert down.evidence["lastHeartbeat"] == "2025-11-24T23:46:40Z"
    assert found[("store_down", "1")].verdict == "ok"
    # The "0B" Down store gets no latency or disk verdict: inhibited, so unknown, never ok or violated.
    for name in ("high_latency", "low_disk_space"):
        assert found[(name, "4")].verdict == "unknown"
        assert found[(name, "4")].cause == "inhibited"
        assert not found[(name, "4")].blind
        assert found[(name, "4")].evidence["inhibitedBy"] == "store_down"
    assert found[("high_latency", "1")].verdict == "ok"
    assert found[("low_disk_space", "1")].verdict == "ok"
    assert found[("pd_unreachable", "")].verdict == "ok"
    assert found[("prometheus_unreachable", "")].verdict == "ok"


def test_disconnected_is_a_warning_that_waits_out_the_invariants_grace_period() -> None:
    found = judge((store("1", "Disconnected", last_heartbeat_ns=int((NOW.timestamp() - 25) * 1e9)),),
                  metrics(healthy()))
    disconnected = found[("store_down", "1")]
    assert disconnected.verdict == "violated"
    assert disconnected.severity == "warning"  # Down is critical; the ticket escalates (lifecycle)
    assert disconnected.grace_period is None  # the invariant's: 1m, longer than a PD leader change
    assert configure(spec())["store_down"].grace_period.total_seconds() == 60
    assert disconnected.message.endswith("is Disconnected: no heartbeat for 25s")
    assert found[("low_disk_space", "1")].cause == "inhibited"


def test_a_severity_override_is_the_down_severity_and_never_raises_disconnected() -> None:
    assert judge((store("1", "Down"),), metrics(), store_down={"severity": "emergency"})[
        ("store_down", "1")].severity == "emergency"
    assert judge((store("1", "Disconnected"),), metrics(), store_down={"severity": "emergency"})[
        ("store_down", "1")].severity == "warning"
    assert judge((store("1", "Disconnected"),), metrics(), store_down={"severity": "info"})[
        ("store_down", "1")].severity == "info"


def test_offline_is_a_planned_scale_in_not_a_down_store() -> None:
    found = judge((store("1"), store("2", "Offline")), metrics(healthy()))
    offline = found[("store_down", "2")]
    assert offline.verdict == "ok"
    assert "Offline: being removed (scale-in)" in offline.message
    assert found[("low_disk_space", "2")].cause == "inhibited"


def test_confirmed_tombstone_resolves_every_store_invariant_saying_so() -> None:
    gone = store("3", "Tombstone")
    found = by_identity(evaluate(observe((store("1"),), metrics(healthy()), tombstones=(gone,)),
                                 configure(spec())))
    for name in ("store_down", "high_latency", "low_disk_space"):
        assert found[(name, "3")].verdict == "ok"
        assert "is Tombstone: removed from the cluster" in found[(name, "3")].message


def test_a_ticketed_store_pd_lost_track_of_is_unknown_with_a_reason() -> None:
    found = by_identity(evaluate(observe((store("1"),), metrics(healthy()), unlisted=("9",)), configure(spec())))
    assert found[("store_down", "9")].verdict == "unknown"
    assert "no Tombstone record" in found[("store_down", "9")].message


def test_an_unknown_state_name_is_unknown_not_up() -> None:
    found = judge((store("1", "Unhealthy"),), metrics(healthy()))
    assert found[("store_down", "1")].verdict == "unknown"
    assert "'Unhealthy', a state this operator does not know" in found[("store_down", "1")].message


# --- metric invariants and the three instance conventions ----------------------------------------------


def test_reference_sizes_parse_both_formats() -> None:
    stores = stores_from(REFERENCE_STORES)
    assert stores[0].capacity_bytes == round(96.73 * GIB)
    assert stores[1].capacity_bytes == 0
    old = REFERENCE_STORES.replace('"96.73GiB"', '"937 GiB"')
    assert old != REFERENCE_STORES
    assert stores_from(old)[0].capacity_bytes == 937 * GIB


@pytest.mark.parametrize(("key", "labels", "convention"), [
    (S1, {"instance": S1}, "status-address"),  # tiup
    (POD1, {"instance": POD1, "tidb_cluster": "tidb-basic"}, "pod-name"),  # TidbMonitor
    (POD1, {"pod": POD1, "namespace": "tidb", "container": "tikv"}, "pod-name"),  # kube-prometheus (no instance)
])
def test_each_instance_convention_gives_disk_and_latency_verdicts(key: str, labels: dict[str, str],
                                                                  convention: str) -> None:
    found = judge(stores_from(REFERENCE_STORES), metrics(healthy(key, p99=0.25, available=10 * GIB, **labels)))
    assert found[("high_latency", "1")].verdict == "violated"
    assert found[("low_disk_space", "1")].verdict == "violated"
    assert found[("low_disk_space", "1")].evidence["key"] == key


def test_high_latency_names_the_worst_foreground_type() -> None:
    found = judge(stores_from(REFERENCE_STORES), metrics({P99_LATENCY: [series(POD1, 0.25, type="kv_prewrite")]}))
    latency = found[("high_latency", "1")]
    assert latency.verdict == "violated"
    assert latency.severity == "warning"
    assert latency.evidence["p99Seconds"] == 0.25
    assert latency.evidence["thresholdSeconds"] == 0.1
    assert latency.evidence["type"] == "kv_prewrite"
    assert "histogram_quantile(0.99" in latency.evidence["query"]
    assert latency.message == "store 1 p99 gRPC latency 250.0 ms (kv_prewrite) > 100 ms"


def test_low_disk_space_violated_with_evidence() -> None:
    disk = judge(stores_from(REFERENCE_STORES), metrics(healthy(available=15 * GIB)))[("low_disk_space", "1")]
    assert disk.verdict == "violated"
    assert disk.evidence["usedRatio"] == 0.85
    assert disk.evidence["capacityBytes"] == 100 * GIB
    assert disk.evidence["availableBytes"] == 15 * GIB
    assert disk.message == "store 1 disk 85.0% used > 70% (15.00 GiB of 100.00 GiB available)"


@pytest.mark.parametrize(("available", "verdict", "clears"), [
    (29 * GIB, "violated", True),  # 71 %
    (32 * GIB, "ok", False),  # 68 %: below the threshold, inside the clear margin
    (35 * GIB, "ok", False),  # 65 %: the margin's edge still holds a ticket
    (36 * GIB, "ok", True),  # 64 %: clears
])
def test_disk_clears_only_five_points_below_the_threshold(available: float, verdict: str, clears: bool) -> None:
    disk = judge(stores_from(REFERENCE_STORES), metrics(healthy(available=available)))[("low_disk_space", "1")]
    assert (disk.verdict, disk.clears) == (verdict, clears)


@pytest.mark.parametrize(("p99", "verdict", "clears"), [(0.101, "violated", True), (0.09, "ok", False),
                                                         (0.08, "ok", True)])
def test_latency_clears_only_below_80_percent_of_the_threshold(p99: float, verdict: str, clears: bool) -> None:
    latency = judge(stores_from(REFERENCE_STORES), metrics(healthy(p99=p99)))[("high_latency", "1")]
    assert (latency.verdict, latency.clears) == (verdict, clears)


def test_overrides_change_threshold_severity_and_can_disable() -> None:
    configs = configure(spec(low_disk_space={"threshold": 0.9, "severity": "critical"},
                             high_latency={"enabled": False}, store_down={"gracePeriod": "2m"}))
    assert configs["store_down"].grace_period.total_seconds() == 120
    assert configs["high_latency"].grace_period.total_seconds() == 60  # the catalogue default
    found = by_identity(evaluate(observe(stores_from(REFERENCE_STORES), metrics(healthy(available=15 * GIB))),
                                 configs))
    assert found[("low_disk_space", "1")].verdict == "ok"
    assert found[("low_disk_space", "1")].severity == "critical"
    assert not any(name == "high_latency" for name, _ in found)


def test_tiflash_gets_store_down_but_no_tikv_metric_verdicts() -> None:
    tiflash = Store("5", "basic-tiflash-0.basic-tiflash-peer.tidb.svc:3930", "", "Up",
                    labels=(("engine", "tiflash"),))
    found = judge((store("1"), tiflash), metrics(healthy()))
    assert found[("store_down", "5")].verdict == "ok"
    assert ("high_latency", "5") not in found
    assert ("low_disk_space", "5") not in found
    down = judge((store("1"), replace(tiflash, state_name="Down")), metrics(healthy()))
    assert down[("store_down", "5")].verdict == "violated"


def test_a_replacement_on_the_address_of_an_offline_store_is_judged_never_the_offline_one() -> None:
    old = store("1", "Offline", physically_destroyed=True)
    new = store("7", pod=POD1)  # same address and pod as store 1
    values = healthy(available=10 * GIB)
    # PD lists stores in a different order on every call: every order gives the same verdicts.
    for stores in itertools.permutations([old, new, store("2")]):
        found = judge(tuple(stores), metrics(values))
        assert found[("low_disk_space", "7")].verdict == "violated"
        assert found[("low_disk_space", "1")].cause == "inhibited"


def test_two_clusters_with_the_same_pod_names_are_never_summed() -> None:
    ours = healthy(namespace="tidb", pod=POD1)
    theirs = healthy(available=5 * GIB, p99=0.5, namespace="staging", pod=POD1)
    found = judge((store("1"),), metrics(merged(ours, theirs)))
    for name in ("high_latency", "low_disk_space"):
        finding = found[(name, "1")]
        assert finding.verdict == "unknown"
        assert finding.cause == "ambiguous"
        assert finding.blind
        assert "2 series in Prometheus for store 1 (basic-tikv-0)" in finding.message
        assert "they differ in namespace (staging, tidb)" in finding.message
        # The namespace in PD's address for the store says which one is ours.
        assert finding.message.endswith('e.g. {namespace: "tidb"}')


def test_two_tidbmonitor_clusters_suggest_the_tidb_cluster_matcher() -> None:
    ours, theirs = healthy(instance=POD1, tidb_cluster="tidb-basic"), healthy(instance=POD1, tidb_cluster="qa-basic")
    finding = judge((store("1"),), metrics(merged(ours, theirs)))[("low_disk_space", "1")]
    assert finding.message.endswith('e.g. {tidb_cluster: "tidb-basic"}')


def test_pd_not_bootstrapped_makes_pd_unreachable_violated_and_stores_unknown() -> None:
    error = 'HTTP 500: "TiKV cluster not bootstrapped, please start TiKV first"'
    found = by_identity(evaluate(observe((), metrics(healthy()), pd_error=error), configure(spec())))
    assert found[("pd_unreachable", "")].verdict == "violated"
    assert "not bootstrapped" in found[("pd_unreachable", "")].message
    # No store list, so no store verdict at all: a store_down ticket stays as it is (unknown).
    assert {ident for ident in found if ident[1]} == set()
    assert found[("prometheus_unreachable", "")].verdict == "ok"


def test_malformed_pd_json_is_an_answer_error() -> None:
    with pytest.raises(PDAnswerError, match="not JSON"):
        parse_stores('{"count": 2, "stores": [')
    with pytest.raises(PDAnswerError, match="unexpected shape"):
        parse_stores('{"stores": [{"status": {}}]}')


def test_pd_answer_tolerates_omitted_and_unknown_fields() -> None:
    body = '{"stores": [{"store": {"id": 7, "state_name": "Up", "brand_new_field": {"x": 1}}}], "extra": true}'
    (parsed,) = stores_from(body)
    assert (parsed.id, parsed.state_name, parsed.capacity_bytes, parsed.engine) == ("7", "Up", None, "tikv")


def test_a_store_without_a_state_is_unknown_not_up() -> None:
    stores = stores_from('{"stores": [{"store": {"id": 7}}]}')
    found = judge(stores, metrics(healthy()))
    assert found[("store_down", "7")].verdict == "unknown"
    assert found[("low_disk_space", "7")].verdict == "unknown"
    assert stores_from('{"count": 0, "stores": null}') == ()


def test_store_missing_from_pd_answer_gets_no_verdict() -> None:
    one_store = json.dumps({"stores": REFERENCE_BODY["stores"][:1]})
    found = judge(stores_from(one_store), metrics(healthy()))
    assert ("store_down", "4") not in found
    assert found[("store_down", "1")].verdict == "ok"


@pytest.mark.parametrize("absent", [P99_LATENCY, STORE_SIZE])
def test_absent_metric_is_blind_unknown_not_ok(absent: str) -> None:
    values = healthy()
    del values[absent]
    found = judge(stores_from(REFERENCE_STORES), metrics(values))
    affected, other = ("high_latency", "low_disk_space")[:: 1 if absent == P99_LATENCY else -1]
    assert found[(affected, "1")].verdict == "unknown"
    assert found[(affected, "1")].cause == "no-data"
    assert found[(other, "1")].verdict == "ok"
    # PD's heartbeats still judge the disk, whatever Prometheus has.
    assert found[("store_low_space", "1")].verdict == "ok"


def test_one_failing_query_blinds_only_the_invariant_that_reads_it() -> None:
    values = healthy(available=10 * GIB)
    del values[P99_LATENCY]
    found = judge(stores_from(REFERENCE_STORES),
                  metrics(values, failures={P99_LATENCY: "HTTP 503 Service Unavailable: query timed out"}))
    assert found[("high_latency", "1")].cause == "query-failed"
    assert "query timed out" in found[("high_latency", "1")].message
    assert found[("low_disk_space", "1")].verdict == "violated"
    assert found[("prometheus_unreachable", "")].verdict == "ok"


def test_no_foreground_requests_in_the_window_is_unknown_but_not_blind() -> None:
    latency = judge(stores_from(REFERENCE_STORES), metrics(healthy(p99=math.nan)))[("high_latency", "1")]
    assert (latency.verdict, latency.cause, latency.blind) == ("unknown", "idle", False)


def test_series_that_match_no_store_say_what_prometheus_has() -> None:
    # kube-prometheus without a pod label: instance is the pod IP, which PD does not know.
    values = healthy(key="10.244.1.5:20180", instance="10.244.1.5:20180")
    found = judge(stores_from(REFERENCE_STORES), metrics(values))
    for name in ("high_latency", "low_disk_space"):
        assert found[(name, "1")].cause == "no-data"
        assert "Prometheus has series for 10.244.1.5:20180, which match no PD store" in found[(name, "1")].message


def test_capacity_zero_before_tikv_measured_its_disk_is_unknown() -> None:
    disk = judge(stores_from(REFERENCE_STORES), metrics(healthy(capacity=0, available=0)))[("low_disk_space", "1")]
    assert (disk.verdict, disk.cause) == ("unknown", "no-data")


def test_prometheus_down_is_violated_and_metric_invariants_unknown() -> None:
    found = judge(stores_from(REFERENCE_STORES), metrics(reachable=False, error="connection refused"))
    assert found[("prometheus_unreachable", "")].verdict == "violated"
    assert found[("high_latency", "1")].cause == "prometheus"
    for name in ("raft_log_lag", "write_stall", "critical_error", "region_miss_peer", "pd_leader_flapping"):
        store_id = "" if name.startswith(("region", "pd")) else "1"
        assert (found[(name, store_id)].verdict, found[(name, store_id)].cause) == ("unknown", "prometheus")
    assert found[("store_down", "4")].verdict == "violated"  # PD still speaks
    assert found[("low_disk_space", "1")].verdict == "unknown"
    assert found[("store_low_space", "1")].verdict == "ok"  # PD's view of the disk


def test_catalogue_declares_every_invariant() -> None:
    assert [(i.name, e.scope, e.source, e.severity, e.grace_period.total_seconds(), e.threshold)
            for i in CATALOGUE.values() for e in (i.entry,)] == [
        ("store_down", "store", "pd", "critical", 60, None),
        ("high_latency", "store", "prometheus", "warning", 60, 0.1),
        ("low_disk_space", "store", "prometheus", "warning", 0, 0.7),
        ("pd_unreachable", "cluster", "pd", "critical", 60, None),
        ("prometheus_unreachable", "cluster", "prometheus", "warning", 60, None),
        ("store_slow", "store", "pd", "critical", 60, 80),
        ("store_low_space", "store", "pd", "warning", 60, 0.2),
        ("store_restarted", "store", "pd", "warning", 0, 2),
        ("store_leader_lost", "store", "pd", "warning", 600, None),
        ("region_miss_peer", "cluster", "prometheus", "critical", 60, 100),
        ("region_down_peer", "cluster", "prometheus", "warning", 60, 0),
        ("region_pending_peer", "cluster", "prometheus", "warning", 60, 100),
        ("raft_log_lag", "store", "prometheus", "critical", 60, 5000),
        ("raft_append_slow", "store", "prometheus", "critical", 60, 1),
        ("raft_apply_slow", "store", "prometheus", "critical", 60, 1),
        ("write_stall", "store", "prometheus", "critical", 60, 0),
        ("critical_error", "store", "prometheus", "critical", 0, 0),
        ("pd_leader_flapping", "cluster", "prometheus", "warning", 60, 3),
    ]


def test_queries_are_constant_and_carry_label_matchers_and_the_window() -> None:
    queries = check_queries({"tidb_cluster": 'tidb-"basic"'}, "90s")
    assert list(queries) == [P99_LATENCY, STORE_SIZE, STORE_HEALTH, PD_HEALTH]
    for name, q in queries.items():
        assert 'tidb_cluster="tidb-\\"basic\\""' in q
        if name != PD_HEALTH:  # per store
            assert f'"{KEY_LABEL}", "$1", "pod", "(.+)"' in q
            assert "without (instance" in q
    latency = queries[P99_LATENCY]
    assert "[90s]" in latency
    assert "kv_pessimistic_lock" not in latency
    assert "coprocessor_stream" not in latency
    assert all(t in latency for t in FOREGROUND_TYPES)
    assert check_queries({})[P99_LATENCY].count("[2m]") == 1  # the default window works at a 30 s scrape


# --- rule 25: a verdict on old data says so ---------------------------------------------------------------


def evaluated_at(seconds_before: float) -> dict[str, list[Series]]:
    """The disk query's time() part: the instant Prometheus evaluated the check's queries at."""
    return {STORE_SIZE: [Series({CHECK_LABEL: EVAL_TIME}, NOW.timestamp() - seconds_before)]}


def test_a_verdict_on_data_30s_old_says_so_and_pd_verdicts_do_not() -> None:
    stores = stores_from(REFERENCE_STORES)
    found = judge(stores, metrics(merged(healthy(available=15 * GIB), evaluated_at(30.4))))
    disk = found[("low_disk_space", "1")]
    assert disk.verdict == "violated"
    assert disk.evidence["dataAgeSeconds"] == 30
    assert disk.message.endswith("(Prometheus' data is 30 s old)")
    assert found[("high_latency", "1")].evidence["dataAgeSeconds"] == 30  # an ok verdict too
    assert "dataAgeSeconds" not in found[("store_down", "4")].evidence  # read from PD
    assert "dataAgeSeconds" not in found[("high_latency", "4")].evidence  # unknown: nothing was read


@pytest.mark.parametrize("age", [0.0, 1.5, 9.9])
def test_fresh_data_is_not_noted(age: float) -> None:
    found = judge(stores_from(REFERENCE_STORES), metrics(merged(healthy(available=15 * GIB), evaluated_at(age))))
    disk = found[("low_disk_space", "1")]
    assert "dataAgeSeconds" not in disk.evidence
    assert disk.message == "store 1 disk 85.0% used > 70% (15.00 GiB of 100.00 GiB available)"


def test_the_disk_query_asks_its_own_evaluation_time() -> None:
    assert check_queries({})[STORE_SIZE].endswith(f'or label_replace(vector(time()), "{CHECK_LABEL}", '
                                                  f'"{EVAL_TIME}", "", "")')
