"""The cascade of a fault: what real PD and TiKV do on their own after a store stops, restarts or fills its disk.

One fault, several symptoms, each at its own time (the clocks are Timing's; docs/simulator.md "Cascades, as
real PD and TiKV behave" has the upstream code behind each, tikv/pd a186e0cc and tikv/tikv 8e964719):

- a store stops: after the election timeout its region leaders move to the other Up stores (PD's /stores
  leader_count and their tikv_raftstore_region_count{type="leader"}) and those stores' latency rises for a
  while; after max-peer-down-duration the leaders report its peers down (down-peer); once PD has seen it
  Down for max-store-down-time, and a store without a peer of the region is left, PD moves each peer
  elsewhere: the new peer is a learner, pending while its snapshot applies, and the region has one peer too
  many until the down one is removed (pending-peer, learner-peer and extra-peer rise and fall, down-peer
  falls). With no store left to move to, down-peer simply stays.
- it starts again: the leaders' next region heartbeats clear down-peer; balance-leader brings its leaders
  back over a while; peers already rebuilt elsewhere stay there.
- a disk near full: RocksDB write stalls and slow raft appends and applies on that store.

A cluster's cascade is off unless switched on (SimConfig.cascade, `tikv-sim run --cascade`, the `cascade`
fault). Pure: the model changes only through `settle`, which plays every symptom due by a given time.
"""

from collections.abc import Callable
from functools import partial
from typing import Any

from tikv_sim.cascade_state import Outage, Symptom
from tikv_sim.clock import NS_PER_SECOND, seconds_to_ns
from tikv_sim.cluster_model import Cluster
from tikv_sim.raft_metrics import RAFT_HISTOGRAMS
from tikv_sim.store_model import MetaState, Store

# How much slower the stores that take over a dead store's leaders answer while clients chase the new leaders
# (region cache misses, NotLeader retries and backoff in client-go). A model: no upstream setting says how much.
FAILOVER_LATENCY_FACTOR = 3.0
# A disk this full (percent used) stalls. TiKV itself refuses writes below storage.reserve-space (5 GB: 95 %
# of the simulated 100 GiB disk); compaction and fsync suffer before that. A model, like the values below.
DISK_STALL_PERCENT = 90.0
DISK_STALL_MICROS = 250_000.0  # tikv_engine_write_stall{type="write_stall_max"}
DISK_SLOW_RAFT_SECONDS = 1.5  # p99 of the raft append and apply durations (the official alerts fire above 1 s)
_REBALANCE_STEPS = 10

# Event kinds an outage cancels when its store comes back before they happen.
_WHILE_DOWN = frozenset({"pd-disconnected", "pd-down", "leaders-moved", "down-peer", "replace", "replace-start"})


def _record(cluster: Cluster, at_ns: int, symptom: str, store: int | None, cause: str, **detail: Any) -> None:
    cluster.cascade.log.append(Symptom(at_ns, symptom, store, cause, detail))


def settle(cluster: Cluster, now_ns: int) -> None:
    """Play every symptom due by `now_ns`, each at its own time (reads call this first)."""
    state = cluster.cascade
    while (event := state.pop_due(now_ns)) is not None:
        event.action(event.due_ns)


def set_enabled(cluster: Cluster, enabled: bool) -> None:
    """Switching it off stops new cascades; symptoms already under way play out."""
    cluster.cascade.enabled = enabled


def _healthy(cluster: Cluster, but: int) -> list[Store]:
    """TiKV stores that can take leaders and new peers: Up, running, not the one that failed."""
    return sorted(
        (s for s in cluster.stores.values()
         if s.id != but and s.running and not s.is_tiflash and s.meta_state is MetaState.UP),
        key=lambda s: s.id,
    )  # fmt: skip


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def store_stopped(cluster: Cluster, store: Store, now_ns: int, cause: str) -> None:
    """A store's process stopped: schedule what PD and the other stores do about it."""
    state = cluster.cascade
    if not state.enabled or store.meta_state is not MetaState.UP:
        return
    previous = state.outages.get(store.id)
    if previous is not None:
        state.cancel(previous.number, frozenset({"rebalance"}))  # it stops again before its leaders are back
    outage = state.new_outage(store.id, cause, now_ns)
    timing = cluster.timing
    _record(cluster, now_ns, "store-stopped", store.id, cause)
    beat_ns = store.last_heartbeat_ns(now_ns)  # PD counts from the last heartbeat, not from the stop

    def pd_state(name: str) -> Callable[[int], None]:
        return lambda at: _record(cluster, at, name, store.id, cause)

    state.schedule(beat_ns + seconds_to_ns(timing.disconnect_after), outage.number, "pd-disconnected",
                   pd_state("store-disconnected"))
    state.schedule(beat_ns + seconds_to_ns(timing.down_after), outage.number, "pd-down", pd_state("store-down"))
    state.schedule(now_ns + seconds_to_ns(timing.election_timeout), outage.number, "leaders-moved",
                   lambda at: _leaders_move(cluster, store, outage, at))
    state.schedule(now_ns + seconds_to_ns(timing.peer_down_after), outage.number, "down-peer",
                   lambda at: _peers_down(cluster, store, outage, at))
    # PD's checkers replace a down peer once the store has been Down for max-store-down-time and the leader
    # reports the peer down (rule_checker.isDownPeer and isStoreDownTimeHitMaxDownTime).
    replace_ns = max(beat_ns + seconds_to_ns(timing.down_after), now_ns + seconds_to_ns(timing.peer_down_after))
    state.schedule(replace_ns, outage.number, "replace", lambda at: _replace(cluster, store, outage, at))


def _leaders_move(cluster: Cluster, store: Store, outage: Outage, at_ns: int) -> None:
    """The followers' election timeout passed: each region on the dead store elects a leader elsewhere."""
    if store.is_tiflash:
        return  # learners only: no leader to elect, no client traffic to move
    receivers = _healthy(cluster, store.id)
    leaders = store.leader_count
    if not receivers:
        _record(cluster, at_ns, "leaders-lost", store.id, outage.cause, leaders=leaders)
        return
    if leaders:
        store.shift_counts(0, -leaders)
        for receiver, share in zip(receivers, _split(leaders, len(receivers)), strict=True):
            receiver.shift_counts(0, share)
            outage.moved[receiver.id] = outage.moved.get(receiver.id, 0) + share
        _record(cluster, at_ns, "leaders-moved", store.id, outage.cause, leaders=leaders,
                to={str(k): v for k, v in outage.moved.items()})
    timing = cluster.timing
    for receiver in receivers:
        _raise_latency(cluster, receiver, +1, at_ns)
        _record(cluster, at_ns, "latency-raised", receiver.id, outage.cause, factor=FAILOVER_LATENCY_FACTOR,
                seconds=timing.latency_recovery, failed_store=store.id)
        cluster.cascade.schedule(at_ns + seconds_to_ns(timing.latency_recovery), 0, "latency-recovered",
                                 partial(_recover_latency, cluster, receiver, outage.cause))


def _raise_latency(cluster: Cluster, store: Store, delta: int, at_ns: int) -> None:
    raised = cluster.cascade.raised
    raised[store.id] = max(0, raised.get(store.id, 0) + delta)
    factor = FAILOVER_LATENCY_FACTOR if raised[store.id] else 1.0
    if store.latency_factor != factor:
        store.set_latency_factor(factor, at_ns)


def _recover_latency(cluster: Cluster, store: Store, cause: str, at_ns: int) -> None:
    _raise_latency(cluster, store, -1, at_ns)
    if not cluster.cascade.raised.get(store.id):
        _record(cluster, at_ns, "latency-recovered", store.id, cause)


def _peers_down(cluster: Cluster, store: Store, outage: Outage, at_ns: int) -> None:
    """max-peer-down-duration passed: every leader of a region with a peer here reports it in down_peers."""
    peers = store.region_count
    if not peers:
        return
    outage.down = peers
    cluster.cascade.add("down-peer", peers)
    _record(cluster, at_ns, "down-peer", store.id, outage.cause, regions=peers)


def _replace(cluster: Cluster, store: Store, outage: Outage, at_ns: int) -> None:
    """PD moves each down peer to a store that holds none of its region, store-limit peers a minute per store."""
    timing = cluster.timing
    receivers = _healthy(cluster, store.id)
    peers = store.region_count
    if store.is_tiflash or not peers:
        return
    if len(receivers) < cluster.identity.replicas:
        # Every healthy store already holds a peer of each region: SelectStoreToFix finds none.
        _record(cluster, at_ns, "replace-blocked", store.id, outage.cause, regions=peers,
                healthy_stores=len(receivers), replicas=cluster.identity.replicas)
        return
    _record(cluster, at_ns, "replica-rebuild", store.id, outage.cause, regions=peers,
            to=[r.id for r in receivers], seconds=peers * timing.replace_seconds_per_region / len(receivers))
    gap = timing.replace_seconds_per_region / len(receivers)
    for index in range(peers):
        start = at_ns + seconds_to_ns(index * gap)
        receiver = receivers[index % len(receivers)]
        cluster.cascade.schedule(start, outage.number, "replace-start",
                                 partial(_move_peer, cluster, store, outage, receiver))


_MOVING = ("pending-peer", "learner-peer", "extra-peer")


def _move_peer(cluster: Cluster, store: Store, outage: Outage, receiver: Store, at_ns: int) -> None:
    """One region's move: a learner on the receiver (one peer too many, pending until its snapshot applies),
    then promoted while the down peer is removed."""
    state = cluster.cascade
    if not any(state.counts.get(kind) for kind in _MOVING):
        _record(cluster, at_ns, "pending-peer", receiver.id, outage.cause, failed_store=store.id)
    for kind in _MOVING:
        state.add(kind, 1)
    receiver.shift_counts(1, 0)
    state.schedule(at_ns + seconds_to_ns(cluster.timing.snapshot_seconds), 0, "replace-done",
                   lambda at: _peer_moved(cluster, store, outage, at))


def _peer_moved(cluster: Cluster, store: Store, outage: Outage, at_ns: int) -> None:
    state = cluster.cascade
    for kind in _MOVING:
        state.add(kind, -1)
    if outage.down:
        outage.down -= 1
        state.add("down-peer", -1)
    store.shift_counts(-1, 0)
    outage.replaced += 1
    if not any(state.counts.get(kind) for kind in _MOVING):
        _record(cluster, at_ns, "replica-rebuilt", store.id, outage.cause, replaced=outage.replaced,
                still_down=outage.down)


def store_started(cluster: Cluster, store: Store, now_ns: int) -> None:
    """The store runs again: it heartbeats at once (Up), its peers answer their leaders, and PD brings its
    leaders back."""
    state = cluster.cascade
    outage = state.outages.get(store.id)
    if outage is None or outage.started_ns is not None:
        if state.enabled:
            _record(cluster, now_ns, "store-restarted", store.id, "start-store")
        return
    outage.started_ns = now_ns
    state.cancel(outage.number, _WHILE_DOWN)
    _record(cluster, now_ns, "store-restarted", store.id, outage.cause,
            down_seconds=(now_ns - outage.stopped_ns) / NS_PER_SECOND)
    timing = cluster.timing
    if outage.down:
        state.schedule(now_ns + seconds_to_ns(timing.region_heartbeat_interval), outage.number, "down-cleared",
                       lambda at: _peers_back(cluster, store, outage, at))
    if outage.moved:
        step_ns = seconds_to_ns(timing.leader_rebalance / _REBALANCE_STEPS)
        for step in range(_REBALANCE_STEPS):
            state.schedule(now_ns + (step + 1) * step_ns, outage.number, "rebalance",
                           partial(_rebalance, cluster, store, outage, step))


def _peers_back(cluster: Cluster, store: Store, outage: Outage, at_ns: int) -> None:
    """The leaders' next region heartbeats carry no down peers for it any more."""
    cluster.cascade.add("down-peer", -outage.down)
    _record(cluster, at_ns, "down-peer-cleared", store.id, outage.cause, regions=outage.down)
    outage.down = 0


def _rebalance(cluster: Cluster, store: Store, outage: Outage, step: int, at_ns: int) -> None:
    """One round of balance-leader: a share of the leaders the store lost comes back from each taker."""
    for taker_id, taken in outage.moved.items():
        amount = taken * (step + 1) // _REBALANCE_STEPS - taken * step // _REBALANCE_STEPS
        taker = cluster.stores.get(taker_id)
        if taker is None or not amount:
            continue
        amount = min(amount, taker.leader_count)
        taker.shift_counts(0, -amount)
        store.shift_counts(0, amount)
    if step == _REBALANCE_STEPS - 1:
        _record(cluster, at_ns, "leaders-rebalanced", store.id, outage.cause, leaders=store.leader_count)
        outage.moved = {}


def disk_changed(cluster: Cluster, store: Store, now_ns: int) -> None:
    """A TiKV disk near full stalls RocksDB writes and slows raft appends and applies; freed, they recover."""
    state = cluster.cascade
    if not state.enabled or store.is_tiflash:
        return
    near_full = store.disk_used_percent >= DISK_STALL_PERCENT
    if near_full and store.id not in state.disk_full:
        state.disk_full.add(store.id)
        store.write_stall_micros = DISK_STALL_MICROS
        for key in ("append", "apply"):
            store.set_raft_p99(key, DISK_SLOW_RAFT_SECONDS, now_ns)
        for symptom in ("write-stall", "raft-append-slow", "raft-apply-slow"):
            _record(cluster, now_ns, symptom, store.id, "disk", percent=store.disk_used_percent)
    elif not near_full and store.id in state.disk_full:
        state.disk_full.discard(store.id)
        store.write_stall_micros = 0.0
        for key in ("append", "apply"):
            store.set_raft_p99(key, RAFT_HISTOGRAMS[key].healthy, now_ns)
        _record(cluster, now_ns, "disk-recovered", store.id, "disk", percent=store.disk_used_percent)


def symptoms(cluster: Cluster, now_ns: int) -> list[dict[str, Any]]:
    """The cascade's ground truth so far, oldest first: what appeared (or cleared), on which store, and why."""
    settle(cluster, now_ns)
    return [
        {
            "at": symptom.at_ns / NS_PER_SECOND,
            "after_seconds": (symptom.at_ns - cluster.created_ns) / NS_PER_SECOND,
            "symptom": symptom.symptom,
            "store": symptom.store,
            "cause": symptom.cause,
            **symptom.detail,
        }
        for symptom in cluster.cascade.log
    ]
