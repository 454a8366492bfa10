"""A store as PD shows it: PD knows a store only through its heartbeats, and a new PD leader only
through the last heartbeat that was persisted to etcd (tikv/pd pkg/core/store.go storePersistInterval)."""

from tikv_sim.clock import NS_PER_SECOND, seconds_to_ns
from tikv_sim.cluster_model import Cluster
from tikv_sim.pd_leader import LeaderChange
from tikv_sim.store_model import Heartbeat, MetaState, Store


def _lost(at_ns: int) -> Heartbeat:
    """What a new leader has before a store's first heartbeat: a time from etcd, no StoreStats at all."""
    return Heartbeat(
        at_ns=at_ns, capacity=0, available=0, used_size=0, region_count=0, leader_count=0,
        region_size_mb=0, leader_size_mb=0, slow_score=0,
    )  # fmt: skip


def _reconnected(change: LeaderChange, store: Store, now_ns: int) -> bool:
    return store.first_heartbeat_since(change.reconnect_ns, now_ns) is not None


def heartbeat(cluster: Cluster, store: Store, now_ns: int) -> Heartbeat:
    beat = store.reported(now_ns)
    change = cluster.pd.leader.last
    if change is None or store.id not in change.persisted or _reconnected(change, store, now_ns):
        return beat
    return _lost(change.persisted[store.id])


def down_seconds(cluster: Cluster, store: Store, now_ns: int) -> float:
    return (now_ns - heartbeat(cluster, store, now_ns).at_ns) / NS_PER_SECOND


def state_name(cluster: Cluster, store: Store, now_ns: int) -> str:
    """state_name as /stores shows it (tikv/pd pkg/response/store.go BuildStoreInfo)."""
    if store.meta_state is not MetaState.UP:
        return store.meta_state.title
    down = down_seconds(cluster, store, now_ns)
    if down > cluster.timing.down_after:
        return "Down"
    if down > cluster.timing.disconnect_after:
        return "Disconnected"
    return "Up"


def change_leader(
    cluster: Cluster, now_ns: int, election_seconds: float, not_bootstrapped_seconds: float, reconnect_seconds: float
) -> None:
    """A new leader is elected: every store reads as of its persisted heartbeat until it reconnects."""
    if min(election_seconds, not_bootstrapped_seconds, reconnect_seconds) < 0:
        raise ValueError("a leader change's phases cannot take negative time")
    previous = cluster.pd.leader.last
    persisted = {}
    for store in cluster.stores.values():
        value = store.persisted_heartbeat_ns(now_ns)
        if previous is not None and store.id in previous.persisted and not _reconnected(previous, store, now_ns):
            # Never reached the previous leader: etcd still holds what the one before persisted.
            value = min(value, previous.persisted[store.id])
        persisted[store.id] = value
    elected = now_ns + seconds_to_ns(election_seconds)
    ready = elected + seconds_to_ns(not_bootstrapped_seconds)
    change = LeaderChange(
        at_ns=now_ns,
        elected_ns=elected,
        ready_ns=ready,
        reconnect_ns=ready + seconds_to_ns(reconnect_seconds),
        persisted=persisted,
    )
    cluster.pd.leader.record(change, cluster.identity.pd_members)
