"""The one fault vocabulary shared by the control API, the CLI and scenario files.

A fault is a mapping such as {"fault": "disk", "store": 2, "percent": 85} (plus an optional
"cluster"); scenario steps are the same mappings with an "at" offset. Some faults are timelines
(restart-store, rolling-restart, scale-in): timeline.expand turns them into simple steps.

store faults    stop-store, start-store, store-state {state}, disk {percent}, latency {p99_ms [type weight]},
                slow-score {score}, write-stall {micros}, l0-avg {files}, leaders {count},
                raft-log-lag {entries}, raft-append {p99_ms}, raft-apply {p99_ms},
                critical-error {[type count]}, restart-store {[downtime]}, scale-in {[drain_seconds]},
                replace-store
cluster faults  regions {<check>: count ... [member: leader|followers]}, pd {mode [hang_seconds]},
                pd-leader-change {[election_seconds not_bootstrapped_seconds reconnect_seconds]},
                rolling-restart {[downtime gap]}
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tikv_sim import pd_members
from tikv_sim.cluster_model import REGION_CHECKS, Cluster, PdMode
from tikv_sim.grpc_types import check_type
from tikv_sim.raft_metrics import DEFAULT_CRITICAL_ERROR
from tikv_sim.store_model import MetaState, Store


class FaultError(ValueError):
    """The fault is not well formed (the caller's mistake: HTTP 400)."""


@dataclass(frozen=True)
class _Kind:
    needs_store: bool
    params: dict[str, type]  # required parameters and the type they are converted to
    optional: dict[str, type] = field(default_factory=dict)
    internal: bool = False  # a step of a timeline, never sent by users


_KINDS: dict[str, _Kind] = {
    "stop-store": _Kind(True, {}),
    "start-store": _Kind(True, {}),
    "store-state": _Kind(True, {"state": str}),
    "disk": _Kind(True, {"percent": float}),
    "latency": _Kind(True, {"p99_ms": float}, {"type": str, "weight": int}),
    "slow-score": _Kind(True, {"score": int}),
    "write-stall": _Kind(True, {"micros": float}),
    "l0-avg": _Kind(True, {"files": int}),
    "leaders": _Kind(True, {"count": int}),
    "raft-log-lag": _Kind(True, {"entries": float}),
    "raft-append": _Kind(True, {"p99_ms": float}),
    "raft-apply": _Kind(True, {"p99_ms": float}),
    "critical-error": _Kind(True, {}, {"type": str, "count": int}),
    "regions": _Kind(False, {}, {**dict.fromkeys(REGION_CHECKS, int), "member": str}),
    "pd": _Kind(False, {"mode": str}, {"hang_seconds": float}),
    "pd-leader-change": _Kind(
        False, {}, {"election_seconds": float, "not_bootstrapped_seconds": float, "reconnect_seconds": float}
    ),
    "restart-store": _Kind(True, {}, {"downtime": float}),
    "rolling-restart": _Kind(False, {}, {"downtime": float, "gap": float}),
    "scale-in": _Kind(True, {}, {"drain_seconds": float}),
    "replace-store": _Kind(True, {}),
    # Steps of a scale-in: Offline with regions moving away, then Tombstone and the pod deleted.
    "drain-store": _Kind(True, {"drain_seconds": float}, internal=True),
    "remove-store": _Kind(True, {}, internal=True),
}
FAULT_KINDS: tuple[str, ...] = tuple(name for name, kind in _KINDS.items() if not kind.internal)

# Defaults of optional parameters (PD's and tidb-operator's usual timings).
DEFAULTS: dict[str, float] = {
    "election_seconds": 3.0,
    "not_bootstrapped_seconds": 1.0,
    "reconnect_seconds": 0.0,
    "downtime": 30.0,
    "gap": 10.0,
    "drain_seconds": 30.0,
}


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
        if kind is None or kind.internal:
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
        if kind_name == "latency":
            _check_latency(params)
        if kind_name == "regions":
            _check_regions(params)
        _check_bounds(str(kind_name), params)
        for name, value in params.items():
            if kind.optional.get(name) is float and name in DEFAULTS and value < 0:
                raise FaultError(f"{name} cannot be negative")
        cluster = raw.get("cluster")
        cluster_name = None if cluster is None else str(cluster)
        return cls(kind=str(kind_name), params=params, store=store, cluster=cluster_name)

    def param(self, name: str) -> float:
        """A timing parameter, or its default."""
        return float(self.params.get(name, DEFAULTS[name]))

    def to_mapping(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fault": self.kind}
        if self.cluster is not None:
            out["cluster"] = self.cluster
        if self.store is not None:
            out["store"] = self.store
        return out | self.params


def _check_latency(params: dict[str, Any]) -> None:
    if "weight" in params and "type" not in params:
        raise FaultError("weight needs a type: it is that type's share of the store's requests (per mille)")
    if "type" in params:
        try:
            check_type(params["type"])
        except ValueError as error:
            raise FaultError(str(error)) from None


def _check_regions(params: dict[str, Any]) -> None:
    if not set(params) & set(REGION_CHECKS):
        raise FaultError(f"fault regions needs at least one of {', '.join(REGION_CHECKS)}")
    member = params.get("member", "leader")
    if member not in pd_members.MEMBER_SCOPES:
        raise FaultError(f"member is leader (the leader's gauges) or followers (their stale gauges), not {member!r}")


# Bounds checked when a fault is read, so that a scenario file fails before it plays: (fault, param) ->
# (lowest value, whether the lowest value itself is allowed).
_LOWER_BOUNDS: dict[tuple[str, str], tuple[float, bool]] = {
    ("leaders", "count"): (0, True),
    ("raft-log-lag", "entries"): (0, True),
    ("raft-append", "p99_ms"): (0, False),
    ("raft-apply", "p99_ms"): (0, False),
    ("critical-error", "count"): (0, True),
}


def _check_bounds(kind_name: str, params: dict[str, Any]) -> None:
    for name, value in params.items():
        bound = _LOWER_BOUNDS.get((kind_name, name))
        if bound is None:
            continue
        lowest, allowed = bound
        if not math.isfinite(value) or value < lowest or (value == lowest and not allowed):
            need = f"at least {lowest:g}" if allowed else f"above {lowest:g}"
            raise FaultError(f"fault {kind_name}: {name} must be a finite number {need}, got {value!r}")
    if kind_name == "critical-error" and not str(params.get("type", DEFAULT_CRITICAL_ERROR)).strip():
        raise FaultError("fault critical-error: type is a label value and cannot be empty")


def _convert(value: Any, kind_type: type, name: str) -> Any:
    if isinstance(value, bool) or (kind_type is not str and isinstance(value, str) and not value.strip()):
        raise FaultError(f"{name} must be a {kind_type.__name__}, got {value!r}")
    if kind_type is int and isinstance(value, float) and not value.is_integer():
        raise FaultError(f"{name} must be a {kind_type.__name__}, got {value!r}")  # int() would truncate it
    try:
        return kind_type(value)
    except (TypeError, ValueError):
        raise FaultError(f"{name} must be a {kind_type.__name__}, got {value!r}") from None


def pick_cluster(clusters: Mapping[str, Cluster], name: str | None) -> Cluster:
    """The cluster named by its key, "<namespace>/<name>" or a name no other cluster has; the first
    one when no name is given (the single-cluster case)."""
    if name is None:
        return next(iter(clusters.values()))
    if name in clusters:
        return clusters[name]
    matches = [c for c in clusters.values() if name in (f"{c.identity.namespace}/{c.name}", c.name)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise LookupError(f"cluster {name!r} is ambiguous: say which one ({', '.join(c.key for c in matches)})")
    raise LookupError(f"no cluster {name!r}; clusters: {', '.join(clusters)}")


def _store_action(store: Store, fault: Fault, now_ns: int) -> None:
    actions: dict[str, Callable[[], None]] = {
        "stop-store": lambda: store.stop(now_ns),
        "start-store": lambda: store.start(now_ns),
        "store-state": lambda: store.set_meta_state(MetaState.parse(fault.params["state"])),
        "disk": lambda: store.set_disk_used_percent(fault.params["percent"], now_ns),
        "latency": lambda: store.set_p99(
            fault.params["p99_ms"] / 1000, now_ns, fault.params.get("type"), fault.params.get("weight")
        ),
        "slow-score": lambda: store.set_slow_score(fault.params["score"], now_ns),
        "write-stall": lambda: setattr(store, "write_stall_micros", fault.params["micros"]),
        "l0-avg": lambda: setattr(store, "l0_avg", fault.params["files"]),
        "leaders": lambda: store.set_leader_count(fault.params["count"], now_ns),
        "raft-log-lag": lambda: store.set_raft_p99("log-lag", fault.params["entries"], now_ns),
        "raft-append": lambda: store.set_raft_p99("append", fault.params["p99_ms"] / 1000, now_ns),
        "raft-apply": lambda: store.set_raft_p99("apply", fault.params["p99_ms"] / 1000, now_ns),
        "critical-error": lambda: store.count_critical_error(
            fault.params.get("type", DEFAULT_CRITICAL_ERROR), fault.params.get("count", 1)
        ),
    }
    actions[fault.kind]()


def _cluster_store_action(cluster: Cluster, fault: Fault, now_ns: int) -> bool:
    """Store faults that change the cluster around the store; False when the fault is not one of them."""
    assert fault.store is not None
    if fault.kind == "replace-store":
        cluster.replace_store(fault.store, now_ns)
    elif fault.kind == "drain-store":
        store = cluster.store(fault.store)
        store.set_meta_state(MetaState.OFFLINE)
        store.start_drain(fault.params["drain_seconds"], now_ns)
    elif fault.kind == "remove-store":
        cluster.remove_store(fault.store, now_ns)
    else:
        return False
    return True


def _regions(cluster: Cluster, fault: Fault) -> None:
    """The leader's counts are the cluster's (PD's API answers with them); followers' are stale gauges only."""
    counts = {kind: count for kind, count in fault.params.items() if kind in REGION_CHECKS}
    if fault.params.get("member", "leader") == "followers":
        pd_members.set_follower_regions(cluster, counts)
    else:
        cluster.set_region_problems(counts)


TIMELINES = frozenset({"restart-store", "rolling-restart", "scale-in"})


def apply_fault(clusters: Mapping[str, Cluster], fault: Fault, now_ns: int) -> Cluster:
    """Change the model. Listeners follow it afterwards (see Simulator.reconcile).

    Timelines are not applied here: timeline.expand gives the simple steps they are made of.
    """
    if fault.kind in TIMELINES:
        raise FaultError(f"fault {fault.kind} is a timeline: expand it first (tikv_sim.timeline)")
    cluster = pick_cluster(clusters, fault.cluster)
    try:
        if fault.store is not None:
            if not _cluster_store_action(cluster, fault, now_ns):
                _store_action(cluster.store(fault.store), fault, now_ns)
        elif fault.kind == "regions":
            _regions(cluster, fault)
        elif fault.kind == "pd":
            pd_members.set_mode(cluster, PdMode.parse(fault.params["mode"]), now_ns)
            cluster.pd.hang_seconds = fault.params.get("hang_seconds", cluster.pd.hang_seconds)
        elif fault.kind == "pd-leader-change":
            pd_members.change_leader(
                cluster,
                now_ns,
                fault.param("election_seconds"),
                fault.param("not_bootstrapped_seconds"),
                fault.param("reconnect_seconds"),
            )
    except ValueError as error:
        raise FaultError(str(error)) from None
    return cluster
