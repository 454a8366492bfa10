"""The one fault vocabulary shared by the control API, the CLI and scenario files.

A fault is a mapping such as {"fault": "disk", "store": 2, "percent": 85} (plus an optional
"cluster"); scenario steps are the same mappings with an "at" offset. Some faults are timelines
(restart-store, rolling-restart, scale-in): timeline.expand turns them into simple steps.

Every kind is one row of the _KINDS table: whether it needs a store, its parameters (type, bounds, CLI help),
what it changes in the model, and its help; `tikv-sim fault <kind>` commands are made from the same rows.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tikv_sim import cascade, pd_members
from tikv_sim.cluster_model import REGION_CHECKS, Cluster, PdMode
from tikv_sim.grpc_types import check_type
from tikv_sim.raft_metrics import DEFAULT_CRITICAL_ERROR
from tikv_sim.store_model import MetaState, Store


class FaultError(ValueError):
    """The fault is not well formed (the caller's mistake: HTTP 400)."""


Action = Callable[[Cluster, "Fault", int], None]


@dataclass(frozen=True)
class Param:
    """One parameter of a fault: the type it is converted to, and how `tikv-sim fault` offers it."""

    type: type
    help: str = ""
    required: bool = True
    argument: bool = False  # a positional argument of the CLI command rather than an --option
    lowest: float | None = None  # checked when a fault is read, so a scenario file fails before it plays
    lowest_allowed: bool = True  # whether `lowest` itself is allowed
    choices: tuple[str, ...] = ()  # the CLI's choices (the model checks the value when the fault applies)


@dataclass(frozen=True)
class FaultKind:
    needs_store: bool
    help: str  # the CLI command's help
    fields: dict[str, Param]
    # What the fault changes; None for a timeline, which timeline.expand turns into simple steps.
    action: Action | None
    internal: bool = False  # a step of a timeline, never sent by users

    @property
    def params(self) -> dict[str, type]:
        """Required parameters and the type they are converted to."""
        return {name: param.type for name, param in self.fields.items() if param.required}

    @property
    def optional(self) -> dict[str, type]:
        return {name: param.type for name, param in self.fields.items() if not param.required}


def _optional(kind_type: type, help: str = "", **more: Any) -> Param:
    return Param(kind_type, help, required=False, **more)


def _on_store(change: Callable[[Store, "Fault", int], object]) -> Action:
    """A fault of one store's own state."""

    def act(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
        assert fault.store is not None
        change(cluster.store(fault.store), fault, now_ns)

    return act


def _stop(cluster: Cluster, store: Store, now_ns: int, cause: str) -> None:
    if store.running:
        store.stop(now_ns)
        cascade.store_stopped(cluster, store, now_ns, cause)


def _start(cluster: Cluster, store: Store, now_ns: int) -> None:
    if not store.running:
        store.start(now_ns)
        cascade.store_started(cluster, store, now_ns)


def _stop_store(cause: str) -> Action:
    def act(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
        assert fault.store is not None
        _stop(cluster, cluster.store(fault.store), now_ns, cause)

    return act


def _start_store(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
    assert fault.store is not None
    _start(cluster, cluster.store(fault.store), now_ns)


def _disk(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
    assert fault.store is not None
    store = cluster.store(fault.store)
    store.set_disk_used_percent(fault.params["percent"], now_ns)
    cascade.disk_changed(cluster, store, now_ns)


def _node_stores(cluster: Cluster, node: str) -> list[Store]:
    stores = cluster.stores_on(node)
    if not stores:
        nodes = sorted({slot.node for slot in cluster.slots if not slot.removed})
        raise ValueError(f"no store of cluster {cluster.key} runs on node {node!r}; nodes: {', '.join(nodes)}")
    return stores


def _node_failure(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
    node = fault.params["node"]
    for store in _node_stores(cluster, node):
        _stop(cluster, store, now_ns, f"node-failure {node}")


def _node_recover(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
    for store in _node_stores(cluster, fault.params["node"]):
        if store.meta_state is not MetaState.TOMBSTONE and cluster.slot_of(store.id) is not None:
            _start(cluster, store, now_ns)


def _store_node(cluster: Cluster, fault: "Fault", _now_ns: int) -> None:
    assert fault.store is not None
    slot = cluster.slot_of(fault.store)
    if slot is None or slot.removed:
        raise ValueError(f"store {fault.store} no longer runs in a pod: it has no node")
    node = fault.params["node"].strip()
    if not node:
        raise ValueError("a node needs a name")
    slot.node = node


def _cascade(cluster: Cluster, fault: "Fault", _now_ns: int) -> None:
    cascade.set_enabled(cluster, fault.params["mode"] == "on")


def _drain(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
    assert fault.store is not None
    store = cluster.store(fault.store)
    store.set_meta_state(MetaState.OFFLINE)
    store.start_drain(fault.params["drain_seconds"], now_ns)


def _replace(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
    assert fault.store is not None
    cluster.replace_store(fault.store, now_ns)


def _remove(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
    assert fault.store is not None
    cluster.remove_store(fault.store, now_ns)


def _regions(cluster: Cluster, fault: "Fault", _now_ns: int) -> None:
    """The leader's counts are the cluster's (PD's API answers with them); followers' are stale gauges only."""
    counts = {kind: count for kind, count in fault.params.items() if kind in REGION_CHECKS}
    if fault.params.get("member", "leader") == "followers":
        pd_members.set_follower_regions(cluster, counts)
    else:
        cluster.set_region_problems(counts)


def _pd(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
    pd_members.set_mode(cluster, PdMode.parse(fault.params["mode"]), now_ns)
    cluster.pd.hang_seconds = fault.params.get("hang_seconds", cluster.pd.hang_seconds)


def _pd_leader_change(cluster: Cluster, fault: "Fault", now_ns: int) -> None:
    pd_members.change_leader(cluster, now_ns, fault.param("election_seconds"), fault.param("not_bootstrapped_seconds"),
                             fault.param("reconnect_seconds"))


# The fault vocabulary: every kind, its parameters, what it does, and its `tikv-sim fault` help. The control
# API, scenario files and the CLI (whose commands are made from this table) all read it.
_KINDS: dict[str, FaultKind] = {
    "stop-store": FaultKind(
        True, "Stop a store's process: no more heartbeats, its metrics endpoint refuses connections.", {},
        _stop_store("stop-store")),
    "start-store": FaultKind(
        True, "Start a stopped store again (a restart: new start time, counters from zero).", {}, _start_store),
    "store-state": FaultKind(
        True, "Set a store's PD meta state (what `pd-ctl store delete` / removal does).",
        {"state": Param(str, "Up, Offline or Tombstone.", argument=True)},
        _on_store(lambda store, fault, _: store.set_meta_state(MetaState.parse(fault.params["state"])))),
    "disk": FaultKind(
        True, "Fill a store's disk to PERCENT used (with the cascade on, 90 % or more stalls writes and raft).",
        {"percent": Param(float, "Used share of the disk, 0..100.")}, _disk),
    "latency": FaultKind(
        True, "Set a store's gRPC p99 latency: of every foreground type, or of one --type.",
        {"p99_ms": Param(float, "gRPC p99 latency in milliseconds."),
         "type": _optional(str, "One gRPC type (kv_pessimistic_lock, unsafe_destroy_range, ...)."),
         "weight": _optional(int, "That type's share of the store's requests, per mille (with --type).")},
        _on_store(lambda store, fault, now: store.set_p99(
            fault.params["p99_ms"] / 1000, now, fault.params.get("type"), fault.params.get("weight")))),
    "slow-score": FaultKind(
        True, "Set a store's slow score.", {"score": Param(int, "1 (healthy) .. 100; PD calls a store slow at 80.")},
        _on_store(lambda store, fault, now: store.set_slow_score(fault.params["score"], now))),
    "write-stall": FaultKind(
        True, "Set a store's RocksDB write stall gauge.",
        {"micros": Param(float, "tikv_engine_write_stall (microseconds); 0 is healthy.")},
        _on_store(lambda store, fault, _: setattr(store, "write_stall_micros", fault.params["micros"]))),
    "l0-avg": FaultKind(
        True, "Set a store's average number of L0 files.",
        {"files": Param(int, "tikv_scheduler_l0_avg; the official alert fires above 80.")},
        _on_store(lambda store, fault, _: setattr(store, "l0_avg", fault.params["files"]))),
    "leaders": FaultKind(
        True, "Set a store's leader count: TiKV's region_count gauge at once, PD's /stores after the next heartbeat.",
        {"count": Param(int, "Region leaders on the store.", lowest=0)},
        _on_store(lambda store, fault, now: store.set_leader_count(fault.params["count"], now))),
    "raft-log-lag": FaultKind(
        True, "Set the p99 of a store's raft log lag (the official alert fires above 5000).",
        {"entries": Param(float, "p99 of tikv_raftstore_log_lag (entries; healthy 10).", lowest=0)},
        _on_store(lambda store, fault, now: store.set_raft_p99("log-lag", fault.params["entries"], now))),
    "raft-append": FaultKind(
        True, "Set the p99 of a store's raft log append duration.",
        {"p99_ms": Param(float, "p99 of tikv_raftstore_append_log_duration_seconds, ms (healthy 5).", lowest=0,
                         lowest_allowed=False)},
        _on_store(lambda store, fault, now: store.set_raft_p99("append", fault.params["p99_ms"] / 1000, now))),
    "raft-apply": FaultKind(
        True, "Set the p99 of a store's raft log apply duration.",
        {"p99_ms": Param(float, "p99 of tikv_raftstore_apply_log_duration_seconds, ms (healthy 5).", lowest=0,
                         lowest_allowed=False)},
        _on_store(lambda store, fault, now: store.set_raft_p99("apply", fault.params["p99_ms"] / 1000, now))),
    "critical-error": FaultKind(
        True, "Count critical errors in a running store: tikv_critical_error_total{type} appears (a restart drops it).",
        {"type": _optional(str, f"The `type` label (default {DEFAULT_CRITICAL_ERROR})."),
         "count": _optional(int, "How many errors to add (default 1).", lowest=0)},
        _on_store(lambda store, fault, _: store.count_critical_error(
            fault.params.get("type", DEFAULT_CRITICAL_ERROR), fault.params.get("count", 1)))),
    "regions": FaultKind(
        False, "Set how many regions PD reports with each problem (others stay as they are).",
        {**{check: _optional(int) for check in REGION_CHECKS},
         "member": _optional(str, "leader (default): PD's answers and the leader's gauges; followers: their stale "
                                  "gauges only.", choices=pd_members.MEMBER_SCOPES)},
        _regions),
    "pd": FaultKind(
        False, "Make PD fail: 500, hang, malformed, wrong-shape, unreachable, not-bootstrapped; `ok` heals it.",
        {"mode": Param(str, "How PD answers.", choices=tuple(mode.value for mode in PdMode)),
         "hang_seconds": _optional(float, "How long a hang lasts (default 30).")},
        _pd),
    "pd-leader-change": FaultKind(
        False, "Elect a new PD leader: 503, then 500 not bootstrapped, then stores Disconnected until their next "
               "heartbeat.",
        {"election_seconds": _optional(float, "No leader: 503 (default 3)."),
         "not_bootstrapped_seconds": _optional(float, "New leader not serving yet: 500 (default 1)."),
         "reconnect_seconds": _optional(float, "Until stores' heartbeats reach the new leader (default 0).")},
        _pd_leader_change),
    "restart-store": FaultKind(
        True, "Restart a store: stop now, start after DOWNTIME (new start time, counters from zero).",
        {"downtime": _optional(float, "Seconds before it starts again (default 30).")}, None),
    "rolling-restart": FaultKind(
        False, "Restart every running TiKV store (not TiFlash) one at a time, in id order.",
        {"downtime": _optional(float, "Seconds each store is down (default 30)."),
         "gap": _optional(float, "Seconds between one start and the next stop (default 10).")}, None),
    "scale-in": FaultKind(
        True, "Remove a store: Offline while its regions drain, then Tombstone and its pod deleted.",
        {"drain_seconds": _optional(float, "Seconds to move its regions away (default 30).")}, None),
    "oom-kill": FaultKind(
        True, "OOM-kill a store's process TIMES times: down DOWNTIME each (Disconnected past 20 s), GAP running "
              "between kills; several kills are a crash loop.",
        {"downtime": _optional(float, "Seconds before it runs again (default 30)."),
         "times": _optional(int, "Kills in a row (default 1).", lowest=1),
         "gap": _optional(float, "Seconds it runs between kills (default 10).")}, None),
    "node-failure": FaultKind(
        False, "A node fails: every store whose pod runs on NODE stops.",
        {"node": Param(str, "The node's name (tikv-sim status shows each store's).", argument=True)},
        _node_failure),
    "node-recover": FaultKind(
        False, "A failed node is back: its stopped stores start again.",
        {"node": Param(str, "The node's name.", argument=True)}, _node_recover),
    "store-node": FaultKind(
        True, "Put a store's pod on NODE (pods start one to a node: node-1, node-2, ...; --nodes N shares N).",
        {"node": Param(str, "The node's name.", argument=True)}, _store_node),
    "cascade": FaultKind(
        False, "Switch the cascade on or off: one fault's follow-on symptoms (down peers, leaders moving, ...).",
        {"mode": Param(str, "on or off.", argument=True, choices=("on", "off"))}, _cascade),
    "replace-store": FaultKind(
        True, "Lose a store's disk: it stays Offline (physically destroyed); a new store takes its address and pod.",
        {}, _replace),
    # Steps of a scale-in: Offline with regions moving away, then Tombstone and the pod deleted.
    "drain-store": FaultKind(True, "", {"drain_seconds": Param(float)}, _drain, internal=True),
    "remove-store": FaultKind(True, "", {}, _remove, internal=True),
    # A step of oom-kill: the kernel kills the process (the cascade names the cause).
    "oom-stop": FaultKind(True, "", {}, _stop_store("oom-kill"), internal=True),
}
# The kinds users send (the CLI's commands, in this order); the others are steps of timelines.
USER_KINDS: dict[str, FaultKind] = {name: kind for name, kind in _KINDS.items() if not kind.internal}
FAULT_KINDS: tuple[str, ...] = tuple(USER_KINDS)

# Defaults of optional parameters (PD's and tidb-operator's usual timings).
DEFAULTS: dict[str, float] = {
    "election_seconds": 3.0,
    "not_bootstrapped_seconds": 1.0,
    "reconnect_seconds": 0.0,
    "downtime": 30.0,
    "gap": 10.0,
    "drain_seconds": 30.0,
    "times": 1.0,
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
        if kind_name == "cascade" and params["mode"] not in ("on", "off"):
            raise FaultError(f"fault cascade: mode is on or off, not {params['mode']!r}")
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


def _check_bounds(kind_name: str, params: dict[str, Any]) -> None:
    fields = _KINDS[kind_name].fields
    for name, value in params.items():
        lowest, allowed = fields[name].lowest, fields[name].lowest_allowed
        if lowest is None:
            continue
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


TIMELINES = frozenset(name for name, kind in _KINDS.items() if kind.action is None)


def apply_fault(clusters: Mapping[str, Cluster], fault: Fault, now_ns: int) -> Cluster:
    """Change the model. Listeners follow it afterwards (see Simulator.reconcile).

    Timelines are not applied here: timeline.expand gives the simple steps they are made of.
    """
    action = _KINDS[fault.kind].action
    if action is None:
        raise FaultError(f"fault {fault.kind} is a timeline: expand it first (tikv_sim.timeline)")
    cluster = pick_cluster(clusters, fault.cluster)
    cascade.settle(cluster, now_ns)  # what was due before this fault happened first
    try:
        action(cluster, fault, now_ns)
    except ValueError as error:
        raise FaultError(str(error)) from None
    return cluster
