"""TiKV's gRPC message types and the request mix of a healthy store (tikv src/server/metrics.rs).

`tikv_grpc_msg_duration_seconds` is a static metric: every type x priority child exists from the
start, so a real store exports all 50 x 4 of them even though most never see a request.
"""

from dataclasses import dataclass
from functools import cache

# label_enum GrpcTypeKind at TiKV HEAD, in declaration order.
GRPC_TYPES: tuple[str, ...] = (
    "invalid", "kv_get", "kv_scan", "kv_prewrite", "kv_pessimistic_lock", "kv_pessimistic_rollback",
    "kv_commit", "kv_cleanup", "kv_batch_get", "kv_batch_get_command", "kv_batch_rollback",
    "kv_txn_heart_beat", "kv_check_txn_status", "kv_check_secondary_locks", "kv_scan_lock",
    "kv_resolve_lock", "kv_gc", "kv_delete_range", "kv_prepare_flashback_to_version",
    "kv_flashback_to_version", "raw_get", "raw_batch_get", "raw_batch_get_command", "raw_scan",
    "raw_batch_scan", "raw_put", "raw_batch_put", "raw_delete", "raw_delete_range", "raw_batch_delete",
    "raw_get_key_ttl", "raw_compare_and_swap", "raw_checksum", "unsafe_destroy_range",
    "register_lock_observer", "check_lock_observer", "remove_lock_observer", "coprocessor",
    "coprocessor_stream", "raw_coprocessor", "mvcc_get_by_key", "mvcc_get_by_start_ts", "split_region",
    "read_index", "check_leader", "batch_commands", "kv_flush", "kv_buffer_batch_get",
    "get_health_feedback", "broadcast_txn_status",
)  # fmt: skip

# TiKV >= 7.6. A request without a resource-group priority is "unknown"; TiDB's default group is medium.
PRIORITIES: tuple[str, ...] = ("high", "medium", "low", "unknown")


@dataclass(frozen=True)
class Traffic:
    """One message type's share of a store's requests and its latency.

    weight: per-mille of the store's requests. tail_only: only the slowest 1 % sits at the p99, the
    rest with the store's ordinary requests (a stream is long by nature, most are still quick); when
    False the whole distribution sits just under the p99 (a type that is slow as a whole, like lock waits).
    """

    weight: int
    p99_seconds: float
    priority: str = "medium"
    tail_only: bool = False


# Types answered at the store's own p99: what clients send, plus TiKV-to-TiKV traffic with no priority.
FOREGROUND_WEIGHTS: dict[str, tuple[int, str]] = {
    "kv_get": (300, "medium"),
    "kv_batch_get": (100, "medium"),
    "kv_scan": (40, "medium"),
    "kv_prewrite": (120, "medium"),
    "kv_commit": (120, "medium"),
    "coprocessor": (150, "medium"),
    # Several % of the requests: under lock contention its waits pull a mixed-type p99 up on their own.
    "kv_pessimistic_lock": (60, "medium"),
    "kv_check_txn_status": (5, "medium"),
    "kv_resolve_lock": (5, "medium"),
    "check_leader": (40, "unknown"),
    "read_index": (20, "unknown"),
    "split_region": (1, "unknown"),
}
FOREGROUND_TYPES: tuple[str, ...] = tuple(FOREGROUND_WEIGHTS)

# 0.2 % of the requests: under the 1 % that would let it decide a mixed p99.
STREAM_WEIGHT = 2
STREAM_P99_SECONDS = 3.0
# A type that a latency fault switches on without saying how much traffic: 1 % of the requests.
DEFAULT_WEIGHT = 10

# "lean" series: the types that ever carry traffic by default, the slow background ones, and kv_gc
# (which old queries exclude by name), on the two priorities that traffic uses.
LEAN_TYPES: tuple[str, ...] = (*FOREGROUND_TYPES, "coprocessor_stream", "unsafe_destroy_range", "kv_gc")
LEAN_PRIORITIES: tuple[str, ...] = ("medium", "unknown")
SERIES_PROFILES: tuple[str, ...] = ("full", "lean")


def default_traffic(p99_seconds: float) -> dict[str, Traffic]:
    """A healthy store's mix; every type not listed has no traffic."""
    mix = {name: Traffic(weight, p99_seconds, priority) for name, (weight, priority) in FOREGROUND_WEIGHTS.items()}
    mix["coprocessor_stream"] = Traffic(STREAM_WEIGHT, STREAM_P99_SECONDS, "medium", tail_only=True)
    return mix


@cache
def exported_children(profile: str) -> tuple[tuple[str, str], ...]:
    """(type, priority) children a store exports in this series profile, in a stable order."""
    if profile == "full":
        return tuple((t, p) for t in GRPC_TYPES for p in PRIORITIES)
    if profile == "lean":
        return tuple((t, p) for t in LEAN_TYPES for p in LEAN_PRIORITIES)
    raise ValueError(f"unknown gRPC series profile {profile!r}: use one of {', '.join(SERIES_PROFILES)}")


@cache
def exported_set_of(profile: str) -> frozenset[tuple[str, str]]:
    return frozenset(exported_children(profile))


def check_type(name: str) -> str:
    if name not in GRPC_TYPES:
        raise ValueError(f"unknown gRPC message type {name!r} (TiKV's are kv_get, kv_prewrite, coprocessor, ...)")
    return name
