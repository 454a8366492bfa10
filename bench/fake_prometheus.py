"""A stand-in for Prometheus' query API, answered from the simulator's model, for the scale benchmark
above 100 clusters (where one Prometheus scraping 5000 targets would be the thing measured).

What it supports, exactly (anything else is answered 400 bad_data, as Prometheus answers bad PromQL):

- `GET` or `POST` (form) `/api/v1/query` with `query=`; `time` and `timeout` are accepted and ignored
  (answers are "now"). `GET /-/healthy` answers 200.
- Only the instant queries of `tikv_operator.core.queries.check_queries(matchers, window)`, exactly as
  that function writes them (any window), where the matchers are zero or more exact `k="v"` (the
  TiKVCluster's spec.prometheus.labelMatchers).
- The matchers select series as Prometheus would select the scraped series of the simulator: every
  target carries `<cluster_label>="<cluster name>"` plus the host's extra labels; a matcher on any other
  label, or with another value, selects nothing (an empty vector). No matcher on the cluster label
  selects the stores of every cluster.
- Values, per running store (a stopped store's series are absent, as after a failed scrape), labelled
  with the store key only (`tikvops_key` = the store's status address, the tiup convention): the latency
  query gives one sample, type="kv_get", the store's configured p99 (a real Prometheus interpolates it
  from the buckets: close, not equal); the size query gives type="capacity" (the store's capacity) and
  type="available" (its current available bytes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tikv_operator.core.queries import DEFAULT_RATE_WINDOW, KEY_LABEL, P99_LATENCY, STORE_SIZE, check_queries

Kind = Literal["p99", "sizes"]

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=|!=|=~)\s*"((?:[^"\\]|\\.)*)"\s*')
_SELECTOR = {
    "p99": re.compile(r"rate\(tikv_grpc_msg_duration_seconds_bucket\{(?P<m>.*)\}\[(?P<window>[0-9a-z.]+)\]\)"),
    "sizes": re.compile(r"\(tikv_store_size_bytes\{(?P<m>.*)\}, "),
}
_QUERY_NAME: dict[Kind, str] = {"p99": P99_LATENCY, "sizes": STORE_SIZE}


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


def parse_query(expr: str) -> Query:
    """Which of the operator's queries `expr` is: its selector gives the matchers (and the window), and
    the operator's own check_queries() with those must write exactly `expr`."""
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
        if check_queries(matchers, window)[_QUERY_NAME[kind]] != expr:
            raise UnsupportedQuery("not exactly a query of tikv_operator.core.queries.check_queries()")
        return Query(kind, matchers)
    raise UnsupportedQuery("only the queries of tikv_operator.core.queries are supported")


@dataclass(frozen=True)
class StoreSeries:
    """What the endpoint knows of one store at the time of a query."""

    cluster: str
    instance: str
    running: bool
    p99_seconds: float
    capacity_bytes: float
    available_bytes: float


def select(query: Query, stores: Iterable[StoreSeries], cluster_label: str, labels: Mapping[str, str]
           ) -> list[StoreSeries]:
    """The running stores whose series the query's matchers select."""
    chosen = []
    for store in stores:
        series_labels = {**labels, cluster_label: store.cluster}
        if store.running and all(series_labels.get(k) == v for k, v in query.matchers.items()):
            chosen.append(store)
    return chosen


def vector(query: Query, stores: Iterable[StoreSeries], at: float) -> list[dict[str, Any]]:
    def sample(store: StoreSeries, kind: str, value: float) -> dict[str, Any]:
        return {"metric": {KEY_LABEL: store.instance, "type": kind}, "value": [at, repr(float(value))]}

    if query.kind == "p99":
        return [sample(s, "kv_get", s.p99_seconds) for s in stores]
    return [sample(s, kind, value) for s in stores
            for kind, value in (("capacity", s.capacity_bytes), ("available", s.available_bytes))]


def answer(expr: str, stores: Iterable[StoreSeries], cluster_label: str, labels: Mapping[str, str],
           at: float) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of /api/v1/query for `expr`, as Prometheus shapes them."""
    try:
        query = parse_query(expr)
    except UnsupportedQuery as error:
        return 400, {"status": "error", "errorType": "bad_data", "error": str(error)}
    result = vector(query, select(query, stores, cluster_label, labels), at)
    return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}
