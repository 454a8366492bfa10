"""Which Prometheus `instance` is which PD store. No TiKV metric carries its store id, so the mapping
goes through the deployment's naming convention, chosen by whichever explains more instances:

- tiup scrapes each TiKV at its status address: instance = "10.0.1.5:20180";
- tidb-operator's TidbMonitor relabels instance to the pod name: "basic-tikv-0", the first DNS label
  of the store's address "basic-tikv-0.basic-tikv-peer.tidb.svc:20160".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from tikv_operator.core.observation import Store

Convention = Literal["status-address", "pod-name"]


def _pod_name(store: Store) -> str:
    host = store.address.rsplit(":", 1)[0] if store.address else ""
    first = host.split(".", 1)[0]
    # An IP address has no pod name in it.
    return "" if first.isdigit() else first


_KEYS: dict[Convention, Callable[[Store], str]] = {
    "status-address": lambda store: store.status_address,
    "pod-name": _pod_name,
}


@dataclass(frozen=True)
class InstanceMap:
    convention: Convention
    store_by_instance: Mapping[str, str]

    def instance_of(self, store_id: str) -> str | None:
        for instance, sid in self.store_by_instance.items():
            if sid == store_id:
                return instance
        return None


def map_instances(stores: Iterable[Store], instances: Iterable[str]) -> InstanceMap:
    """Map the instances seen in Prometheus to store ids with the convention that matches most of them."""
    stores = tuple(stores)
    seen = set(instances)
    best: InstanceMap | None = None
    for convention, key in _KEYS.items():
        keyed = {key(s): s.id for s in stores if key(s)}
        mapped = {instance: keyed[instance] for instance in seen if instance in keyed}
        if best is None or len(mapped) > len(best.store_by_instance):
            best = InstanceMap(convention, mapped)
    assert best is not None
    return best
