"""The invariant engine over recorded PD bodies and query results (reference/tikv.md examples)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.pd_bodies import REFERENCE_STORES as REFERENCE_BODY
from tikv_operator.core.cluster_resource import TiKVClusterSpec
from tikv_operator.core.findings import Finding
from tikv_operator.core.invariants import CATALOGUE, configure, evaluate
from tikv_operator.core.observation import MetricsObservation, Observation, PDObservation, Store
from tikv_operator.core.pd_model import PDAnswerError, parse_stores
from tikv_operator.core.queries import AVAILABLE, CAPACITY, P99_LATENCY, check_queries

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
PD_URL = "http://basic-pd.tidb:2379"
PROM_URL = "http://basic-prometheus.tidb:9090"
GIB = 2**30

# The /stores example of reference/tikv.md: store 1 Up, store 4 Down with "0B" sizes.
REFERENCE_STORES = json.dumps(REFERENCE_BODY)


def spec(**invariants: Any) -> TiKVClusterSpec:
    return TiKVClusterSpec.model_validate(
        {"pd": {"url": PD_URL}, "prometheus": {"url": PROM_URL}, "invariants": invariants}
    )


def stores_from(body: str) -> tuple[Store, ...]:
    return parse_stores(body).observed()


def metrics(values: dict[str, dict[str, float]] | None = None, reachable: bool = True,
            error: str = "") -> MetricsObservation:
    return MetricsObservation(PROM_URL, reachable, check_queries({}), values or {}, error)


def observe(stores: tuple[Store, ...], prom: MetricsObservation, pd_error: str = "") -> Observation:
    pd = PDObservation(PD_URL, not pd_error, () if pd_error else stores, pd_error)
    return Observation("basic", NOW, pd, prom)


def by_identity(findings: list[Finding]) -> dict[tuple[str, str], Finding]:
    result = {f.identity: f for f in findings}
    assert len(result) == len(findings), "two findings for one identity"
    return result


# tiup's instance label is the status address; this is store 1 of the reference body.
S1 = "basic-tikv-0.basic-tikv-peer.tidb.svc:20180"
S4 = "basic-tikv-1.basic-tikv-peer.tidb.svc:20180"


def healthy_values(instance: str = S1, p99: float = 0.012, capacity: float = 100 * GIB,
                   available: float = 60 * GIB) -> dict[str, dict[str, float]]:
    return {P99_LATENCY: {instance: p99}, CAPACITY: {instance: capacity}, AVAILABLE: {instance: available}}


def test_reference_example_down_store_is_violated_and_its_metric_invariants_inhibited() -> None:
    found = by_identity(evaluate(observe(stores_from(REFERENCE_STORES), metrics(healthy_values())),
                                 configure(spec())))
    down = found[("store_down", "4")]
    assert down.verdict == "violated"
    assert down.severity == "critical"
    assert down.message == "store 4 (basic-tikv-1.basic-tikv-peer.tidb.svc:20160) is Down"
    assert down.evidence["stateName"] == "Down"
    assert found[("store_down", "1")].verdict == "ok"
    # The "0B" Down store gets no latency or disk verdict: inhibited, so unknown, never ok or violated.
    for name in ("high_latency", "low_disk_space"):
        assert found[(name, "4")].verdict == "unknown"
        assert found[(name, "4")].evidence["inhibitedBy"] == "store_down"
    assert found[("high_latency", "1")].verdict == "ok"
    assert found[("low_disk_space", "1")].verdict == "ok"
    assert found[("pd_unreachable", "")].verdict == "ok"
    assert found[("prometheus_unreachable", "")].verdict == "ok"


def test_reference_sizes_parse_both_formats() -> None:
    stores = stores_from(REFERENCE_STORES)
    assert stores[0].capacity_bytes == round(96.73 * GIB)
    assert stores[1].capacity_bytes == 0
    old = REFERENCE_STORES.replace('"96.73GiB"', '"937 GiB"')
    assert old != REFERENCE_STORES
    assert stores_from(old)[0].capacity_bytes == 937 * GIB


def test_high_latency_violated_with_evidence() -> None:
    obs = observe(stores_from(REFERENCE_STORES), metrics(healthy_values(p99=0.25)))
    latency = by_identity(evaluate(obs, configure(spec())))[("high_latency", "1")]
    assert latency.verdict == "violated"
    assert latency.severity == "warning"
    assert latency.evidence["p99Seconds"] == 0.25
    assert latency.evidence["thresholdSeconds"] == 0.1
    assert latency.evidence["instance"] == S1
    assert "histogram_quantile(0.99" in latency.evidence["query"]
    assert latency.message == "store 1 p99 gRPC latency 250.0 ms > 100 ms"


def test_low_disk_space_violated_with_evidence() -> None:
    obs = observe(stores_from(REFERENCE_STORES), metrics(healthy_values(available=15 * GIB)))
    disk = by_identity(evaluate(obs, configure(spec())))[("low_disk_space", "1")]
    assert disk.verdict == "violated"
    assert disk.evidence["usedRatio"] == 0.85
    assert disk.evidence["capacityBytes"] == 100 * GIB
    assert disk.evidence["availableBytes"] == 15 * GIB
    assert disk.message == "store 1 disk 85.0% used > 70% (15.00 GiB of 100.00 GiB available)"


def test_overrides_change_threshold_severity_and_can_disable() -> None:
    configs = configure(spec(low_disk_space={"threshold": 0.9, "severity": "critical"},
                             high_latency={"enabled": False}, store_down={"gracePeriod": "2m"}))
    assert configs["store_down"].grace_period.total_seconds() == 120
    assert configs["high_latency"].grace_period.total_seconds() == 60  # the catalogue default
    found = by_identity(evaluate(observe(stores_from(REFERENCE_STORES),
                                         metrics(healthy_values(available=15 * GIB))), configs))
    assert found[("low_disk_space", "1")].verdict == "ok"
    assert found[("low_disk_space", "1")].severity == "critical"
    assert not any(name == "high_latency" for name, _ in found)


def test_pd_not_bootstrapped_makes_pd_unreachable_violated_and_stores_unknown() -> None:
    error = 'HTTP 500: "TiKV cluster not bootstrapped, please start TiKV first"'
    found = by_identity(evaluate(observe((), metrics(healthy_values()), pd_error=error), configure(spec())))
    assert found[("pd_unreachable", "")].verdict == "violated"
    assert "not bootstrapped" in found[("pd_unreachable", "")].message
    # No store list, so no store verdict at all: a store_down ticket stays as it is (unknown).
    assert set(found) == {("pd_unreachable", ""), ("prometheus_unreachable", "")}


def test_malformed_pd_json_is_an_answer_error() -> None:
    with pytest.raises(PDAnswerError, match="not JSON"):
        parse_stores('{"count": 2, "stores": [')
    with pytest.raises(PDAnswerError, match="unexpected shape"):
        parse_stores('{"stores": [{"status": {}}]}')


def test_pd_answer_tolerates_omitted_and_unknown_fields() -> None:
    body = '{"stores": [{"store": {"id": 7, "state_name": "Up", "brand_new_field": {"x": 1}}}], "extra": true}'
    (store,) = stores_from(body)
    assert (store.id, store.state_name, store.capacity_bytes) == ("7", "Up", None)


def test_a_store_without_a_state_is_unknown_not_up() -> None:
    stores = stores_from('{"stores": [{"store": {"id": 7}}]}')
    found = by_identity(evaluate(observe(stores, metrics(healthy_values())), configure(spec())))
    assert found[("store_down", "7")].verdict == "unknown"
    assert found[("low_disk_space", "7")].verdict == "unknown"
    assert stores_from('{"count": 0, "stores": null}') == ()


def test_store_missing_from_pd_answer_gets_no_verdict() -> None:
    one_store = json.dumps({"stores": REFERENCE_BODY["stores"][:1]})
    found = by_identity(evaluate(observe(stores_from(one_store), metrics(healthy_values())), configure(spec())))
    assert ("store_down", "4") not in found
    assert found[("store_down", "1")].verdict == "ok"


@pytest.mark.parametrize("absent", [P99_LATENCY, CAPACITY, AVAILABLE])
def test_absent_metric_is_unknown_not_ok(absent: str) -> None:
    values = healthy_values()
    del values[absent]
    found = by_identity(evaluate(observe(stores_from(REFERENCE_STORES), metrics(values)), configure(spec())))
    affected = "high_latency" if absent == P99_LATENCY else "low_disk_space"
    assert found[(affected, "1")].verdict == "unknown"


def test_no_requests_in_window_nan_is_unknown() -> None:
    found = by_identity(evaluate(observe(stores_from(REFERENCE_STORES), metrics(healthy_values(p99=math.nan))),
                                 configure(spec())))
    assert found[("high_latency", "1")].verdict == "unknown"


def test_store_without_any_series_is_unknown() -> None:
    found = by_identity(evaluate(observe(stores_from(REFERENCE_STORES), metrics(healthy_values(instance="x:1"))),
                                 configure(spec())))
    assert found[("high_latency", "1")].verdict == "unknown"
    assert found[("low_disk_space", "1")].verdict == "unknown"


def test_prometheus_down_is_violated_and_metric_invariants_unknown() -> None:
    obs = observe(stores_from(REFERENCE_STORES), metrics(reachable=False, error="connection refused"))
    found = by_identity(evaluate(obs, configure(spec())))
    assert found[("prometheus_unreachable", "")].verdict == "violated"
    assert found[("high_latency", "1")].verdict == "unknown"
    assert found[("low_disk_space", "1")].verdict == "unknown"
    assert found[("store_down", "4")].verdict == "violated"  # PD still speaks


def test_pod_name_instances_are_mapped_automatically() -> None:
    # tidb-operator's TidbMonitor: instance is the pod name.
    values = healthy_values(instance="basic-tikv-0", available=10 * GIB)
    found = by_identity(evaluate(observe(stores_from(REFERENCE_STORES), metrics(values)), configure(spec())))
    assert found[("low_disk_space", "1")].verdict == "violated"
    assert found[("low_disk_space", "1")].evidence["instance"] == "basic-tikv-0"


def test_catalogue_declares_every_invariant() -> None:
    assert [(i.name, i.scope, i.source, i.severity, i.grace_period.total_seconds(), i.threshold)
            for i in CATALOGUE.values()] == [
        ("store_down", "store", "pd", "critical", 0, None),
        ("high_latency", "store", "prometheus", "warning", 60, 0.1),
        ("low_disk_space", "store", "prometheus", "warning", 0, 0.7),
        ("pd_unreachable", "cluster", "pd", "critical", 60, None),
        ("prometheus_unreachable", "cluster", "prometheus", "warning", 60, None),
    ]


def test_queries_are_constant_and_carry_label_matchers() -> None:
    queries = check_queries({"tidb_cluster": 'tidb-"basic"'})
    assert len(queries) == 3
    for q in queries.values():
        assert 'tidb_cluster="tidb-\\"basic\\""' in q
        assert "by (instance" in q
