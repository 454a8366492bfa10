"""The PromQL of one check: a fixed set of queries whatever the number of stores, so the cost of a check
does not grow with the cluster.

Every answer carries a `tikvops_key` label, the name the store is known by in this deployment: the `pod`
label where the scrape config sets one (kube-prometheus' ServiceMonitor/PodMonitor, tidb-operator v2),
`kubernetes_pod_name` (older community charts), else `instance` (tiup: host:status_port; TidbMonitor:
the pod name). `instance` itself is aggregated away, because under kube-prometheus it is the pod IP,
which changes on every restart: the old and the new series of one pod add up instead of splitting the
store in two. Every other label is kept, so series of two clusters that share pod names stay apart and
the engine can say so instead of summing them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

P99_LATENCY = "p99_latency_seconds"
STORE_SIZE = "store_size_bytes"
# The union queries: each holds several checks told apart by CHECK_LABEL (label_replace(...) or ...), so a
# check costs at most five queries whatever the number of stores and invariants.
STORE_HEALTH = "store_health"
PD_HEALTH = "pd_health"
CUSTOM = "custom"
QUERY_NAMES = (P99_LATENCY, STORE_SIZE, STORE_HEALTH, PD_HEALTH, CUSTOM)
CHECK_LABEL = "tikvops_check"

# The checks inside the union queries, and the query each one rides in.
RAFT_LOG_LAG = "raft_log_lag"
RAFT_APPEND = "raft_append_slow"
RAFT_APPLY = "raft_apply_slow"
WRITE_STALL = "write_stall"
L0_FILES = "write_stall_l0"
CRITICAL_ERRORS = "critical_error"
PD_REGIONS = "pd_regions"  # by `type`, from the PD leader only
PD_LEADERS = "pd_leaders"  # how many PD members report themselves leader (the gate's own health)
PD_LEADER_CHANGES = "pd_leader_changes"
# PD members that led throughout the rate window: a leader elected within it may still export the region
# gauges it set when it last led (PD never resets a gauge) until its RaftCluster runs.
PD_LEADER_SETTLED = "pd_leader_settled"
CUSTOM_PREFIX = "custom/"
# The query's own evaluation time, riding in the disk query (always asked): VictoriaMetrics evaluates an
# instant query -search.latencyOffset (30 s) in the past while its answer's timestamps say "now", so only
# time() tells how old the data is, on every release alike (rule 25).
EVAL_TIME = "eval_time"
# pd_regions_status types (hyphens: tikv/pd pkg/statistics/region_collection.go) -> invariant.
REGION_TYPES = {
    "miss-peer-region-count": "region_miss_peer",
    "down-peer-region-count": "region_down_peer",
    "pending-peer-region-count": "region_pending_peer",
}

KEY_LABEL = "tikvops_key"
# Where the key comes from, weakest first: each later label, when set, overrides the earlier ones.
KEY_SOURCES = ("instance", "kubernetes_pod_name", "pod")

# Request types a client waits on and that should be fast (tikv src/server/metrics.rs GrpcTypeKind).
# Left out on purpose: kv_pessimistic_lock (its duration includes lock waits, up to the client's wait
# timeout), coprocessor_stream (times a whole stream), unsafe_destroy_range and kv_delete_range (whole-range
# deletes after DROP TABLE), kv_gc, and the internal check_leader/read_index/split_region/... traffic.
FOREGROUND_TYPES = (
    "kv_get", "kv_batch_get", "kv_batch_get_command", "kv_scan", "kv_prewrite", "kv_commit",
    "coprocessor",
    "raw_get", "raw_batch_get", "raw_batch_get_command", "raw_scan", "raw_batch_scan",
    "raw_put", "raw_batch_put", "raw_delete", "raw_batch_delete",
)  # fmt: skip

# The latency window: at least 4 scrape intervals, or rate() comes back empty now and then. 2m suits
# kube-prometheus' 30 s default; tiup and TidbMonitor scrape every 15 s, where 1m works as well.
DEFAULT_RATE_WINDOW = "2m"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(metric: str, matchers: Mapping[str, str], extra: str = "") -> str:
    """`metric{extra,k="v",...}` with the cluster's label matchers (values escaped as PromQL strings)."""
    parts = [extra] if extra else []
    parts += [f'{key}="{_escape(value)}"' for key, value in sorted(matchers.items())]
    return f"{metric}{{{','.join(parts)}}}"


def keyed(expr: str) -> str:
    """`expr` with the store key label added (see the module docstring)."""
    for source in KEY_SOURCES:
        regex = "(.*)" if source == "instance" else "(.+)"  # an empty pod label must not erase the key
        expr = f'label_replace({expr}, "{KEY_LABEL}", "$1", "{source}", "{regex}")'
    return expr


def _p99(bucket_metric: str, matchers: Mapping[str, str], window: str) -> str:
    rates = keyed(f"rate({selector(bucket_metric, matchers)}[{window}])")
    return f"histogram_quantile(0.99, sum without (instance) ({rates}))"


def _tagged(check: str, expr: str) -> str:
    return f'label_replace({expr}, "{CHECK_LABEL}", "{check}", "", "")'


def _union(parts: Mapping[str, str]) -> str:
    return " or ".join(_tagged(check, expr) for check, expr in parts.items())


def store_health_parts(matchers: Mapping[str, str], windows: Mapping[str, str]) -> dict[str, str]:
    """check -> PromQL, per store key, for the raft and storage invariants. `windows` holds the range of each
    invariant that has one (checks.core.invariants.declarations); the official rules' fixes are in the comments."""
    stall = selector("tikv_engine_write_stall", matchers, 'type="write_stall_max"')
    errors = selector("tikv_critical_error_total", matchers)
    error_window = windows[CRITICAL_ERRORS]
    return {
        RAFT_LOG_LAG: _p99("tikv_raftstore_log_lag_bucket", matchers, windows[RAFT_LOG_LAG]),
        RAFT_APPEND: _p99("tikv_raftstore_append_log_duration_seconds_bucket", matchers, windows[RAFT_APPEND]),
        RAFT_APPLY: _p99("tikv_raftstore_apply_log_duration_seconds_bucket", matchers, windows[RAFT_APPLY]),
        # The worst stall of the window: TiKV_write_stall's delta() is 0 when a stall ended inside the window.
        WRITE_STALL: f"max without (instance, db, type) ({keyed(f'max_over_time({stall}[{windows[WRITE_STALL]}])')})",
        L0_FILES: f"max without (instance, cf) ({keyed(selector('tikv_scheduler_l0_avg', matchers))})",
        # Errors within the window. rate() and increase() miss a store's first error of each type (the child
        # appears at 1 and never increases), so a child that is new within the window counts whole.
        CRITICAL_ERRORS: "sum without (instance, type) ("
        + keyed(f"(increase({errors}[{error_window}]) > 0) or ({errors} unless {errors} offset {error_window})")
        + ")",
    }


def pd_health_parts(matchers: Mapping[str, str], windows: Mapping[str, str]) -> dict[str, str]:
    """check -> PromQL for PD's cluster gauges. Every PD member exports them, followers with the stale values
    of when they last led, so they are read through the leader gate (etcd_server_is_leader == 1). `windows`
    holds the range of each of them that has one."""
    types = "|".join(REGION_TYPES)
    regions = selector("pd_regions_status", matchers, f'type=~"{types}"')
    leader = f"({selector('etcd_server_is_leader', matchers)} == 1)"
    changes = selector("etcd_server_leader_changes_seen_total", matchers)
    return {
        PD_REGIONS: f"sum by (type) ({regions} * ignoring (type) group_left () {leader})",
        PD_LEADERS: f"count({leader})",
        PD_LEADER_CHANGES: f"max(increase({changes}[{windows[PD_LEADER_CHANGES]}]))",
        PD_LEADER_SETTLED: f"count(min_over_time({selector('etcd_server_is_leader', matchers)}"
                           f"[{windows[PD_LEADER_SETTLED]}]) == 1)",
    }


def with_matchers(expr: str, matchers: Mapping[str, str]) -> str:
    """A custom expression with `$matchers` replaced by the cluster's label matchers (nothing when none)."""
    text = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(matchers.items()))
    return expr.replace("$matchers", text)


def custom_part(expr: str, scope: str, matchers: Mapping[str, str]) -> str:
    """A custom invariant's expression as it is asked: store-scoped ones carry the store key."""
    expanded = f"({with_matchers(expr, matchers)})"
    return keyed(expanded) if scope == "store" else expanded


def check_queries(matchers: Mapping[str, str], rate_window: str = DEFAULT_RATE_WINDOW,
                  windows: Mapping[str, str] | None = None, skip: frozenset[str] = frozenset(),
                  customs: Mapping[str, str] | None = None) -> dict[str, str]:
    """Query name -> PromQL; the engine reads the answers by these names and, in the union queries, by
    CHECK_LABEL. `windows`: check -> range (defaults to rate_window); `skip`: checks of disabled invariants;
    `customs`: check name (CUSTOM_PREFIX + name) -> expression from custom_part()."""
    queries = base_queries(matchers, rate_window)
    ranges: defaultdict[str, str] = defaultdict(lambda: rate_window, windows or {})
    for name, parts in ((STORE_HEALTH, store_health_parts(matchers, ranges)),
                        (PD_HEALTH, pd_health_parts(matchers, ranges))):
        kept = {check: expr for check, expr in parts.items() if check not in skip}
        if kept:
            queries[name] = _union(kept)
    if customs:
        queries[CUSTOM] = _union(customs)
    return queries


def base_queries(matchers: Mapping[str, str], rate_window: str = DEFAULT_RATE_WINDOW) -> dict[str, str]:
    """The latency and disk queries."""
    types = "|".join(FOREGROUND_TYPES)
    buckets = selector("tikv_grpc_msg_duration_seconds_bucket", matchers, f'type=~"{types}"')
    sizes = selector("tikv_store_size_bytes", matchers, 'type=~"capacity|available"')
    # p99 per store and request type, then the worst type of each store (topk keeps its `type` label;
    # an idle type's NaN never wins over a measured one).
    rates = keyed(f"rate({buckets}[{rate_window}])")
    per_type = f"histogram_quantile(0.99, sum without (instance, priority) ({rates}))"
    return {
        P99_LATENCY: f"topk without (type) (1, {per_type})",
        STORE_SIZE: f"max without (instance) ({keyed(sizes)}) or {_tagged(EVAL_TIME, 'vector(time())')}",
    }
