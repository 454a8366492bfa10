"""The scale benchmark's stand-in for Prometheus answers exactly the operator's queries."""

import pytest
from bench.fake_prometheus import StoreSeries, UnsupportedQuery, answer, parse_query

from tikv_operator.core.queries import KEY_LABEL, P99_LATENCY, STORE_SIZE, check_queries

STORES = [
    StoreSeries("a", "127.0.0.1:1", True, 0.01, 100.0, 70.0),
    StoreSeries("a", "127.0.0.1:2", False, 0.01, 100.0, 70.0),
    StoreSeries("b", "127.0.0.1:3", True, 0.2, 100.0, 10.0),
]


def test_it_parses_every_query_the_operator_sends():
    queries = check_queries({"bench_cluster": "a", "bench_run": "r1"})
    kinds = {name: parse_query(expr).kind for name, expr in queries.items()}
    assert kinds == {P99_LATENCY: "p99", STORE_SIZE: "sizes"}
    assert parse_query(queries[STORE_SIZE]).matchers == {"bench_cluster": "a", "bench_run": "r1"}
    assert parse_query(check_queries({}, "30s")[P99_LATENCY]).kind == "p99"


def test_matchers_select_one_cluster_and_running_stores_only():
    queries = check_queries({"bench_cluster": "a", "bench_run": "r1"})
    status, body = answer(queries[STORE_SIZE], STORES, "bench_cluster", {"bench_run": "r1"}, 1.0)
    assert status == 200
    assert body["data"]["resultType"] == "vector"
    assert body["data"]["result"] == [
        {"metric": {KEY_LABEL: "127.0.0.1:1", "type": "capacity"}, "value": [1.0, "100.0"]},
        {"metric": {KEY_LABEL: "127.0.0.1:1", "type": "available"}, "value": [1.0, "70.0"]},
    ]


def test_other_label_values_select_nothing_and_no_cluster_matcher_selects_all():
    other = check_queries({"bench_run": "other"})
    assert answer(other[P99_LATENCY], STORES, "bench_cluster", {"bench_run": "r1"}, 1.0)[1]["data"]["result"] == []
    every = check_queries({})
    result = answer(every[P99_LATENCY], STORES, "bench_cluster", {}, 1.0)[1]["data"]["result"]
    assert [r["metric"][KEY_LABEL] for r in result] == ["127.0.0.1:1", "127.0.0.1:3"]
    assert result[1]["value"][1] == "0.2"


def test_escaped_label_values_round_trip():
    queries = check_queries({"bench_cluster": 'we"ird\\name'})
    assert parse_query(queries[STORE_SIZE]).matchers == {"bench_cluster": 'we"ird\\name'}


@pytest.mark.parametrize("expr", [
    "up",
    'sum by (instance) (tikv_store_size_bytes{type="used"})',
    check_queries({})[STORE_SIZE].replace("max without", "min without"),
    check_queries({})[STORE_SIZE].replace('type=~"capacity|available"', 'type=~"capacity|available",a=~"x.*"'),
    "histogram_quantile(0.99, sum by (instance, le) (rate(tikv_grpc_msg_duration_seconds_bucket{}[1m])))",
])
def test_anything_else_is_bad_data(expr):
    with pytest.raises(UnsupportedQuery):
        parse_query(expr)
    status, body = answer(expr, STORES, "bench_cluster", {}, 1.0)
    assert status == 400
    assert body["errorType"] == "bad_data"
