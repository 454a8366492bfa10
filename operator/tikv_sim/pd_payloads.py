"""The JSON bodies PD's HTTP API returns, built from the model (tikv/pd pkg/response, server/api).

Field names, order, omitempty rules and value formats follow PD, since PD is what the operator reads.
"""

import random
from typing import Any

from tikv_sim import pd_view
from tikv_sim.clock import NS_PER_SECOND
from tikv_sim.cluster_model import REGION_CHECKS, Cluster, region_gauge_type
from tikv_sim.go_format import go_duration, go_float, omit_empty, rfc3339_nano
from tikv_sim.sizes import format_size
from tikv_sim.store_model import MetaState, Store

PD_VERSION = "v8.5.0"
PD_GIT_HASH = "8ab3e5e0c43fc7dc1d8d5dbd0e2e3f1cd4b1b6a4"
NOT_BOOTSTRAPPED = "[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"

# metapb.Store fields are protobuf-generated with omitempty on every field.
_META_OMITEMPTY = (
    "state", "labels", "version", "peer_address", "status_address", "git_hash",
    "start_timestamp", "deploy_path", "last_heartbeat", "node_state", "physically_destroyed",
)  # fmt: skip
_STATUS_OMITEMPTY = (
    "learner_count", "witness_count", "pending_peer_count", "slow_score", "slow_trend",
    "sending_snap_count", "receiving_snap_count", "is_busy", "start_ts", "last_heartbeat_ts",
    "uptime", "pause_leader_transfer_in", "pause_leader_transfer_out",
)  # fmt: skip


def store_info(cluster: Cluster, store: Store, now_ns: int) -> dict[str, Any]:
    """One element of /stores: {"store": MetaStore, "status": StoreStatus}."""
    beat = pd_view.heartbeat(cluster, store, now_ns)
    spec = store.spec
    meta = {
        "id": spec.id,
        "address": spec.address,
        "state": store.meta_state.value,
        "labels": [{"key": k, "value": v} for k, v in spec.labels.items()],
        "version": spec.version,
        "peer_address": spec.address,
        # tidb-operator v1 without enableDynamicConfiguration: TiKV advertises no status address.
        "status_address": spec.status_address if cluster.advertise_status_address else "",
        "git_hash": spec.git_hash,
        "start_timestamp": store.start_timestamp,
        "deploy_path": spec.deploy_path,
        "last_heartbeat": beat.at_ns,
        "node_state": store.meta_state.node_state,
        "physically_destroyed": store.physically_destroyed,
    }
    meta = omit_empty(meta, _META_OMITEMPTY)
    meta["state_name"] = pd_view.state_name(cluster, store, now_ns)
    start_ns = store.start_timestamp * NS_PER_SECOND
    used_ratio = 1 - beat.available / beat.capacity if beat.capacity else 0.0
    status = {
        "capacity": format_size(beat.capacity),
        "available": format_size(beat.available),
        "used_size": format_size(beat.used_size),
        "leader_count": beat.leader_count,
        "leader_weight": go_float(1.0),
        "leader_score": go_float(float(beat.leader_count)),
        "leader_size": beat.leader_size_mb,
        "region_count": beat.region_count,
        "region_weight": go_float(1.0),
        # Not PD's exact formula (it depends on scheduling config); it grows with size and fullness.
        "region_score": go_float(round(beat.region_size_mb * (1 + 10 * used_ratio), 2)),
        "region_size": beat.region_size_mb,
        "slow_score": beat.slow_score,
        "start_ts": rfc3339_nano(start_ns),
        "last_heartbeat_ts": rfc3339_nano(beat.at_ns),
        "uptime": go_duration(beat.at_ns - start_ns) if beat.at_ns > start_ns else None,
    }
    return {"store": meta, "status": omit_empty(status, _STATUS_OMITEMPTY)}


def parse_state_filter(values: list[str]) -> set[MetaState]:
    """`?state=` values (ints, repeatable); PD defaults to Up and Offline, leaving Tombstone out."""
    if not values:
        return {MetaState.UP, MetaState.OFFLINE}
    states = set()
    for value in values:
        try:
            states.add(MetaState(int(value)))
        except ValueError:
            raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    return states


def stores(
    cluster: Cluster, now_ns: int, states: set[MetaState], shuffle: random.Random | None = None
) -> dict[str, Any]:
    """PD walks a Go map, so the order differs on every call (`shuffle`); None keeps id order."""
    infos = [store_info(cluster, s, now_ns) for s in cluster.stores.values() if s.meta_state in states]
    if shuffle is not None:
        shuffle.shuffle(infos)
    return {"count": len(infos), "stores": infos}


def _member(cluster: Cluster, pd_url: str, index: int) -> dict[str, Any]:
    identity = cluster.identity
    host = pd_url.rsplit(":", 1)[0]
    return {
        "name": identity.pd_member_name_of(index),
        "member_id": identity.pd_member_id(index),
        "peer_urls": [f"{host}:{2380 + index}"],
        # One simulated endpoint stands for every member (like the <tc>-pd Service in front of them).
        "client_urls": [pd_url],
        "deploy_path": "/",
        "binary_version": PD_VERSION,
        "git_hash": PD_GIT_HASH,
    }


def health(cluster: Cluster, pd_url: str) -> list[dict[str, Any]]:
    identity = cluster.identity
    return [
        {
            "name": identity.pd_member_name_of(index),
            "member_id": identity.pd_member_id(index),
            "client_urls": [pd_url],
            "health": True,
        }
        for index in range(identity.pd_members)
    ]


def members(cluster: Cluster, pd_url: str) -> dict[str, Any]:
    every = [_member(cluster, pd_url, index) for index in range(cluster.identity.pd_members)]
    current = every[cluster.pd.leader.leader_index]
    return {
        "header": {"cluster_id": cluster.identity.cluster_id},
        "members": every,
        "leader": current,
        "etcd_leader": current,
    }


def leader(cluster: Cluster, pd_url: str) -> dict[str, Any]:
    return _member(cluster, pd_url, cluster.pd.leader.leader_index)


def cluster_status(cluster: Cluster, bootstrapped: bool) -> dict[str, Any]:
    if not bootstrapped:
        return {"raft_bootstrap_time": GO_ZERO_TIME, "is_initialized": False, "replication_status": ""}
    return {
        "raft_bootstrap_time": rfc3339_nano(cluster.created_ns),
        "is_initialized": True,
        "replication_status": "mode:MAJORITY",
    }


def config_replicate(cluster: Cluster) -> dict[str, Any]:
    # Booleans are strings here (`json:",string"` tags); location-labels is a comma-joined list.
    return {
        "max-replicas": cluster.identity.replicas,
        "location-labels": "zone,host",
        "strictly-match-label": "false",
        "enable-placement-rules": "true",
        "enable-placement-rules-cache": "false",
        "isolation-level": "",
    }


def _peer(peer_id: int, store_id: int, learner: bool = False) -> dict[str, Any]:
    peer: dict[str, Any] = {"id": peer_id, "store_id": store_id}
    if learner:
        peer["role"] = 1
    peer["role_name"] = "Learner" if learner else "Voter"
    if learner:
        peer["is_learner"] = True
    return peer


def _region(cluster: Cluster, kind: str, index: int, now_ns: int) -> dict[str, Any]:
    """A synthetic region with the problem `kind`, its peers rotating over the live stores."""
    live = [s for s in cluster.stores.values() if s.meta_state is not MetaState.TOMBSTONE and not s.is_tiflash]
    live = live or list(cluster.stores.values())
    region_id = 1000 + REGION_CHECKS.index(kind) * 100_000 + index
    replicas = cluster.identity.replicas
    peer_count = {"miss-peer": replicas - 1, "extra-peer": replicas + 1}.get(kind, replicas)
    peer_count = max(1, min(peer_count, len(live)))
    chosen = [live[(index + k) % len(live)] for k in range(peer_count)]
    if kind == "offline-peer":
        offline = [s for s in live if s.meta_state is MetaState.OFFLINE]
        if offline:
            chosen[-1] = offline[index % len(offline)]
    if kind == "down-peer" and all(s.running for s in chosen):
        stopped = [s for s in live if not s.running]
        if stopped:  # a down peer is on a store that stopped
            chosen[-1] = stopped[index % len(stopped)]
    peers = [
        _peer(region_id * 10 + k, store.id, learner=(kind == "learner-peer" and k == len(chosen) - 1))
        for k, store in enumerate(chosen)
    ]
    size = {"empty-region": 0, "oversized-region": 200, "undersized-region": 1}.get(kind, 96)
    region: dict[str, Any] = {
        "id": region_id,
        "start_key": f"7480000000000000FF{2 * region_id:010X}",
        "end_key": f"7480000000000000FF{2 * region_id + 1:010X}",
        "epoch": {"conf_ver": 5, "version": 40},
        "peers": peers,
        "leader": peers[0],
    }
    if kind == "down-peer":
        down_store = next((s for s in chosen if not s.running), chosen[-1])
        down_peer = peers[chosen.index(down_store)]
        down_seconds = max(600, round(down_store.down_seconds(now_ns)))
        region["down_peers"] = [{"peer": down_peer, "down_seconds": down_seconds}]
    if kind == "pending-peer":
        region["pending_peers"] = [peers[-1]]
    region.update(
        {
            "cpu_usage": 0,
            "written_bytes": 0,
            "read_bytes": 0,
            "written_keys": 0,
            "read_keys": 0,
            "approximate_size": size,
            "approximate_keys": size * 1000,
        }
    )
    return region


def region_check(cluster: Cluster, kind: str, now_ns: int) -> dict[str, Any]:
    count = cluster.region_counts()[kind]
    return {"count": count, "regions": [_region(cluster, kind, i, now_ns) for i in range(count)]}


def region_stats(cluster: Cluster, now_ns: int) -> dict[str, Any]:
    live = [s for s in cluster.stores.values() if s.meta_state is not MetaState.TOMBSTONE]
    counts = {str(s.id): s.regions_at(now_ns) for s in live}
    total = cluster.region_total()
    size_mb = total  # about 1 MiB per region, as in store_info
    return {
        "count": total,
        "empty_count": cluster.region_counts()["empty-region"],
        "storage_size": size_mb,
        "user_storage_size": size_mb,
        "storage_keys": size_mb * 1000,
        "store_leader_count": {k: leaders for k, (_, leaders) in counts.items()},
        "store_peer_count": {k: regions for k, (regions, _) in counts.items()},
        "store_leader_size": {k: leaders for k, (_, leaders) in counts.items()},
        "store_leader_keys": {k: leaders * 1000 for k, (_, leaders) in counts.items()},
        "store_peer_size": {k: regions for k, (regions, _) in counts.items()},
        "store_peer_keys": {k: regions * 1000 for k, (regions, _) in counts.items()},
    }


def region_gauges(cluster: Cluster) -> dict[str, int]:
    """pd_regions_status values by their (hyphenated) type label."""
    return {region_gauge_type(kind): count for kind, count in cluster.region_counts().items()}
