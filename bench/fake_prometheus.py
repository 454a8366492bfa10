"""A stand-in for Prometheus' query API, answered from the simulator's model, for the scale benchmark
above 100 clusters (where one Prometheus scraping 5000 targets would be the thing measured).

What it supports, exactly (anything else is answered 400 bad_data, as Prometheus answers bad PromQL):

- `GET` or `POST` (form) `/api/v1/query` with `query=`; `time` and `timeout` are accepted and ignored
  (answers are "now"). `GET /-/healthy` answers 200.
- Only the three instant queries of `tikv_operator.core.queries.check_queries()`, in exactly that form:
    histogram_quantile(0.99, sum by (instance, le) (rate(tikv_grpc_msg_duration_seconds_bucket{type!="kv_gc",<m>}[1m])))
    sum by (instance) (tikv_store_size_bytes{type="capacity",<m>})
    sum by (instance) (tikv_store_size_bytes{type="available",<m>})
  where <m> is zero or more exact matchers `k="v"` (the TiKVCluster's spec.prometheus.labelMatchers).
- The matchers select series as Prometheus would select the scraped series of the simulator: every
  target carries `<cluster_label>="<cluster name>"` plus the host's extra labels; a matcher on any other
  label, or with another value, selects nothing (an empty vector). No matcher on the cluster label
  selects the stores of every cluster.
- Values, one sample per running store (a stopped store's series are absent, as after a failed scrape),
  labelled only `instance` (the store's status address, the tiup convention):
  p99 = the store's configured p99 (a real Prometheus interpolates it from the buckets: close, not equal);
  capacity = the store's capacity; available = its current available bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["p99", "capacity", "available"]

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=|!=)\s*"((?:[^"\\]|\\.)*)"\s*')
_P99 = re.compile(
    r"^histogram_quantile\(0\.99, sum by \(instance, le\) "
    r"\(rate\(tikv_grpc_msg_duration_seconds_bucket\{(?P<m>.*)\}\[1m\]\)\)\)$"
)
_SIZE = re.compile(r"^sum by \(instance\) \(tikv_store_size_bytes\{(?P<m>.*)\}\)$")


class UnsupportedQuery(ValueError):
    """Not one of the three queries this endpoint answers."""


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
    expr = expr.strip()
    if (match := _P99.match(expr)) is not None:
        matchers = _matchers(match.group("m"))
        if ("type", "!=", "kv_gc") not in matchers:
            raise UnsupportedQuery('the p99 query must exclude type!="kv_gc"')
        kind: Kind = "p99"
        rest = [m for m in matchers if m != ("type", "!=", "kv_gc")]
    elif (match := _SIZE.match(expr)) is not None:
        matchers = _matchers(match.group("m"))
        types = [m for m in matchers if m[0] == "type"]
        if types == [("type", "=", "capacity")]:
            kind = "capacity"
        elif types == [("type", "=", "available")]:
            kind = "available"
        else:
            raise UnsupportedQuery('the size query must have exactly type="capacity" or type="available"')
        rest = [m for m in matchers if m[0] != "type"]
    else:
        raise UnsupportedQuery("only the three queries of tikv_operator.core.queries are supported")
    if any(op != "=" for _, op, _ in rest):
        raise UnsupportedQuery("only exact (=) matchers are supported besides type")
    return Query(kind, {k: v for k, _, v in rest})


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
    value: Callable[[StoreSeries], float] = {
        "p99": lambda s: s.p99_seconds,
        "capacity": lambda s: s.capacity_bytes,
        "available": lambda s: s.available_bytes,
    }[query.kind]
    return [{"metric": {"instance": s.instance}, "value": [at, repr(float(value(s)))]} for s in stores]


def answer(expr: str, stores: Iterable[StoreSeries], cluster_label: str, labels: Mapping[str, str],
           at: float) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of /api/v1/query for `expr`, as Prometheus shapes them."""
    try:
        query = parse_query(expr)
    except UnsupportedQuery as error:
        return 400, {"status": "error", "errorType": "bad_data", "error": str(error)}
    result = vector(query, select(query, stores, cluster_label, labels), at)
    return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}
