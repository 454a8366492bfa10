"""What tidb-operator v1 writes into a TidbCluster's `status.tikv` for a simulated cluster.

tidb-operator (release-1.6, pkg/manager/member/tikv_member_manager.go syncTiKVClusterStatus) builds it
from PD's /stores, not from its pods: getTiKVStore takes `ip` = the host part of the store's address and
`podName` = the first DNS label of that host, then keeps in `stores` only the stores whose address
matches `<tc>-tikv-N.<tc>-tikv-peer.<ns>.svc[.<clusterDomain>]:port`. Other non-TiFlash stores go to
`peerStores`, Tombstone ones (PD's `?state=2`) matching the pattern to `tombstoneStores`. Ids are
strings, `state` is PD's state_name, and `lastTransitionTime` only moves when the state changes.

So `podName` is the same guess as "first DNS label of the address": with `pod_name_from="pod"` this
module writes the simulator's real pod instead, as if tidb-operator knew which pod runs which store.
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from tikv_sim import pd_view
from tikv_sim.clock import NS_PER_SECOND
from tikv_sim.cluster_model import Cluster
from tikv_sim.store_model import MetaState, Store

PodNameFrom = Literal["address", "pod"]
StoreMap = dict[str, dict[str, Any]]


def store_pattern(name: str, namespace: str, cluster_domain: str = "") -> re.Pattern[str]:
    """tikvStoreLimitPattern with FormatClusterDomainForRegex: the domain may be there or not."""
    domain = f"(|{re.escape('.' + cluster_domain)})" if cluster_domain else ""
    tc, ns = re.escape(name), re.escape(namespace)
    return re.compile(rf"{tc}-tikv-\d+\.{tc}-tikv-peer\.{ns}\.svc{domain}:\d+")


def k8s_time(ns: int) -> str:
    """metav1.Time in JSON: RFC 3339 in UTC, whole seconds."""
    return datetime.fromtimestamp(ns // NS_PER_SECOND, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(
    cluster: Cluster,
    store: Store,
    now_ns: int,
    pod_name_from: PodNameFrom,
    previous: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    host = store.spec.address.split(":")[0]
    pod = host.split(".")[0]
    if pod_name_from == "pod":
        pod = cluster.pod_name(store)
    state = pd_view.state_name(cluster, store, now_ns)
    old = previous.get(str(store.id), {})
    since = old.get("lastTransitionTime") if old.get("state") == state else None
    return {
        "id": str(store.id),
        "podName": pod,
        "ip": host,
        "leaderCount": pd_view.heartbeat(cluster, store, now_ns).leader_count,
        "state": state,
        "lastTransitionTime": since or k8s_time(now_ns),
    }


def tikv_status(
    cluster: Cluster,
    now_ns: int,
    *,
    cluster_domain: str = "",
    pod_name_from: PodNameFrom = "address",
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`status.tikv` (synced, phase, bootStrapped, stores, peerStores, tombstoneStores) as tidb-operator
    would write it now. `previous`: the last `status.tikv`, whose transition times are kept when a
    store's state has not changed. Empty maps are left out (omitempty), as tidb-operator leaves them."""
    previous = previous or {}
    pattern = store_pattern(cluster.identity.name, cluster.identity.namespace, cluster_domain)
    groups: dict[str, StoreMap] = {"stores": {}, "peerStores": {}, "tombstoneStores": {}}
    for store_id in sorted(cluster.stores):
        store = cluster.stores[store_id]
        ours = pod_name_from == "pod" or pattern.fullmatch(store.spec.address) is not None
        tombstone = store.meta_state is MetaState.TOMBSTONE
        if store.is_tiflash or (tombstone and not ours):
            continue  # TiFlash stores are status.tiflash's; Tombstones of other clusters are skipped
        group = "tombstoneStores" if tombstone else "stores" if ours else "peerStores"
        old = previous.get("tombstoneStores" if tombstone else "stores", {}) or {}
        if not tombstone and str(store_id) not in old:
            old = previous.get("peerStores", {}) or {}
        groups[group][str(store_id)] = _entry(cluster, store, now_ns, pod_name_from, old)
    status: dict[str, Any] = {"synced": True, "phase": "Normal", "bootStrapped": True}
    status |= {key: value for key, value in groups.items() if value}
    return status


def status_stores(
    cluster: Cluster,
    now_ns: int,
    *,
    cluster_domain: str = "",
    pod_name_from: PodNameFrom = "address",
    previous: Mapping[str, Any] | None = None,
) -> StoreMap:
    """Just `status.tikv.stores`: {"<id>": {id, podName, ip, leaderCount, state, lastTransitionTime}}."""
    status = tikv_status(
        cluster, now_ns, cluster_domain=cluster_domain, pod_name_from=pod_name_from, previous=previous
    )
    return dict(status.get("stores", {}))
