"""Faults that take time, as the simple faults they are made of: (offset in seconds, fault) steps.

restart-store   stop now, start after `downtime`
rolling-restart every running TiKV store in id order (tidb-operator restarts pods one by one; TiFlash
                is a StatefulSet of its own): stop, start after `downtime`, the next one `gap` later
scale-in        Offline now with its regions moving away for `drain_seconds`, then Tombstone and the
                pod deleted
oom-kill        killed now, running again after `downtime`; `times` kills `gap` apart (a crash loop)
"""

from tikv_sim.cluster_model import Cluster
from tikv_sim.faults import Fault
from tikv_sim.store_model import MetaState

Steps = list[tuple[float, Fault]]


def _step(kind: str, cluster: Cluster, store: int, **params: float) -> Fault:
    return Fault(kind=kind, params=dict(params), store=store, cluster=cluster.key)


def _restartable(cluster: Cluster) -> list[int]:
    return sorted(
        store.id
        for store in cluster.stores.values()
        if not store.is_tiflash
        and store.running
        and store.meta_state is not MetaState.TOMBSTONE
        and cluster.slot_of(store.id) is not None
    )


def expand(fault: Fault, cluster: Cluster) -> Steps:
    """The steps of a fault in time order; a simple fault is one step at offset 0.

    Pure: it reads the cluster (which stores exist, which run) but changes nothing.
    """
    if fault.kind == "restart-store":
        assert fault.store is not None
        cluster.store(fault.store)  # an unknown store fails now, not in the background
        downtime = fault.param("downtime")
        return [
            (0.0, _step("stop-store", cluster, fault.store)),
            (downtime, _step("start-store", cluster, fault.store)),
        ]
    if fault.kind == "rolling-restart":
        downtime, gap = fault.param("downtime"), fault.param("gap")
        steps: Steps = []
        at = 0.0
        for store_id in _restartable(cluster):
            steps.append((at, _step("stop-store", cluster, store_id)))
            steps.append((at + downtime, _step("start-store", cluster, store_id)))
            at += downtime + gap
        return steps
    if fault.kind == "oom-kill":
        assert fault.store is not None
        cluster.store(fault.store)
        downtime, gap = fault.param("downtime"), fault.param("gap")
        kills: Steps = []
        for kill in range(int(fault.param("times"))):
            at = kill * (downtime + gap)
            kills.append((at, _step("oom-stop", cluster, fault.store)))
            kills.append((at + downtime, _step("start-store", cluster, fault.store)))
        return kills
    if fault.kind == "scale-in":
        assert fault.store is not None
        cluster.store(fault.store)
        drain = fault.param("drain_seconds")
        return [
            (0.0, _step("drain-store", cluster, fault.store, drain_seconds=drain)),
            (drain, _step("remove-store", cluster, fault.store)),
        ]
    return [(0.0, fault)]
