"""Which Prometheus series belong to which PD store. No TiKV metric carries its store id, so the mapping
goes through the store key of each series (checks.core.queries: `pod`, else `instance`) and the deployment's
naming convention, chosen by whichever explains more keys:

- tiup scrapes each TiKV at its status address: key = instance = "10.0.1.5:20180";
- tidb-operator's TidbMonitor relabels instance to the pod name, and kube-prometheus (ServiceMonitor,
  PodMonitor) and tidb-operator v2 set a `pod` label: key = "basic-tikv-0", the first DNS label of the
  store's address "basic-tikv-0.basic-tikv-peer.tidb.svc:20160".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from tikv_operator.checks.core.observation import Series, Store
from tikv_operator.checks.core.queries import CHECK_LABEL, KEY_LABEL, KEY_SOURCES

Convention = Literal["status-address", "pod-name"]
# Labels that tell one cluster's series from another's on a shared Prometheus, best suggestion first.
CLUSTER_LABELS = ("namespace", "kubernetes_namespace", "tidb_cluster", "cluster")
# Labels of a series that say nothing about where it came from.
_NOT_ORIGIN = {KEY_LABEL, CHECK_LABEL, "type", "le", "__name__"}


def series_key(labels: Mapping[str, str]) -> str:
    """The store key of a series: the query's key label, else the strongest source label it has."""
    if labels.get(KEY_LABEL):
        return labels[KEY_LABEL]
    return next((labels[s] for s in reversed(KEY_SOURCES) if labels.get(s)), "")


def pod_name(store: Store) -> str:
    host = store.address.rsplit(":", 1)[0] if store.address else ""
    first = host.split(".", 1)[0]
    # An IP address has no pod name in it.
    return "" if first.isdigit() else first


def namespace_of(store: Store) -> str:
    """The namespace in a Kubernetes service DNS name "<pod>.<service>.<namespace>.svc[.<domain>]"."""
    parts = store.address.rsplit(":", 1)[0].split(".")
    return parts[2] if len(parts) >= 4 and parts[3] == "svc" else ""


_KEYS: dict[Convention, Callable[[Store], str]] = {
    "status-address": lambda store: store.status_address,
    "pod-name": pod_name,
}


def _precedence(store: Store) -> tuple[bool, int]:
    # Two stores on one key: the Up one (a replacement on the address of an Offline store), then the
    # newest; never whichever PD happened to list last, since PD's order changes on every call.
    return (store.up, int(store.id) if store.id.isdigit() else -1)


@dataclass(frozen=True)
class InstanceMap:
    convention: Convention
    store_by_key: Mapping[str, str]
    declared: Mapping[str, str] = field(default_factory=dict)  # store id -> pod, from the deployment

    @cached_property  # read for every store of every metric invariant: built once per check
    def key_by_store(self) -> dict[str, str]:
        return {sid: key for key, sid in self.store_by_key.items()}

    def expected_key(self, store: Store) -> str:
        """The key this store's series would carry: its declared pod, else the chosen convention's."""
        return self.declared.get(store.id) or _KEYS[self.convention](store)


def map_instances(stores: Iterable[Store], keys: Iterable[str], declared: Mapping[str, str] | None = None,
                  ) -> InstanceMap:
    """Map the store keys seen in Prometheus to store ids: a store whose pod the deployment declares
    (spec.storePods) by that pod, exactly; the others with the convention that matches most keys, never
    taking a declared pod's key for another store."""
    declared = {sid: pod for sid, pod in (declared or {}).items() if pod}
    stores = sorted((s for s in stores if s.id not in declared), key=_precedence)  # later entries win below
    taken = set(declared.values())
    seen = set(keys) - taken
    best: InstanceMap | None = None
    for convention, key in _KEYS.items():
        keyed = {key(s): s.id for s in stores if key(s)}
        mapped = {k: keyed[k] for k in sorted(seen) if k in keyed}
        if best is None or len(mapped) > len(best.store_by_key):
            best = InstanceMap(convention, mapped)
    assert best is not None
    if not declared:
        return best
    return InstanceMap(best.convention, {**best.store_by_key, **{pod: sid for sid, pod in declared.items()}},
                       declared)


def index_by_key(series: Iterable[Series]) -> dict[str, list[Series]]:
    index: dict[str, list[Series]] = {}
    for s in series:
        index.setdefault(series_key(s.labels), []).append(s)
    return index


def origin(series: Series) -> dict[str, str]:
    """The labels that say where a series was scraped (for evidence and messages)."""
    return {k: v for k, v in sorted(series.labels.items()) if k not in _NOT_ORIGIN}


def describe_split(store: Store, key: str, series: Sequence[Series]) -> str:
    """Why several series for one store cannot be judged, and which labelMatchers would pick one."""
    origins = [origin(s) for s in series]
    names = sorted({k for o in origins for k in o})
    differing = [k for k in names if len({o.get(k, "") for o in origins}) > 1]
    ordered = [k for k in CLUSTER_LABELS if k in differing] + [k for k in differing if k not in CLUSTER_LABELS]
    text = ", ".join(f"{k} ({', '.join(sorted({o.get(k, '') or '-' for o in origins}))})" for k in ordered[:4])
    message = (f"{len(series)} series in Prometheus for store {store.id} ({key}), from different scrapes or clusters"
               + (f": they differ in {text}" if text else ""))
    ns = namespace_of(store)
    tc = key.rsplit("-tikv-", 1)[0] if "-tikv-" in key else ""
    candidates = [v for v in (ns, f"{ns}-{tc}" if ns and tc else "", tc) if v]
    for label in ordered:
        values = {o.get(label, "") for o in origins}
        match = next((c for c in candidates if c in values), None)
        if match is not None:
            return f'{message}; set spec.prometheus.labelMatchers to pick this cluster\'s, e.g. {{{label}: "{match}"}}'
    if ordered:
        return f"{message}; set spec.prometheus.labelMatchers on {ordered[0]} to pick this cluster's"
    return f"{message}; set spec.prometheus.labelMatchers to pick this cluster's series"
