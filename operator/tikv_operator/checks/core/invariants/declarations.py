"""The declaration of every built-in invariant: one Entry each, in DECLARATIONS, and nothing to keep in step.

Adding a built-in invariant is: one Entry below, one rule function (in pd_rules, store_metrics or pd_metrics,
by where its numbers come from), its tests, and its runbook (docs/runbooks/<name>.md). An invariant that
needs PromQL no other one asks also adds its check to checks.core.queries.

Derived from this table, never listed again: the names (INVARIANT_NAMES), the engine's catalogue
and defaults (checks.core.invariants.CATALOGUE, configure), which union-query checks are asked and which check's
PromQL range each window sets (queries_for), spec.invariants in the CRD and `kubectl explain` (built from
describe()), and the table of docs/invariants.md (a unit test renders it from ENTRIES).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

# Each rule module by its own path: this module is what the package's __init__ reads, so it must not need it.
import tikv_operator.checks.core.invariants.pd_metrics as pd_metrics
import tikv_operator.checks.core.invariants.pd_rules as pd_rules
import tikv_operator.checks.core.invariants.store_metrics as store_metrics
from tikv_operator.checks.core.invariants.engine import Rule
from tikv_operator.checks.core.queries import (
    CRITICAL_ERRORS,
    L0_FILES,
    P99_LATENCY,
    PD_LEADER_CHANGES,
    PD_LEADER_SETTLED,
    PD_LEADERS,
    PD_REGIONS,
    RAFT_APPEND,
    RAFT_APPLY,
    RAFT_LOG_LAG,
    WRITE_STALL,
)
from tikv_operator.model.durations import format_duration
from tikv_operator.model.vocabulary import Severity

Scope = Literal["store", "cluster"]
Source = Literal["pd", "prometheus"]
RUNBOOKS = "docs/runbooks"


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One built-in invariant: what it judges, from where, by which rule function, and its defaults."""

    name: str
    scope: Scope
    source: Source
    judged_by: Rule  # the rule function
    rule: str  # the rule in words, with where its numbers come from
    watches: str  # what it watches, in a few words a person scans (the runbook index)
    threshold: float | None = None
    unit: str = ""  # of the threshold: "seconds", "ratio", "entries", "changes", ...
    grace_period: timedelta
    severity: Severity
    # The PromQL look-back of invariants that count events or take a rate over a range; None: no range, or
    # the cluster's spec.prometheus.rateWindow (the p99 invariants).
    window: timedelta | None = None
    uses_rate_window: bool = False
    # The union-query checks asked on its behalf: a check no enabled invariant asks for is left out.
    checks: tuple[str, ...] = ()
    # The check (or query) whose PromQL range is this invariant's window.
    window_check: str | None = None
    # Read from PD's gauges through the leader gate (etcd_server_is_leader == 1).
    pd_leader_gauge: bool = False

    @property
    def runbook(self) -> str:
        """Its runbook, from the repository's root (--runbook-url points alerts at the published copy)."""
        return f"{RUNBOOKS}/{self.name}.md"

    @property
    def source_text(self) -> str:
        if self.pd_leader_gauge:
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


_M = timedelta(minutes=1)
# The region gauges are read through the leader gate, and ok waits for a leader that led throughout the window.
_PD_REGION_CHECKS = (PD_REGIONS, PD_LEADERS, PD_LEADER_SETTLED)

DECLARATIONS: tuple[Entry, ...] = (
    Entry(name="store_down", watches="PD calls a store Disconnected past its grace period, or Down",
          scope="store", source="pd", judged_by=pd_rules.store_down,
          rule="PD reports the store Disconnected past the grace period (warning) or Down (at once, the "
          "invariant's severity); Offline (scale-in) is not down",
          grace_period=_M, severity="critical"),
    Entry(name="high_latency", watches="foreground gRPC p99 latency of a store",
          scope="store", source="prometheus", judged_by=store_metrics.high_latency,
          rule="worst p99 of tikv_grpc_msg_duration_seconds among foreground request types over "
          "spec.prometheus.rateWindow above the threshold (resolves below 80 % of it)",
          threshold=0.1, unit="seconds", grace_period=_M, severity="warning", uses_rate_window=True,
          window_check=P99_LATENCY),
    Entry(name="low_disk_space", watches="used disk of a store, from TiKV's metrics",
          scope="store", source="prometheus", judged_by=store_metrics.low_disk_space,
          rule="(capacity - available) / capacity of tikv_store_size_bytes above the threshold (resolves 5 points "
          "below it)",
          threshold=0.7, unit="ratio", grace_period=timedelta(0), severity="warning"),
    Entry(name="pd_unreachable", watches="PD's API does not answer correctly",
          scope="cluster", source="pd", judged_by=pd_rules.pd_unreachable,
          rule="PD's API does not answer correctly",
          grace_period=_M, severity="critical"),
    Entry(name="prometheus_unreachable", watches="Prometheus' query API does not answer correctly",
          scope="cluster", source="prometheus",
          judged_by=store_metrics.prometheus_unreachable,
          rule="Prometheus' query API does not answer correctly",
          grace_period=_M, severity="warning"),
    Entry(name="store_slow", watches="PD's slow score of a store",
          scope="store", source="pd", judged_by=pd_rules.store_slow,
          rule="PD's slow_score of an Up store at or above the threshold (PD's own: 80; PD_cluster_slow_tikv_nums)",
          threshold=80, grace_period=_M, severity="critical"),
    Entry(name="store_low_space", watches="free disk of a store, from PD",
          scope="store", source="pd", judged_by=pd_rules.store_low_space,
          rule="PD's available / capacity of an Up store below the threshold (TiKV_low_space; PD's "
          "low-space-ratio 0.8), resolving 5 points above it; judges the disk when Prometheus has no disk series",
          threshold=0.2, unit="ratio", grace_period=_M, severity="warning"),
    # Its window is how long restarts are remembered (restart_horizon), not a PromQL range.
    Entry(name="store_restarted", watches="a store restarting again and again (a crash loop)",
          scope="store", source="pd", judged_by=pd_rules.store_restarted,
          rule="PD's start_timestamp of the store changed at least `threshold` times within the window (a crash "
          "loop; one restart, as in a rolling restart, is routine: set 1 for TiKV_node_restart's behaviour)",
          threshold=2, unit="restarts", grace_period=timedelta(0), severity="warning",
          window=timedelta(minutes=10)),
    Entry(name="store_leader_lost", watches="a store that lost all its Raft leaders",
          scope="store", source="pd", judged_by=pd_rules.store_leader_lost,
          rule="an Up store that held Raft leaders since it started holds none while other stores hold leaders "
          "(what TiKV_leader_drops meant; its metric no longer exists)",
          grace_period=timedelta(minutes=10), severity="warning"),
    Entry(name="region_miss_peer", watches="regions missing a replica, from the PD leader",
          scope="cluster", source="prometheus",
          judged_by=pd_metrics.region_rule("miss-peer-region-count"),
          rule='pd_regions_status{type="miss-peer-region-count"} of the PD leader above the threshold '
          "(PD_miss_peer_region_count, whose underscored label never matches)",
          threshold=100, unit="regions", grace_period=_M, severity="critical",
          checks=_PD_REGION_CHECKS, pd_leader_gauge=True),
    Entry(name="region_down_peer", watches="regions with a down replica, from the PD leader",
          scope="cluster", source="prometheus",
          judged_by=pd_metrics.region_rule("down-peer-region-count"),
          rule='pd_regions_status{type="down-peer-region-count"} of the PD leader above the threshold '
          "(PD_down_peer_region_nums)",
          threshold=0, unit="regions", grace_period=_M, severity="warning",
          checks=_PD_REGION_CHECKS, pd_leader_gauge=True),
    Entry(name="region_pending_peer", watches="regions with a pending replica, from the PD leader",
          scope="cluster", source="prometheus",
          judged_by=pd_metrics.region_rule("pending-peer-region-count"),
          rule='pd_regions_status{type="pending-peer-region-count"} of the PD leader above the threshold '
          "(PD_pending_peer_region_count)",
          threshold=100, unit="regions", grace_period=_M, severity="warning",
          checks=_PD_REGION_CHECKS, pd_leader_gauge=True),
    Entry(name="raft_log_lag", watches="Raft log lag of a store",
          scope="store", source="prometheus", judged_by=store_metrics.raft_log_lag,
          rule="p99 of tikv_raftstore_log_lag above the threshold (TiKV_raft_log_lag)",
          threshold=5000, unit="entries", grace_period=_M, severity="critical", uses_rate_window=True,
          checks=(RAFT_LOG_LAG,), window_check=RAFT_LOG_LAG),
    Entry(name="raft_append_slow", watches="p99 time to append Raft log entries",
          scope="store", source="prometheus", judged_by=store_metrics.raft_append_slow,
          rule="p99 of tikv_raftstore_append_log_duration_seconds above the threshold "
          "(TiKV_raft_append_log_duration_secs)",
          threshold=1, unit="seconds", grace_period=_M, severity="critical", uses_rate_window=True,
          checks=(RAFT_APPEND,), window_check=RAFT_APPEND),
    Entry(name="raft_apply_slow", watches="p99 time to apply committed Raft entries",
          scope="store", source="prometheus", judged_by=store_metrics.raft_apply_slow,
          rule="p99 of tikv_raftstore_apply_log_duration_seconds above the threshold "
          "(TiKV_raft_apply_log_duration_secs)",
          threshold=1, unit="seconds", grace_period=_M, severity="critical", uses_rate_window=True,
          checks=(RAFT_APPLY,), window_check=RAFT_APPLY),
    Entry(name="write_stall", watches="RocksDB write stalls, or too many L0 files",
          scope="store", source="prometheus", judged_by=store_metrics.write_stall,
          rule='RocksDB stalled writes within the window (max of tikv_engine_write_stall{type="write_stall_max"}, '
          "microseconds, above the threshold; TiKV_write_stall's delta misses a stall that ended) or "
          "tikv_scheduler_l0_avg above 80 files (TiKV_maybe_write_stall)",
          threshold=0, unit="microseconds", grace_period=_M, severity="critical", window=timedelta(minutes=10),
          checks=(WRITE_STALL, L0_FILES), window_check=WRITE_STALL),
    Entry(name="critical_error", watches="TiKV's critical errors",
          scope="store", source="prometheus", judged_by=store_metrics.critical_error,
          rule="tikv_critical_error_total grew within the window, a store's first error included (which rate() "
          "misses); no series while the store is scraped means no error",
          threshold=0, unit="errors", grace_period=timedelta(0), severity="critical", window=timedelta(minutes=1),
          checks=(CRITICAL_ERRORS,), window_check=CRITICAL_ERRORS),
    Entry(name="pd_leader_flapping", watches="PD leader changes, several within a window",
          scope="cluster", source="prometheus", judged_by=pd_metrics.pd_leader_flapping,
          rule="PD leader changes within the window (max over PD members of etcd_server_leader_changes_seen_total) "
          "at or above the threshold; PD_leader_change pages on every change, which upgrades make routinely",
          threshold=3, unit="changes", grace_period=_M, severity="warning", window=timedelta(minutes=10),
          checks=(PD_LEADER_CHANGES,), window_check=PD_LEADER_CHANGES, pd_leader_gauge=True),
)

ENTRIES: Mapping[str, Entry] = {e.name: e for e in DECLARATIONS}
# The built-in invariants' names, in declaration order.
INVARIANT_NAMES: tuple[str, ...] = tuple(ENTRIES)
assert len(ENTRIES) == len(DECLARATIONS), "an invariant is declared twice"
