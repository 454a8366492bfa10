"""Prometheus text exposition of one TiKV or TiFlash store's /metrics, under the real names
(PD members' /metrics: pd_members.py)."""

from tikv_sim import grpc_metrics, histogram
from tikv_sim.clock import NS_PER_SECOND
from tikv_sim.exposition import CONTENT_TYPE, Sample, family
from tikv_sim.raft_metrics import CRITICAL_ERROR_HELP, CRITICAL_ERROR_NAME, RAFT_HISTOGRAMS
from tikv_sim.store_model import Store

__all__ = ["CONTENT_TYPE", "store_metrics", "tiflash_metrics", "tikv_metrics"]


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


def _raft(store: Store, now_ns: int) -> list[str]:
    lines = []
    for key, spec in RAFT_HISTOGRAMS.items():
        lines += histogram.render(spec.name, spec.help_text, store.raft.histograms[key], now_ns)
    errors = store.raft.critical_errors
    if errors:  # rust-prometheus leaves a CounterVec without children out of the exposition entirely
        lines += family(
            CRITICAL_ERROR_NAME, "counter", CRITICAL_ERROR_HELP, [({"type": t}, n) for t, n in errors.items()]
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
    lines += _raft(store, now_ns)
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
