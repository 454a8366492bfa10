"""A stand-in for Prometheus' query API, answered from the simulator's model, for the scale benchmark
above 100 clusters (where one Prometheus scraping 5000 targets would be the thing measured).

What it supports, exactly (anything else is answered 400 bad_data, as Prometheus answers bad PromQL):

- `GET` or `POST` (form) `/api/v1/query` with `query=`; `time` and `timeout` are accepted and ignored
  (answers are "now"). `GET /-/healthy` answers 200.
- Only these instant queries, exactly as the operator writes them, where the matchers are zero or more
  exact `k="v"` (the TiKVCluster's spec.prometheus.labelMatchers):
  - `p99_latency_seconds` and `store_size_bytes` of `tikv_operator.checks.core.queries.check_queries(matchers,
    window)` (any window);
  - the `store_health` and `pd_health` union queries of `tikv_operator.checks.core.settings.queries_for(spec,
    configure(spec))` for a spec with those matchers and every other setting at its default (every
    built-in invariant enabled, no custom invariants), except `spec.prometheus.rateWindow`, which may be
    any window (the raft p99s use it). The `custom` query is not supported.
- The matchers select series as Prometheus would select the scraped series of the simulator: every
  target (store and PD member) carries `<cluster_label>="<cluster name>"` plus the host's extra labels;
  a matcher on any other label, or with another value, selects nothing (an empty vector). No matcher on
  the cluster label selects the stores of every cluster.
- Values, per running store (a stopped store's series are absent, as after a failed scrape), labelled
  with the store key only (`tikvops_key` = the store's status address, the tiup convention): the latency
  query gives one sample, type="kv_get", the store's configured p99 (a real Prometheus interpolates it
  from the buckets: close, not equal); the size query gives type="capacity" (the store's capacity) and
  type="available" (its current available bytes). `store_health` gives, per running store, one row for
  each of `tikvops_check` = raft_log_lag (p99 entries), raft_append_slow and raft_apply_slow (p99
  seconds), write_stall (the largest stall, microseconds) and write_stall_l0 (average L0 files), from
  StoreSeries; critical_error gives no rows (as on a TiKV that never had a critical error).
- `pd_health`, per selected cluster (a cluster is selected when one of its stores is, running or not;
  its PD is always up and healthy): `tikvops_check="pd_regions"` rows by `type`
  (miss-peer-region-count, down-peer-region-count, pending-peer-region-count: 0, summed over the
  selected clusters), `pd_leaders` = the number of selected clusters (one leader each), and
  `pd_leader_changes` = 0, `pd_leader_settled` = the number of selected clusters (leaders that led all
  along). No cluster selected: an empty vector, as count()/sum()/max() of nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from tikv_operator.checks.core.queries import (
    CHECK_LABEL,
    DEFAULT_RATE_WINDOW,
    KEY_LABEL,
    L0_FILES,
    P99_LATENCY,
    PD_HEALTH,
    PD_LEADER_CHANGES,
    PD_LEADER_SETTLED,
    PD_LEADERS,
    PD_REGIONS,
    RAFT_APPEND,
    RAFT_APPLY,
    RAFT_LOG_LAG,
    REGION_TYPES,
    STORE_HEALTH,
    STORE_SIZE,
    WRITE_STALL,
    check_queries,
)
from tikv_operator.checks.core.settings import configure, queries_for
from tikv_operator.model.cluster_resource import TiKVClusterSpec

Kind = Literal["p99", "sizes", "store_health", "pd_health"]

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=|!=|=~)\s*"((?:[^"\\]|\\.)*)"\s*')
# A selector's braces: anything but a brace or a quote, or a whole quoted string (which may hold braces).
_BRACES = r'\{(?P<m>(?:[^{}"]|"(?:[^"\\]|\\.)*")*)\}'
_WINDOW = r"\[(?P<window>[0-9a-z.]+)\]"
_SELECTOR: dict[Kind, re.Pattern[str]] = {
    "p99": re.compile(rf"rate\(tikv_grpc_msg_duration_seconds_bucket{_BRACES}{_WINDOW}\)"),
    "sizes": re.compile(rf"\(tikv_store_size_bytes{_BRACES}, "),
    "store_health": re.compile(rf"rate\(tikv_raftstore_log_lag_bucket{_BRACES}{_WINDOW}\)"),
    "pd_health": re.compile(rf"\(pd_regions_status{_BRACES} \* "),
}
_SETTLED = re.compile(rf"min_over_time\(etcd_server_is_leader{_BRACES}{_WINDOW}\)")
_QUERY_NAME: dict[Kind, str] = {"p99": P99_LATENCY, "sizes": STORE_SIZE, "store_health": STORE_HEALTH,
                                "pd_health": PD_HEALTH}
# What the store_health rows of one store are, in the order the union writes them (critical_error: none).
STORE_HEALTH_CHECKS = (RAFT_LOG_LAG, RAFT_APPEND, RAFT_APPLY, WRITE_STALL, L0_FILES)


class UnsupportedQuery(ValueError):
    """Not one of the queries this endpoint answers."""


@dataclass(frozen=True)
class Query:
    kind: Kind
    matchers: Mapping[str, str]  # exact matchers other than the metric's own `type`


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def _matchers(text: str) -> list[tuple[str, str, str]]:
    out = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _MATCHER.match(text, position)
        if match is None:
            raise UnsupportedQuery(f"cannot parse label matchers at {text[position:position + 40]!r}")
        out.append((match.group(1), match.group(2), _unescape(match.group(3))))
        position = match.end()
        if position < len(text):
            if text[position] != ",":
                raise UnsupportedQuery(f"expected ',' in label matchers at {text[position:position + 40]!r}")
            position += 1
    return out


@lru_cache(maxsize=4096)
def operator_queries(matchers: tuple[tuple[str, str], ...], rate_window: str) -> dict[str, str]:
    """What the operator asks for a TiKVCluster with these label matchers and rateWindow, every other
    setting at its default: queries_for(spec, configure(spec)), as checks.probe calls it."""
    spec = TiKVClusterSpec.model_validate({
        "pd": {"url": "http://127.0.0.1:2379"},
        "prometheus": {"url": "http://127.0.0.1:9090", "labelMatchers": dict(matchers), "rateWindow": rate_window},
    })
    queries, _ = queries_for(spec, configure(spec))
    return queries


def _expected(kind: Kind, matchers: Mapping[str, str], window: str) -> str | None:
    if kind in ("p99", "sizes"):
        return check_queries(matchers, window)[_QUERY_NAME[kind]]
    try:
        return operator_queries(tuple(sorted(matchers.items())), window).get(_QUERY_NAME[kind])
    except ValueError as error:  # pydantic's ValidationError: not matchers a TiKVCluster can have
        raise UnsupportedQuery(f"not a TiKVCluster's label matchers: {error}") from None


def parse_query(expr: str) -> Query:
    """Which of the operator's queries `expr` is: its first selector gives the matchers (and the window),
    and the operator's own code with those must write exactly `expr`."""
    expr = expr.strip()
    for kind, pattern in _SELECTOR.items():
        match = pattern.search(expr)
        if match is None:
            continue
        rest = [m for m in _matchers(match.group("m")) if m[0] != "type"]
        if any(op != "=" for _, op, _ in rest):
            raise UnsupportedQuery("only exact (=) matchers are supported besides type")
        matchers = {k: v for k, _, v in rest}
        window = match.groupdict().get("window") or DEFAULT_RATE_WINDOW
        if kind == "pd_health" and (settled := _SETTLED.search(expr)) is not None:
            window = settled.group("window")  # its one range that follows rateWindow
        if _expected(kind, matchers, window) != expr:
            raise UnsupportedQuery(f"not exactly the operator's {_QUERY_NAME[kind]} query (queries_for() with "
                                   "default settings)")
        return Query(kind, matchers)
    raise UnsupportedQuery("only the queries of tikv_operator.checks.core.queries are supported")


@dataclass(frozen=True)
class StoreSeries:
    """What the endpoint knows of one store at the time of a query. The raft and RocksDB figures default
    to tikv_sim's healthy store (raft_metrics.RAFT_HISTOGRAMS, store_model.Store)."""

    cluster: str
    instance: str
    running: bool
    p99_seconds: float
    capacity_bytes: float
    available_bytes: float
    raft_log_lag_p99: float = 10.0  # entries
    raft_append_p99_seconds: float = 0.005
    raft_apply_p99_seconds: float = 0.005
    write_stall_micros: float = 0.0  # max of tikv_engine_write_stall{type="write_stall_max"} in the window
    l0_files_avg: float = 2.0


def select(query: Query, stores: Iterable[StoreSeries], cluster_label: str, labels: Mapping[str, str],
           running_only: bool = True) -> list[StoreSeries]:
    """The stores whose series the query's matchers select (running ones only, unless told)."""
    chosen = []
    for store in stores:
        series_labels = {**labels, cluster_label: store.cluster}
        if (store.running or not running_only) and all(series_labels.get(k) == v for k, v in query.matchers.items()):
            chosen.append(store)
    return chosen


def _store_health(store: StoreSeries) -> dict[str, float]:
    return {RAFT_LOG_LAG: store.raft_log_lag_p99, RAFT_APPEND: store.raft_append_p99_seconds,
            RAFT_APPLY: store.raft_apply_p99_seconds, WRITE_STALL: store.write_stall_micros,
            L0_FILES: store.l0_files_avg}


def vector(query: Query, stores: Iterable[StoreSeries], at: float) -> list[dict[str, Any]]:
    def sample(labels: dict[str, str], value: float) -> dict[str, Any]:
        return {"metric": labels, "value": [at, repr(float(value))]}

    stores = list(stores)
    if query.kind == "p99":
        return [sample({KEY_LABEL: s.instance, "type": "kv_get"}, s.p99_seconds) for s in stores]
    if query.kind == "sizes":
        return [sample({KEY_LABEL: s.instance, "type": kind}, value) for s in stores
                for kind, value in (("capacity", s.capacity_bytes), ("available", s.available_bytes))]
    if query.kind == "store_health":
        rows = [(check, s, value) for s in stores for check, value in _store_health(s).items()]
        # The union's order: every row of the first part, then of the next (PromQL's `or`).
        rows.sort(key=lambda row: STORE_HEALTH_CHECKS.index(row[0]))
        return [sample({KEY_LABEL: s.instance, CHECK_LABEL: check}, value) for check, s, value in rows]
    clusters = sorted({s.cluster for s in stores})
    if not clusters:
        return []
    return [
        *(sample({"type": kind, CHECK_LABEL: PD_REGIONS}, 0) for kind in REGION_TYPES),
        sample({CHECK_LABEL: PD_LEADERS}, len(clusters)),
        sample({CHECK_LABEL: PD_LEADER_CHANGES}, 0),
        sample({CHECK_LABEL: PD_LEADER_SETTLED}, len(clusters)),
    ]


def answer(expr: str, stores: Iterable[StoreSeries], cluster_label: str, labels: Mapping[str, str],
           at: float) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of /api/v1/query for `expr`, as Prometheus shapes them."""
    try:
        query = parse_query(expr)
    except UnsupportedQuery as error:
        return 400, {"status": "error", "errorType": "bad_data", "error": str(error)}
    chosen = select(query, stores, cluster_label, labels, running_only=query.kind != "pd_health")
    result = vector(query, chosen, at)
    return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}
