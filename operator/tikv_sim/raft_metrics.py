"""One TiKV process' raftstore health: the raft log lag and the append/apply log duration histograms,
each at a set p99 (see histogram.py), and the critical error counter.

Upstream: tikv/tikv components/raftstore/src/store/metrics.rs and components/tikv_util/src/metrics/mod.rs
(v8.5.0 and HEAD 8e964719 alike). All are plain process-local metrics: a restarted TiKV starts them at zero.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tikv_sim.histogram import Bounds, FixedP99Histogram

# REGION_MAX_LOG_LAG: vec![2.0, 4.0, ..., 1024.0, 5120.0, 10240.0], the same from v4 to HEAD.
LOG_LAG_BUCKETS: Bounds = (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 5120.0, 10240.0)
# STORE_WRITE_TO_DB_DURATION_HISTOGRAM ("append") and STORE_APPLY_LOG_HISTOGRAM ("apply"):
# exponential_buckets(0.00001, 2.0, 26), 10 us .. 335.5 s, since v6.3 (tikv #13037, commit 21e3bd64);
# apply used exponential_buckets(0.0005, 2.0, 20) before.
DURATION_BUCKETS: Bounds = tuple(1e-5 * 2**i for i in range(26))

# Ten times the gRPC histogram's observations per tick: the interpolated p99 lands within 1/1000 of a
# bucket of the set value, which matters in the wide log-lag buckets (1024 .. 5120 entries).
_WEIGHT = 10


@dataclass(frozen=True)
class RaftHistogram:
    name: str
    help_text: str
    bounds: Bounds
    healthy: float  # p99 of a healthy store
    unit: str  # what a fault's value means, for messages


RAFT_HISTOGRAMS: dict[str, RaftHistogram] = {
    "log-lag": RaftHistogram(
        "tikv_raftstore_log_lag", "Bucketed histogram of log lag in a region.", LOG_LAG_BUCKETS, 10.0, "entries"
    ),
    "append": RaftHistogram(
        "tikv_raftstore_append_log_duration_seconds",
        "Bucketed histogram of peer appending log duration.",
        DURATION_BUCKETS,
        0.005,
        "seconds",
    ),
    "apply": RaftHistogram(
        "tikv_raftstore_apply_log_duration_seconds",
        "Bucketed histogram of peer applying log duration.",
        DURATION_BUCKETS,
        0.005,
        "seconds",
    ),
}

CRITICAL_ERROR_NAME = "tikv_critical_error_total"
CRITICAL_ERROR_HELP = "Counter of critical error."
# The `type` values TiKV passes to CRITICAL_ERROR.with_label_values: v8.5 has the first five
# (engine_rocks event_listener.rs, raftstore region_snapshot.rs, tikv_kv cursor.rs, storage mvcc/mod.rs);
# HEAD adds the disk probes of raftstore fail_fast.rs. Any other value is accepted: it is only a label.
CRITICAL_ERROR_TYPES: tuple[str, ...] = (
    "sst_corruption", "rocksdb get", "key not in region", "rocksdb iter", "default value not found",
    "disk_probe_stuck_raft", "disk_probe_stuck_kv", "disk_probe_fail_fast_raft", "disk_probe_fail_fast_kv",
)  # fmt: skip
DEFAULT_CRITICAL_ERROR = "sst_corruption"  # RocksDB found a corrupted SST file in the background


def healthy_p99s() -> dict[str, float]:
    return {key: spec.healthy for key, spec in RAFT_HISTOGRAMS.items()}


def check_p99(key: str, value: float) -> None:
    """A log lag of 0 entries is possible; a duration of 0 s is not."""
    if key not in RAFT_HISTOGRAMS:
        raise ValueError(f"unknown raft histogram {key!r}: use one of {', '.join(RAFT_HISTOGRAMS)}")
    if not math.isfinite(value) or value < 0 or (value == 0 and RAFT_HISTOGRAMS[key].unit == "seconds"):
        what = "cannot be negative" if RAFT_HISTOGRAMS[key].unit == "entries" else "must be positive"
        raise ValueError(f"a raft {key} p99 {what} (and finite), got {value}")


class RaftHealth:
    """The histograms and error counts of one process; the p99s to aim at come from the store."""

    def __init__(self, p99s: Mapping[str, float], start_ns: int) -> None:
        self.histograms = {
            key: FixedP99Histogram(spec.bounds, p99s[key], start_ns, _WEIGHT) for key, spec in RAFT_HISTOGRAMS.items()
        }
        # A CounterVec child exists only once incremented: no errors, no family in the exposition at all.
        self.critical_errors: dict[str, int] = {}

    def set_p99(self, key: str, value: float, now_ns: int) -> None:
        self.histograms[key].set_p99(value, now_ns)

    def count_error(self, kind: str, count: int) -> None:
        if count < 0:
            raise ValueError("a counter only goes up: count cannot be negative")
        if not kind.strip():
            raise ValueError("a critical error needs a non-empty type")
        self.critical_errors[kind] = self.critical_errors.get(kind, 0) + count
