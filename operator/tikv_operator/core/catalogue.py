"""The invariant catalogue as data: every built-in invariant's scope, source, rule in words and defaults.

One source of truth for the defaults the engine applies (core.invariants attaches the rule functions),
for `kubectl explain tikvcluster.spec.invariants` (the CRD descriptions are built from it) and for the
README's table (a unit test keeps that table equal to this one). Pure data: no I/O, no rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from tikv_operator.core.durations import format_duration
from tikv_operator.core.vocabulary import INVARIANT_NAMES, Severity

Scope = Literal["store", "cluster"]
Source = Literal["pd", "prometheus"]


@dataclass(frozen=True)
class Entry:
    name: str
    scope: Scope
    source: Source
    rule: str  # the rule in words, with where its numbers come from
    threshold: float | None
    unit: str  # of the threshold: "seconds", "ratio", "entries", "changes", ...
    grace_period: timedelta
    severity: Severity
    # The PromQL look-back of invariants that count events or take a rate over a range; None: no range, or
    # the cluster's spec.prometheus.rateWindow (the p99 invariants).
    window: timedelta | None = None
    uses_rate_window: bool = False

    @property
    def source_text(self) -> str:
        if self.name in _PD_GAUGES:
            return "Prometheus (PD leader)"
        return {"pd": "PD /stores", "prometheus": "Prometheus"}[self.source]

    def threshold_text(self) -> str:
        if self.threshold is None:
            return "-"
        value = f"{self.threshold:g}"
        return f"{value} {self.unit}" if self.unit else value

    def window_text(self) -> str:
        if self.uses_rate_window:
            return "rateWindow"
        return format_duration(self.window) if self.window is not None else "-"

    def describe(self) -> str:
        """One line for `kubectl explain` and the README."""
        extra = f", window {self.window_text()}" if self.window_text() != "-" else ""
        grace = format_duration(self.grace_period)
        return (f"{self.scope}-scoped, from {self.source_text}: {self.rule}. Default threshold "
                f"{self.threshold_text()}, grace {grace}, severity {self.severity}{extra}.")


_PD_GAUGES = frozenset({"region_miss_peer", "region_down_peer", "region_pending_peer", "pd_leader_flapping"})
_M = timedelta(minutes=1)

ENTRIES: Mapping[str, Entry] = {
    e.name: e
    for e in (
        Entry("store_down", "store", "pd",
              "PD reports the store Disconnected past the grace period (warning) or Down (at once, the invariant's "
              "severity); Offline (scale-in) is not down", None, "", _M, "critical"),
        Entry("high_latency", "store", "prometheus",
              "worst p99 of tikv_grpc_msg_duration_seconds among foreground request types over "
              "spec.prometheus.rateWindow above the threshold (resolves below 80 % of it)",
              0.1, "seconds", _M, "warning", uses_rate_window=True),
        Entry("low_disk_space", "store", "prometheus",
              "(capacity - available) / capacity of tikv_store_size_bytes above the threshold (resolves 5 points "
              "below it)", 0.7, "ratio",
              timedelta(0), "warning"),
        Entry("pd_unreachable", "cluster", "pd", "PD's API does not answer correctly", None, "", _M, "critical"),
        Entry("prometheus_unreachable", "cluster", "prometheus", "Prometheus' query API does not answer correctly",
              None, "", _M, "warning"),
        Entry("store_slow", "store", "pd",
              "PD's slow_score of an Up store at or above the threshold (PD's own: 80; PD_cluster_slow_tikv_nums)",
              80, "", _M, "critical"),
        Entry("store_low_space", "store", "pd",
              "PD's available / capacity of an Up store below the threshold (TiKV_low_space; PD's low-space-ratio "
              "0.8), resolving 5 points above it; judges the disk when Prometheus has no disk series", 0.2, "ratio",
              _M, "warning"),
        Entry("store_restarted", "store", "pd",
              "PD's start_timestamp of the store changed at least `threshold` times within the window (a crash "
              "loop; one restart, as in a rolling restart, is routine: set 1 for TiKV_node_restart's behaviour)",
              2, "restarts", timedelta(0), "warning", window=timedelta(minutes=10)),
        Entry("store_leader_lost", "store", "pd",
              "an Up store that held Raft leaders since it started holds none while other stores hold leaders "
              "(what TiKV_leader_drops meant; its metric no longer exists)", None, "", timedelta(minutes=10),
              "warning"),
        Entry("region_miss_peer", "cluster", "prometheus",
              'pd_regions_status{type="miss-peer-region-count"} of the PD leader above the threshold '
              "(PD_miss_peer_region_count, whose underscored label never matches)", 100, "regions", _M, "critical"),
        Entry("region_down_peer", "cluster", "prometheus",
              'pd_regions_status{type="down-peer-region-count"} of the PD leader above the threshold '
              "(PD_down_peer_region_nums)", 0, "regions", _M, "warning"),
        Entry("region_pending_peer", "cluster", "prometheus",
              'pd_regions_status{type="pending-peer-region-count"} of the PD leader above the threshold '
              "(PD_pending_peer_region_count)", 100, "regions", _M, "warning"),
        Entry("raft_log_lag", "store", "prometheus",
              "p99 of tikv_raftstore_log_lag above the threshold (TiKV_raft_log_lag)", 5000, "entries", _M,
              "critical", uses_rate_window=True),
        Entry("raft_append_slow", "store", "prometheus",
              "p99 of tikv_raftstore_append_log_duration_seconds above the threshold "
              "(TiKV_raft_append_log_duration_secs)",
              1, "seconds", _M, "critical", uses_rate_window=True),
        Entry("raft_apply_slow", "store", "prometheus",
              "p99 of tikv_raftstore_apply_log_duration_seconds above the threshold "
              "(TiKV_raft_apply_log_duration_secs)",
              1, "seconds", _M, "critical", uses_rate_window=True),
        Entry("write_stall", "store", "prometheus",
              'RocksDB stalled writes within the window (max of tikv_engine_write_stall{type="write_stall_max"}, '
              "microseconds, above the threshold; TiKV_write_stall's delta misses a stall that ended) or "
              "tikv_scheduler_l0_avg above 80 files (TiKV_maybe_write_stall)", 0, "microseconds", _M, "critical",
              window=timedelta(minutes=10)),
        Entry("critical_error", "store", "prometheus",
              "tikv_critical_error_total grew within the window, a store's first error included (which rate() "
              "misses); no series while the store is scraped means no error", 0, "errors", timedelta(0),
              "critical", window=timedelta(minutes=1)),
        Entry("pd_leader_flapping", "cluster", "prometheus",
              "PD leader changes within the window (max over PD members of etcd_server_leader_changes_seen_total) "
              "at or above the threshold; PD_leader_change pages on every change, which upgrades make routinely",
              3, "changes", _M, "warning", window=timedelta(minutes=10)),
    )
}

assert tuple(ENTRIES) == INVARIANT_NAMES, "the catalogue and vocabulary.InvariantName list the same invariants"
