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

from collections.abc import Mapping

P99_LATENCY = "p99_latency_seconds"
STORE_SIZE = "store_size_bytes"
QUERY_NAMES = (P99_LATENCY, STORE_SIZE)

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


def check_queries(matchers: Mapping[str, str], rate_window: str = DEFAULT_RATE_WINDOW) -> dict[str, str]:
    """Query name -> PromQL; the engine reads the answers by these names."""
    types = "|".join(FOREGROUND_TYPES)
    buckets = selector("tikv_grpc_msg_duration_seconds_bucket", matchers, f'type=~"{types}"')
    sizes = selector("tikv_store_size_bytes", matchers, 'type=~"capacity|available"')
    # p99 per store and request type, then the worst type of each store (topk keeps its `type` label;
    # an idle type's NaN never wins over a measured one).
    rates = keyed(f"rate({buckets}[{rate_window}])")
    per_type = f"histogram_quantile(0.99, sum without (instance, priority) ({rates}))"
    return {
        P99_LATENCY: f"topk without (type) (1, {per_type})",
        STORE_SIZE: f"max without (instance) ({keyed(sizes)})",
    }
