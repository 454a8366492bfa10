"""Prometheus text exposition of one TiKV store's /metrics and of PD's /metrics, under the real names."""

from collections.abc import Iterable
from decimal import Decimal

from tikv_sim import pd_payloads
from tikv_sim.clock import NS_PER_SECOND
from tikv_sim.cluster_model import Cluster
from tikv_sim.latency import GRPC_BUCKETS
from tikv_sim.store_model import MetaState, Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[dict[str, str], float]


def _number(value: float) -> str:
    """Rust's and Go's clients print whole floats without a decimal point and never in e-notation here."""
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer() and abs(value) < 1e17:
        return str(int(value))
    return format(Decimal(repr(float(value))).normalize(), "f")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples]
    return lines


def _grpc_histogram(store: Store, now_ns: int) -> list[str]:
    name = "tikv_grpc_msg_duration_seconds"
    store.histogram.advance(now_ns)
    lines = [f"# HELP {name} Bucketed histogram of grpc server messages", f"# TYPE {name} histogram"]
    bounds = [*(_number(b) for b in GRPC_BUCKETS), "+Inf"]
    for msg_type, series in store.histogram.series.items():
        for bound, count in zip(bounds, series.cumulative(), strict=True):
            lines.append(f'{name}_bucket{{type="{msg_type}",le="{bound}"}} {_number(count)}')
        lines.append(f'{name}_sum{{type="{msg_type}"}} {_number(round(series.sum_seconds, 6))}')
        lines.append(f'{name}_count{{type="{msg_type}"}} {_number(series.total)}')
    return lines


def tikv_metrics(store: Store, now_ns: int) -> str:
    lines = _family(
        "tikv_store_size_bytes",
        "gauge",
        "Size of storage.",
        [
            ({"type": "available"}, store.available_bytes),
            ({"type": "capacity"}, store.spec.capacity_bytes),
            ({"type": "used"}, store.engine_used_bytes),
        ],
    )
    lines += _grpc_histogram(store, now_ns)
    lines += _family(
        "tikv_raftstore_region_count",
        "gauge",
        "Number of regions collected in region_collection_observer",
        [({"type": "leader"}, store.leader_count), ({"type": "region"}, store.region_count)],
    )
    lines += _family(
        "tikv_engine_write_stall",
        "gauge",
        "Histogram of write stall",
        [
            ({"db": "kv", "type": t}, store.write_stall_micros)
            for t in (
                "write_stall_average",
                "write_stall_max",
                "write_stall_percentile95",
                "write_stall_percentile99",
            )
        ],
    )
    lines += _family(
        "tikv_scheduler_l0_avg",
        "gauge",
        "The number of average l0 files.",
        [({"cf": cf}, store.l0_avg) for cf in ("default", "lock", "write")],
    )
    lines += _family("tikv_raftstore_slow_score", "gauge", "Slow score of the store.", [({}, store.slow_score)])
    lines += _family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        [({}, round(store.cpu_seconds(now_ns), 2))],
    )
    lines += _family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [({}, 2 * 1024**3)])
    lines += _family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        [({}, store.process_start_ns // NS_PER_SECOND)],
    )
    return "\n".join(lines) + "\n"


def _store_counts(cluster: Cluster, now_ns: int) -> dict[str, int]:
    """pd_cluster_status store counters, classified as PD's storeStatistics.Observe does."""
    counts = dict.fromkeys(
        (
            "store_up_count", "store_disconnected_count", "store_slow_count", "store_down_count",
            "store_unhealth_count", "store_offline_count", "store_tombstone_count", "store_low_space_count",
            "store_preparing_count", "store_serving_count", "store_removing_count", "store_removed_count",
        ),
        0,
    )  # fmt: skip
    timing = cluster.timing
    for store in cluster.stores.values():
        beat = store.reported(now_ns)
        if store.meta_state is MetaState.TOMBSTONE:
            counts["store_tombstone_count"] += 1
            counts["store_removed_count"] += 1
            continue
        if store.meta_state is MetaState.OFFLINE:
            counts["store_offline_count"] += 1
            counts["store_removing_count"] += 1
        else:
            down = store.down_seconds(now_ns)
            if down >= timing.down_after:
                key = "store_down_count"
            elif down > timing.unhealthy_after:
                key = "store_unhealth_count"
            elif down > timing.disconnect_after:
                key = "store_disconnected_count"
            elif beat.slow_score >= 80:
                key = "store_slow_count"
            else:
                key = "store_up_count"
            counts[key] += 1
            counts["store_serving_count"] += 1
        # PD's default low-space-ratio is 0.8.
        if beat.capacity and beat.available < beat.capacity * 0.2:
            counts["store_low_space_count"] += 1
    return counts


def pd_metrics(cluster: Cluster, now_ns: int, bootstrapped: bool) -> str:
    lines = _family("etcd_server_is_leader", "gauge", "Whether or not this member is a leader.", [({}, 1)])
    if not bootstrapped:
        # Without a RaftCluster PD computes none of its cluster gauges.
        return "\n".join(lines) + "\n"
    status = [({"type": k}, v) for k, v in _store_counts(cluster, now_ns).items()]
    status.append(({"type": "region_count"}, cluster.region_total()))
    lines += _family("pd_cluster_status", "gauge", "Status of the cluster.", status)
    lines += _family(
        "pd_regions_status",
        "gauge",
        "Status of the regions.",
        [({"type": k}, v) for k, v in pd_payloads.region_gauges(cluster).items()],
    )
    samples: list[Sample] = []
    for store in cluster.stores.values():
        if store.meta_state is MetaState.TOMBSTONE:
            continue
        beat = store.reported(now_ns)
        values = {
            "store_available": beat.available,
            "store_used": beat.used_size,
            "store_capacity": beat.capacity,
            "region_count": beat.region_count,
            "leader_count": beat.leader_count,
            "region_size": beat.region_size_mb,
            "leader_size": beat.leader_size_mb,
            "store_slow_score": beat.slow_score,
        }
        for kind, value in values.items():
            samples.append(({"address": store.spec.address, "store": str(store.id), "type": kind}, value))
    lines += _family("pd_scheduler_store_status", "gauge", "Store status for schedule", samples)
    return "\n".join(lines) + "\n"
