"""The scale benchmark's stand-in for Prometheus answers exactly the operator's queries."""

import pytest
from bench.fake_prometheus import StoreSeries, UnsupportedQuery, answer, parse_query

from tikv_operator.checks.core.queries import (
    CHECK_LABEL,
    CUSTOM,
    KEY_LABEL,
    P99_LATENCY,
    PD_HEALTH,
    REGION_TYPES,
    STORE_HEALTH,
    STORE_SIZE,
    check_queries,
)
from tikv_operator.checks.core.settings import configure, queries_for
from tikv_operator.model.cluster_resource import TiKVClusterSpec

STORES = [
    StoreSeries("a", "127.0.0.1:1", True, 0.01, 100.0, 70.0),
    StoreSeries("a", "127.0.0.1:2", False, 0.01, 100.0, 70.0),
    StoreSeries("b", "127.0.0.1:3", True, 0.2, 100.0, 10.0),
]


def operator_queries(matchers, **prometheus):
    """What checks.probe asks for a TiKVCluster with these matchers (and spec.prometheus settings)."""
    spec = TiKVClusterSpec.model_validate({
        "pd": {"url": "http://127.0.0.1:2379"},
        "prometheus": {"url": "http://127.0.0.1:9090", "labelMatchers": matchers, **prometheus},
    })
    queries, _ = queries_for(spec, configure(spec))
    return queries


def result(expr, stores=STORES, labels=None):
    status, body = answer(expr, stores, "bench_cluster", {"bench_run": "r1"} if labels is None else labels, 1.0)
    assert status == 200, body
    assert body["data"]["resultType"] == "vector"
    return body["data"]["result"]


def test_it_parses_every_query_the_operator_sends():
    queries = operator_queries({"bench_cluster": "a", "bench_run": "r1"})
    kinds = {name: parse_query(expr).kind for name, expr in queries.items()}
    assert kinds == {P99_LATENCY: "p99", STORE_SIZE: "sizes", STORE_HEALTH: "store_health", PD_HEALTH: "pd_health"}
    for expr in queries.values():
        assert parse_query(expr).matchers == {"bench_cluster": "a", "bench_run": "r1"}
    assert parse_query(check_queries({}, "30s")[P99_LATENCY]).kind == "p99"
    # Any rateWindow (the p99s of the raft histograms follow it), and no matchers at all.
    for expr in operator_queries({}, rateWindow="1m").values():
        assert parse_query(expr).matchers == {}


def test_matchers_select_one_cluster_and_running_stores_only():
    queries = check_queries({"bench_cluster": "a", "bench_run": "r1"})
    assert result(queries[STORE_SIZE]) == [
        {"metric": {KEY_LABEL: "127.0.0.1:1", "type": "capacity"}, "value": [1.0, "100.0"]},
        {"metric": {KEY_LABEL: "127.0.0.1:1", "type": "available"}, "value": [1.0, "70.0"]},
    ]


def test_other_label_values_select_nothing_and_no_cluster_matcher_selects_all():
    other = check_queries({"bench_run": "other"})
    assert result(other[P99_LATENCY]) == []
    every = check_queries({})
    rows = result(every[P99_LATENCY], labels={})
    assert [r["metric"][KEY_LABEL] for r in rows] == ["127.0.0.1:1", "127.0.0.1:3"]
    assert rows[1]["value"][1] == "0.2"


def test_store_health_gives_each_running_store_a_healthy_row_per_check():
    rows = result(operator_queries({"bench_cluster": "a", "bench_run": "r1"})[STORE_HEALTH])
    assert [(r["metric"], r["value"][1]) for r in rows] == [
        ({KEY_LABEL: "127.0.0.1:1", CHECK_LABEL: "raft_log_lag"}, "10.0"),
        ({KEY_LABEL: "127.0.0.1:1", CHECK_LABEL: "raft_append_slow"}, "0.005"),
        ({KEY_LABEL: "127.0.0.1:1", CHECK_LABEL: "raft_apply_slow"}, "0.005"),
        ({KEY_LABEL: "127.0.0.1:1", CHECK_LABEL: "write_stall"}, "0.0"),
        ({KEY_LABEL: "127.0.0.1:1", CHECK_LABEL: "write_stall_l0"}, "2.0"),
    ]  # critical_error: no rows, as on a TiKV without critical errors
    every = result(operator_queries({})[STORE_HEALTH], labels={})
    assert {r["metric"][KEY_LABEL] for r in every} == {"127.0.0.1:1", "127.0.0.1:3"}
    assert [r["metric"][CHECK_LABEL] for r in every][:2] == ["raft_log_lag", "raft_log_lag"]  # `or`'s order


def test_pd_health_gives_one_leader_and_no_region_problems():
    rows = result(operator_queries({"bench_cluster": "a", "bench_run": "r1"})[PD_HEALTH])
    assert [(r["metric"], r["value"][1]) for r in rows] == [
        *(({"type": kind, CHECK_LABEL: "pd_regions"}, "0.0") for kind in REGION_TYPES),
        ({CHECK_LABEL: "pd_leaders"}, "1.0"),
        ({CHECK_LABEL: "pd_leader_changes"}, "0.0"),
        ({CHECK_LABEL: "pd_leader_settled"}, "1.0"),
    ]
    # A cluster whose every store is stopped still has its PD; no matcher on the cluster: every cluster's.
    stopped = [StoreSeries("c", "127.0.0.1:4", False, 0.01, 100.0, 70.0)]
    assert len(result(operator_queries({"bench_cluster": "c"})[PD_HEALTH], stopped, {})) == 6
    every = result(operator_queries({})[PD_HEALTH], labels={})
    assert [r["value"][1] for r in every if r["metric"][CHECK_LABEL] == "pd_leaders"] == ["2.0"]
    assert result(operator_queries({"bench_run": "other"})[PD_HEALTH]) == []


def test_escaped_label_values_round_trip():
    for expr in operator_queries({"bench_cluster": 'we"ird\\name}{'}).values():
        assert parse_query(expr).matchers == {"bench_cluster": 'we"ird\\name}{'}


@pytest.mark.parametrize("expr", [
    "up",
    'sum by (instance) (tikv_store_size_bytes{type="used"})',
    check_queries({})[STORE_SIZE].replace("max without", "min without"),
    check_queries({})[STORE_SIZE].replace('type=~"capacity|available"', 'type=~"capacity|available",a=~"x.*"'),
    "histogram_quantile(0.99, sum by (instance, le) (rate(tikv_grpc_msg_duration_seconds_bucket{}[1m])))",
    # Not the defaults: a disabled invariant drops its part; another window of write_stall.
    operator_queries({})[STORE_HEALTH].split(" or ", 1)[1],
    operator_queries({})[STORE_HEALTH].replace("[10m]", "[5m]"),
    operator_queries({})[PD_HEALTH].rsplit(" or ", 1)[0],
    operator_queries({})[PD_HEALTH].replace("== 1", "== 0"),
    check_queries({}, customs={"custom/x": "(up)"})[CUSTOM],
])
def test_anything_else_is_bad_data(expr):
    with pytest.raises(UnsupportedQuery):
        parse_query(expr)
    status, body = answer(expr, STORES, "bench_cluster", {}, 1.0)
    assert status == 400
    assert body["errorType"] == "bad_data"
