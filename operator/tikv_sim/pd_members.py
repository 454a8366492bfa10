"""PD's members as Prometheus scrapes them: each member has its own /metrics.

Every member exports etcd's view of the election (etcd_server_is_leader, etcd_server_leader_changes_seen_total).
Only the leader, once its RaftCluster runs, computes the cluster gauges (pd_cluster_status,
pd_regions_status, pd_scheduler_store_status). PD before v7.6 never resets them, so a member that stepped
down, or a leader whose RaftCluster stopped, keeps exporting what it last set: stale values that only an
`etcd_server_is_leader == 1` gate keeps out of a query. (From v7.6, tikv/pd#7370, a stopping RaftCluster
resets them: pd_regions_status to 0, the other two families gone. The simulator models the older, stale
behaviour; the operator must be right on both, and the same gate covers both for followers.)
"""

from collections.abc import Mapping

from tikv_sim import pd_payloads, pd_view
from tikv_sim.clock import NS_PER_SECOND
from tikv_sim.cluster_model import Cluster, PdMode, check_region_counts, region_gauge_type
from tikv_sim.exposition import Sample, family
from tikv_sim.pd_leader import Gauges, LeaderPhase
from tikv_sim.store_model import MetaState

REGIONS_STATUS = "pd_regions_status"
_HELP = {
    "pd_cluster_status": "Status of the cluster.",
    REGIONS_STATUS: "Status of the regions.",
    "pd_scheduler_store_status": "Store status for schedule",
}
MEMBER_SCOPES: tuple[str, ...] = ("leader", "followers")  # whose pd_regions_status a `regions` fault sets


def serving(cluster: Cluster, now_ns: int) -> bool:
    """The leader's RaftCluster runs: PD answers /stores and computes its cluster gauges."""
    return cluster.pd.mode is not PdMode.NOT_BOOTSTRAPPED and cluster.pd.leader.phase(now_ns) is LeaderPhase.SERVING


def is_leader(cluster: Cluster, index: int, now_ns: int) -> bool:
    """etcd_server_is_leader: nobody leads during an election."""
    leader = cluster.pd.leader
    return index == leader.leader_index and leader.phase(now_ns) is not LeaderPhase.ELECTION


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


def _store_status(cluster: Cluster, now_ns: int) -> list[Sample]:
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
    return samples


def _region_status(cluster: Cluster) -> list[Sample]:
    return [({"type": kind}, count) for kind, count in pd_payloads.region_gauges(cluster).items()]


def live_gauges(cluster: Cluster, now_ns: int) -> Gauges:
    """The cluster gauges as the serving leader computes them now."""
    status: list[Sample] = [({"type": k}, v) for k, v in _store_counts(cluster, now_ns).items()]
    status.append(({"type": "region_count"}, cluster.region_total()))
    return {
        "pd_cluster_status": status,
        REGIONS_STATUS: _region_status(cluster),
        "pd_scheduler_store_status": _store_status(cluster, now_ns),
    }


def member_gauges(cluster: Cluster, index: int, now_ns: int) -> Gauges:
    """Live on the serving leader; otherwise what the member set when it last led (nothing if it never did)."""
    if index == cluster.pd.leader.leader_index and serving(cluster, now_ns):
        return live_gauges(cluster, now_ns)
    return cluster.pd.leader.stale.get(index, {})


def member_metrics(cluster: Cluster, index: int, now_ns: int) -> str:
    """One member's /metrics."""
    lines = family(
        "etcd_server_is_leader",
        "gauge",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        [({}, 1 if is_leader(cluster, index, now_ns) else 0)],
    )
    lines += family(
        "etcd_server_leader_changes_seen_total",
        "counter",
        "The number of leader changes seen.",
        [({}, cluster.pd.leader.changes)],
    )
    for name, samples in member_gauges(cluster, index, now_ns).items():
        lines += family(name, "gauge", _HELP[name], samples)
    return "\n".join(lines) + "\n"


def set_mode(cluster: Cluster, mode: PdMode, now_ns: int) -> None:
    """PD's API mode; a serving leader that stops serving (not bootstrapped) keeps the gauges it set last."""
    leader = cluster.pd.leader.leader_index
    if mode is PdMode.NOT_BOOTSTRAPPED and serving(cluster, now_ns):
        cluster.pd.leader.stale[leader] = live_gauges(cluster, now_ns)
    cluster.pd.mode = mode


def change_leader(
    cluster: Cluster, now_ns: int, election_seconds: float, not_bootstrapped_seconds: float, reconnect_seconds: float
) -> None:
    """The leader steps down with its gauges frozen as they are now; then the next member is elected."""
    old = cluster.pd.leader.leader_index
    kept = member_gauges(cluster, old, now_ns)
    pd_view.change_leader(cluster, now_ns, election_seconds, not_bootstrapped_seconds, reconnect_seconds)
    if kept:
        cluster.pd.leader.stale[old] = kept


def followers(cluster: Cluster) -> list[int]:
    return [i for i in range(cluster.identity.pd_members) if i != cluster.pd.leader.leader_index]


def set_follower_regions(cluster: Cluster, counts: Mapping[str, int]) -> None:
    """Region problem counts on the followers' stale pd_regions_status only; the leader's stay as they are.

    A follower that never led gets the family now, from what the leader reports, with `counts` over it.
    """
    check_region_counts(counts)
    stale = cluster.pd.leader.stale
    for index in followers(cluster):
        gauges = dict(stale.get(index, {}))
        values = {labels["type"]: value for labels, value in gauges.get(REGIONS_STATUS, _region_status(cluster))}
        values |= {region_gauge_type(kind): int(count) for kind, count in counts.items()}
        gauges[REGIONS_STATUS] = [({"type": kind}, value) for kind, value in values.items()]
        stale[index] = gauges
