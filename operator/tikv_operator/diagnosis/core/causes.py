"""The diagnosis catalogue, as data: each cause, the symptoms it explains, and where they must be for the link to
hold (docs/diagnosis.md has it as a table; a unit test keeps the two in step).

A link says: while a ticket of `cause` is open, a ticket of one of `symptoms` on the `where` side of it, first
seen no earlier than `window` before the cause was, is a symptom of it (rule 26). The catalogue has no cycle (a
unit test checks), so following causes always ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from tikv_operator.checks.core.catalogue import INVARIANT_NAMES

# same-store: the symptom is on the cause's store; other-stores: on another store of the cluster;
# cluster: anywhere in the cluster (cluster-wide invariants such as the region gauges, or any store).
Where = Literal["same-store", "other-stores", "cluster"]

# How long before its cause a symptom may have been first seen and still be explained by it: a check interval's
# rounding and a rate window's lag, not a problem that was there long before.
DEFAULT_WINDOW = timedelta(minutes=10)

# What a Down store's own metric tickets are. Not its disk (a full disk is a cause, not what a Down store does)
# nor its critical errors (they may be why it went down).
_STORE_METRICS = frozenset({"high_latency", "raft_log_lag", "raft_append_slow", "raft_apply_slow", "write_stall",
                            "store_slow", "store_leader_lost"})
_REGION_HEARTBEAT = timedelta(minutes=1)
_REGIONS = frozenset({"region_down_peer", "region_miss_peer", "region_pending_peer"})


@dataclass(frozen=True)
class Link:
    rule: str
    cause: str
    symptoms: frozenset[str]
    where: Where
    says: str
    window: timedelta = DEFAULT_WINDOW
    # How long after its cause resolved the symptom may take to clear by itself, beyond the checks that judge it:
    # the region gauges move only at the leaders' next region heartbeat (TiKV's pd-heartbeat-tick-interval, 1m).
    clears_within: timedelta = timedelta(0)


LINKS: tuple[Link, ...] = (
    Link("crash-loop", "store_restarted", frozenset({"store_down"}), "same-store",
         "a crash-looping store is Disconnected or Down between its restarts"),
    Link("store-down-regions", "store_down", _REGIONS, "cluster",
         "a store that is not heartbeating leaves its regions' peers down, missing or pending",
         clears_within=_REGION_HEARTBEAT),
    Link("store-down-own-metrics", "store_down", _STORE_METRICS, "same-store",
         "a store that is not heartbeating has stale or broken metrics of its own"),
    Link("store-down-others-latency", "store_down", frozenset({"high_latency"}), "other-stores",
         "the stores that took over its leaders answer slower while clients retry"),
    Link("disk-full", "low_disk_space", frozenset({"write_stall", "raft_append_slow", "raft_apply_slow",
                                                   "high_latency", "store_low_space"}), "same-store",
         "a full disk stalls RocksDB's writes and slows the Raft log's append and apply"),
    Link("pd-leader-flapping", "pd_leader_flapping", frozenset({"pd_unreachable"}) | _REGIONS, "cluster",
         "PD is briefly unreachable while its leader changes, and its region gauges are read from a new leader",
         clears_within=_REGION_HEARTBEAT),
)

CAUSES: frozenset[str] = frozenset(link.cause for link in LINKS)
LINKS_BY_RULE = {link.rule: link for link in LINKS}

assert len(LINKS_BY_RULE) == len(LINKS), "a diagnosis rule is named twice"
assert all(name in INVARIANT_NAMES for link in LINKS for name in (link.cause, *link.symptoms)), \
    "a diagnosis rule names an invariant that is not declared"
