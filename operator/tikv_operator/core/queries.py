"""The PromQL of one check: a fixed set of queries, each grouped `by (instance)`, so the cost of a check
does not grow with the number of stores."""

from __future__ import annotations

from collections.abc import Mapping

P99_LATENCY = "p99_latency_seconds"
CAPACITY = "capacity_bytes"
AVAILABLE = "available_bytes"
QUERY_NAMES = (P99_LATENCY, CAPACITY, AVAILABLE)

# The latency window of the high_latency rule; kv_gc is background work, not request latency.
LATENCY_WINDOW = "1m"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(metric: str, matchers: Mapping[str, str], extra: str = "") -> str:
    """`metric{extra,k="v",...}` with the cluster's label matchers (values escaped as PromQL strings)."""
    parts = [extra] if extra else []
    parts += [f'{key}="{_escape(value)}"' for key, value in sorted(matchers.items())]
    return f"{metric}{{{','.join(parts)}}}"


def check_queries(matchers: Mapping[str, str]) -> dict[str, str]:
    """Query name -> PromQL; the engine reads the answers by these names."""
    buckets = selector("tikv_grpc_msg_duration_seconds_bucket", matchers, 'type!="kv_gc"')
    capacity = selector("tikv_store_size_bytes", matchers, 'type="capacity"')
    available = selector("tikv_store_size_bytes", matchers, 'type="available"')
    return {
        P99_LATENCY: f"histogram_quantile(0.99, sum by (instance, le) (rate({buckets}[{LATENCY_WINDOW}])))",
        CAPACITY: f"sum by (instance) ({capacity})",
        AVAILABLE: f"sum by (instance) ({available})",
    }
