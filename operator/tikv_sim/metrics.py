"""Prometheus text exposition of one TiKV or TiFlash store's /metrics and of PD's /metrics, under the real names."""

from tikv_sim import grpc_metrics, pd_payloads, pd_view
from tikv_sim.clock import NS_PER_SECOND
from tikv_sim.cluster_model import Cluster
from tikv_sim.exposition import CONTENT_TYPE, Sample, family
from tikv_sim.pd_leader import LeaderPhase
from tikv_sim.store_model import MetaState, Store

__all__ = ["CONTENT_TYPE", "pd_metrics", "store_metrics", "tiflash_metrics", "tikv_metrics"]


def _sizes(store: Store) -> list[Sample]:
    return [
        ({"type": "available"}, store.available_bytes),
        ({"type": "capacity"}, store.spec.capacity_bytes),
        ({"type": "used"}, store.engine_used_bytes),
    ]


def _regions(store: Store, now_ns: int) -> list[Sample]:
    regions, leaders = store.regions_at(now_ns)
    return [({"type": "leader"}, leaders), ({"type": "region"}, regions)]


def _process(prefix: str, store: Store, now_ns: int) -> list[str]:
    lines = family(
        f"{prefix}process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        [({}, round(store.cpu_seconds(now_ns), 2))],
    )
    lines += family(
        f"{prefix}process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [({}, 2 * 1024**3)]
    )
    lines += family(
        f"{prefix}process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        [({}, store.process_start_ns // NS_PER_SECOND)],
    )
    return lines


def tikv_metrics(store: Store, now_ns: int, grpc_series: str = "full") -> str:
    lines = family("tikv_store_size_bytes", "gauge", "Size of storage.", _sizes(store))
    lines.append(grpc_metrics.render(store.histogram, now_ns, grpc_series))
    lines += family(
        "tikv_raftstore_region_count",
        "gauge",
        "Number of regions collected in region_collection_observer",
        _regions(store, now_ns),
    )
    lines += family(
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
    lines += family(
        "tikv_scheduler_l0_avg",
        "gauge",
        "The number of average l0 files.",
        [({"cf": cf}, store.l0_avg) for cf in ("default", "lock", "write")],
    )
    lines += family("tikv_raftstore_slow_score", "gauge", "Slow score of the store.", [({}, store.slow_score)])
    lines += _process("", store, now_ns)
    return "\n".join(lines) + "\n"


def tiflash_metrics(store: Store, now_ns: int) -> str:
    """TiFlash's proxy (its embedded TiKV) prefixes every family with tiflash_proxy_: no tikv_* at all."""
    lines = family("tiflash_proxy_tikv_store_size_bytes", "gauge", "Size of storage.", _sizes(store))
    lines += family(
        "tiflash_proxy_tikv_raftstore_region_count",
        "gauge",
        "Number of regions collected in region_collection_observer",
        _regions(store, now_ns),
    )
    lines += _process("tiflash_proxy_", store, now_ns)
    return "\n".join(lines) + "\n"


def store_metrics(store: Store, now_ns: int, grpc_series: str = "full") -> str:
    return tiflash_metrics(store, now_ns) if store.is_tiflash else tikv_metrics(store, now_ns, grpc_series)


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
        beat = pd_view.heartbeat(cluster, store, now_ns)
        if store.meta_state is MetaState.TOMBSTONE:
            counts["store_tombstone_count"] += 1
            counts["store_removed_count"] += 1
            continue
        if store.meta_state is MetaState.OFFLINE:
            counts["store_offline_count"] += 1
            counts["store_removing_count"] += 1
        else:
            down = (now_ns - beat.at_ns) / NS_PER_SECOND
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
    """PD's metrics as the current leader exports them (the one PD target stands for the leader)."""
    phase = cluster.pd.leader.phase(now_ns)
    lines = family(
        "etcd_server_is_leader",
        "gauge",
        "Whether or not this member is a leader.",
        [({}, 0 if phase is LeaderPhase.ELECTION else 1)],
    )
    lines += family(
        "etcd_server_leader_changes_seen_total",
        "counter",
        "The number of leader changes seen.",
        [({}, cluster.pd.leader.changes)],
    )
    if not bootstrapped or phase is not LeaderPhase.SERVING:
        # Without a running RaftCluster PD computes none of its cluster gauges.
        return "\n".join(lines) + "\n"
    status = [({"type": k}, v) for k, v in _store_counts(cluster, now_ns).items()]
    status.append(({"type": "region_count"}, cluster.region_total()))
    lines += family("pd_cluster_status", "gauge", "Status of the cluster.", status)
    lines += family(
        "pd_regions_status",
        "gauge",
        "Status of the regions.",
        [({"type": k}, v) for k, v in pd_payloads.region_gauges(cluster).items()],
    )
    samples: list[Sample] = []
    for store in cluster.stores.values():
        if store.meta_state is MetaState.TOMBSTONE:
            continue
        beat = pd_view.heartbeat(cluster, store, now_ns)
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
    lines += family("pd_scheduler_store_status", "gauge", "Store status for schedule", samples)
    return "\n".join(lines) + "\n"
