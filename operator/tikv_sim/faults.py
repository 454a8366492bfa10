"""The one fault vocabulary shared by the control API, the CLI and scenario files.

A fault is a mapping such as {"fault": "disk", "store": 2, "percent": 85} (plus an optional
"cluster"); scenario steps are the same mappings with an "at" offset.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tikv_sim.cluster_model import REGION_CHECKS, Cluster, PdMode
from tikv_sim.store_model import MetaState, Store


class FaultError(ValueError):
    """The fault is not well formed (the caller's mistake: HTTP 400)."""


@dataclass(frozen=True)
class _Kind:
    needs_store: bool
    params: dict[str, type]  # required parameters and the type they are converted to
    optional: dict[str, type] = field(default_factory=dict)


_KINDS: dict[str, _Kind] = {
    "stop-store": _Kind(True, {}),
    "start-store": _Kind(True, {}),
    "store-state": _Kind(True, {"state": str}),
    "disk": _Kind(True, {"percent": float}),
    "latency": _Kind(True, {"p99_ms": float}),
    "slow-score": _Kind(True, {"score": int}),
    "write-stall": _Kind(True, {"micros": float}),
    "l0-avg": _Kind(True, {"files": int}),
    "regions": _Kind(False, {}, dict.fromkeys(REGION_CHECKS, int)),
    "pd": _Kind(False, {"mode": str}, {"hang_seconds": float}),
}
FAULT_KINDS: tuple[str, ...] = tuple(_KINDS)


@dataclass(frozen=True)
class Fault:
    kind: str
    params: dict[str, Any]
    store: int | None = None
    cluster: str | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> "Fault":
        if not isinstance(raw, Mapping):
            raise FaultError(f"a fault is a mapping, got {type(raw).__name__}")
        kind_name = raw.get("fault")
        kind = _KINDS.get(str(kind_name))
        if kind is None:
            raise FaultError(f"unknown fault {kind_name!r}: use one of {', '.join(FAULT_KINDS)}")
        known = {"fault", "cluster", "store", *kind.params, *kind.optional}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise FaultError(f"fault {kind_name} does not take {', '.join(unknown)}")
        store = None
        if kind.needs_store:
            if "store" not in raw:
                raise FaultError(f"fault {kind_name} needs a store id")
            store = _convert(raw["store"], int, "store")
        params = {}
        for name, kind_type in kind.params.items():
            if name not in raw:
                raise FaultError(f"fault {kind_name} needs {name}")
            params[name] = _convert(raw[name], kind_type, name)
        for name, kind_type in kind.optional.items():
            if name in raw:
                params[name] = _convert(raw[name], kind_type, name)
        if kind_name == "regions" and not params:
            raise FaultError(f"fault regions needs at least one of {', '.join(REGION_CHECKS)}")
        cluster = raw.get("cluster")
        cluster_name = None if cluster is None else str(cluster)
        return cls(kind=str(kind_name), params=params, store=store, cluster=cluster_name)

    def to_mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fault": self.kind}
        if self.cluster is not None:
            out["cluster"] = self.cluster
        if self.store is not None:
            out["store"] = self.store
        return out | self.params


def _convert(value: Any, kind_type: type, name: str) -> Any:
    if isinstance(value, bool) or (kind_type is not str and isinstance(value, str) and not value.strip()):
        raise FaultError(f"{name} must be a {kind_type.__name__}, got {value!r}")
    try:
        return kind_type(value)
    except (TypeError, ValueError):
        raise FaultError(f"{name} must be a {kind_type.__name__}, got {value!r}") from None


def pick_cluster(clusters: Mapping[str, Cluster], name: str | None) -> Cluster:
    """The named cluster, or the first one when no name is given (the single-cluster case)."""
    if name is None:
        return next(iter(clusters.values()))
    try:
        return clusters[name]
    except KeyError:
        raise LookupError(f"no cluster {name!r}; clusters: {', '.join(clusters)}") from None


def _store_action(store: Store, fault: Fault, now_ns: int) -> None:
    actions: dict[str, Callable[[], None]] = {
        "stop-store": lambda: store.stop(now_ns),
        "start-store": lambda: store.start(now_ns),
        "store-state": lambda: store.set_meta_state(MetaState.parse(fault.params["state"])),
        "disk": lambda: store.set_disk_used_percent(fault.params["percent"], now_ns),
        "latency": lambda: store.set_p99(fault.params["p99_ms"] / 1000, now_ns),
        "slow-score": lambda: store.set_slow_score(fault.params["score"], now_ns),
        "write-stall": lambda: setattr(store, "write_stall_micros", fault.params["micros"]),
        "l0-avg": lambda: setattr(store, "l0_avg", fault.params["files"]),
    }
    actions[fault.kind]()


def apply_fault(clusters: Mapping[str, Cluster], fault: Fault, now_ns: int) -> Cluster:
    """Change the model. Listeners follow it afterwards (see Simulator.reconcile)."""
    cluster = pick_cluster(clusters, fault.cluster)
    try:
        if fault.store is not None:
            _store_action(cluster.store(fault.store), fault, now_ns)
        elif fault.kind == "regions":
            cluster.set_region_problems(fault.params)
        elif fault.kind == "pd":
            cluster.pd.mode = PdMode.parse(fault.params["mode"])
            cluster.pd.hang_seconds = fault.params.get("hang_seconds", cluster.pd.hang_seconds)
    except ValueError as error:
        raise FaultError(str(error)) from None
    return cluster
