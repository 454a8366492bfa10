"""The running simulator: clusters of stores, their listeners, the control API and the file_sd file."""

import asyncio
import contextlib
import random
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from tikv_sim import cascade, file_sd, metrics, pd_members, pd_view, targets
from tikv_sim.clock import NS_PER_SECOND, Clock, SystemClock, seconds_to_ns
from tikv_sim.cluster_model import Cluster, ClusterIdentity, InstanceLabel, PdMode, build_cluster
from tikv_sim.control_api import make_control_app
from tikv_sim.faults import Fault, apply_fault, pick_cluster
from tikv_sim.grpc_types import SERIES_PROFILES
from tikv_sim.listener import Listener
from tikv_sim.pd_api import PdServer
from tikv_sim.scenario import Step, play
from tikv_sim.store_model import Timing
from tikv_sim.timeline import expand

# How often a timeline looks at the clock while it waits (a ManualClock only moves when a test moves it).
_TIMELINE_POLL_S = 0.02


@dataclass
class SimConfig:
    stores: int = 3
    clusters: int = 1
    name: str = "basic"
    namespace: str = "tidb"
    instance_label: InstanceLabel = InstanceLabel.STATUS_ADDRESS
    pd_port: int = 0  # first PD port when several clusters run; 0 picks free ports
    # Where PD's API listens (a 127.0.0.0/8 address, or the platform node's host address for pods); store
    # metrics stay on 127.0.0.1.
    pd_host: str = "127.0.0.1"
    control_port: int | None = 0  # None: no control API (embedded use drives the model directly)
    p99_ms: float = 10.0
    timing: Timing = field(default_factory=Timing)
    file_sd: Path | None = None
    extra_labels: dict[str, str] = field(default_factory=dict)
    seed: int | None = None  # the order of /stores; None: a different one on every run
    shuffle_stores: bool = True  # PD walks a Go map: /stores comes in a new order on every call
    status_address: bool = True  # False: PD shows no status_address (tidb-operator v1, no dynamic config)
    tiflash: int = 0  # TiFlash stores per cluster, after the TiKV ones
    grpc_series: str = "full"  # "lean": a dozen gRPC types on two priorities instead of 50 x 4
    namespaces: tuple[str, ...] | None = None  # one cluster `name` per namespace (same pod names in each)
    # PD lists stores at IP addresses (10.0.<cluster>.<ordinal + 10>:20160) while Prometheus keeps the
    # deployment's instance label (pod-name: the pod name). Needs a Kubernetes instance label.
    host_network: bool = False
    # One fault sets off what real PD and TiKV do next (tikv_sim.cascade): off until the operator diagnoses
    # cascades, so a stopped store stays one symptom for the tests that expect one.
    cascade: bool = False
    nodes: int = 0  # pods per cluster share this many nodes, in turn; 0: a node per pod

    def cluster_name(self, index: int) -> str:
        return self.name if self.clusters == 1 else f"{self.name}-{index + 1}"

    def plan(self) -> list[tuple[str, str, str]]:
        """(namespace, name, key) of every cluster; keys are "<ns>/<name>" where a name repeats."""
        spaces = self.namespaces or (self.namespace,)
        pairs = [(ns, self.cluster_name(i)) for ns in spaces for i in range(self.clusters)]
        names = [name for _, name in pairs]
        return [(ns, name, name if names.count(name) == 1 else f"{ns}/{name}") for ns, name in pairs]

    def validate(self) -> None:
        if self.stores < 1 or self.clusters < 1:
            raise ValueError("a simulation needs at least one cluster of one store")
        if self.tiflash < 0:
            raise ValueError("tiflash counts stores: it cannot be negative")
        if self.nodes < 0:
            raise ValueError("nodes counts nodes: it cannot be negative")
        if self.grpc_series not in SERIES_PROFILES:
            raise ValueError(f"grpc_series is one of {', '.join(SERIES_PROFILES)}, not {self.grpc_series!r}")
        if self.namespaces is not None and (
            not self.namespaces or len(set(self.namespaces)) != len(self.namespaces) or not all(self.namespaces)
        ):
            raise ValueError("namespaces must be distinct, non-empty names")
        if self.host_network and not self.instance_label.kubernetes:
            raise ValueError("host_network is a Kubernetes deployment: use instance_label pod-name or pod-label")
        if self.host_network and max(self.stores, self.tiflash) > 100:
            raise ValueError("host_network gives at most 100 pods of each engine per cluster")


@dataclass
class _ClusterRuntime:
    cluster: Cluster
    pd: Listener  # the PD URL: the API (and the leader's /metrics), like the <tc>-pd Service; not scraped
    pd_members: list[Listener]  # member index -> its own /metrics, what Prometheus scrapes
    pd_ips: list[str]
    listeners: dict[int, Listener]  # slot index -> the pod's TiKV status (metrics) listener
    pod_ips: dict[int, str]
    booted: dict[int, tuple[int, int]] = field(default_factory=dict)  # slot -> (store id, process start)

    def pod(self, slot: int) -> targets.Pod:
        return targets.Pod(port=self.listeners[slot].port, ip=self.pod_ips[slot])

    def pd_pod(self, member: int) -> targets.Pod:
        return targets.Pod(port=self.pd_members[member].port, ip=self.pd_ips[member])


async def _move(listener: Listener) -> None:
    """Reopen a listener on another free port (a pod's new IP, as Prometheus sees it)."""
    old = listener.port
    await listener.close()
    for _ in range(5):  # the kernel hands out ports in turn; a repeat is rare, and bounded here
        listener.port = 0
        await listener.open()
        if listener.port != old:
            return
        await listener.close()
    await listener.open()


class Simulator:
    def __init__(self, config: SimConfig, clock: Clock | None = None) -> None:
        config.validate()
        self.config = config
        self.clock = clock or SystemClock()
        self._runtimes: dict[str, _ClusterRuntime] = {}
        self._control: Listener | None = None
        self._timelines: dict[asyncio.Task[None], deque[int]] = {}  # task -> due times of its steps to come
        self.timeline_errors: list[str] = []
        self._pod_ips = 0
        self._written_groups: list[dict[str, Any]] | None = None
        self._reconciling = asyncio.Lock()  # faults and timeline steps must not move a pod twice

    @property
    def clusters(self) -> dict[str, Cluster]:
        return {key: runtime.cluster for key, runtime in self._runtimes.items()}

    @property
    def control_url(self) -> str | None:
        return self._control.url if self._control else None

    def pd_url(self, cluster: str | None = None) -> str:
        return self._runtime(cluster).pd.url

    def store_listener(self, store_id: int, cluster: str | None = None) -> Listener:
        """The listener of the pod the store runs in (KeyError for a store that no pod runs any more)."""
        runtime = self._runtime(cluster)
        slot = runtime.cluster.slot_of(store_id)
        if slot is None:
            raise KeyError(store_id)
        return runtime.listeners[slot.index]

    def _runtime(self, cluster: str | None) -> _ClusterRuntime:
        return self._runtimes[self.cluster_key(cluster)]

    def cluster_key(self, cluster: str | None = None) -> str:
        """The key of the cluster a name, a "<ns>/<name>" key or None (the only one) picks."""
        return pick_cluster(self.clusters, cluster).key

    def _next_pod_ip(self) -> str:
        self._pod_ips += 1
        return f"10.244.{self._pod_ips // 250}.{self._pod_ips % 250 + 2}"

    # --- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            for index, (namespace, name, key) in enumerate(self.config.plan()):
                await self._start_cluster(index, namespace, name, key)
            if self.config.control_port is not None:
                self._control = Listener(lambda: make_control_app(self), self.config.control_port)
                await self._control.open()
        except BaseException:
            await self.stop()
            raise
        self.write_file_sd()

    async def _start_cluster(self, index: int, namespace: str, name: str, key: str) -> None:
        config = self.config
        holder: dict[str, Cluster] = {}
        listeners: dict[int, Listener] = {}
        for slot in range(config.stores + config.tiflash):
            listener = Listener(partial(self._store_app, holder, slot))
            await listener.open()
            listeners[slot] = listener
        identity = ClusterIdentity(name=name, namespace=namespace, instance_label=config.instance_label, key=key,
                                   host_network=config.host_network, index=index)  # fmt: skip
        ports = [listeners[i].port for i in range(config.stores + config.tiflash)]
        cluster = build_cluster(
            identity,
            ports[: config.stores],
            config.timing,
            self.clock.now_ns(),
            config.p99_ms / 1000,
            tiflash_ports=ports[config.stores :],
            nodes=config.nodes,
        )
        cluster.advertise_status_address = config.status_address
        cluster.cascade.enabled = config.cascade
        holder["cluster"] = cluster
        pd_port = config.pd_port + index if config.pd_port else 0
        shuffle = None
        if config.shuffle_stores:
            shuffle = random.Random() if config.seed is None else random.Random(f"{config.seed}/{key}")  # noqa: S311
        pd_server = PdServer(cluster, self.clock, lambda: pd_listener.url, shuffle)
        pd_listener = Listener(pd_server.make_app, pd_port, config.pd_host)
        members = [Listener(partial(self._pd_member_app, cluster, i)) for i in range(identity.pd_members)]
        runtime = _ClusterRuntime(
            cluster=cluster,
            pd=pd_listener,
            pd_members=members,
            pd_ips=[self._next_pod_ip() for _ in members],
            listeners=listeners,
            pod_ips={slot: self._next_pod_ip() for slot in listeners},
        )
        if identity.host_network:  # a host-network pod has its node's IP, the one PD lists
            runtime.pod_ips = {s.index: identity.host_ip(s.ordinal, s.engine) for s in cluster.slots}
        runtime.booted = {s.index: (s.store_id, cluster.store(s.store_id).process_start_ns) for s in cluster.slots}
        self._runtimes[key] = runtime
        await pd_listener.open()
        for member in members:
            await member.open()

    def _store_app(self, holder: dict[str, Cluster], slot: int) -> web.Application:
        async def serve_metrics(_request: web.Request) -> web.Response:
            cluster = holder["cluster"]
            now_ns = self.clock.now_ns()
            cascade.settle(cluster, now_ns)
            store = cluster.store(cluster.slots[slot].store_id)
            text = metrics.store_metrics(store, now_ns, self.config.grpc_series)
            return web.Response(body=text.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/metrics", serve_metrics)
        return app

    def _pd_member_app(self, cluster: Cluster, member: int) -> web.Application:
        async def serve_metrics(_request: web.Request) -> web.Response:
            now_ns = self.clock.now_ns()
            cascade.settle(cluster, now_ns)
            text = pd_members.member_metrics(cluster, member, now_ns)
            return web.Response(body=text.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/metrics", serve_metrics)
        return app

    async def stop(self) -> None:
        for task in list(self._timelines):
            task.cancel()
        for task in list(self._timelines):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._control is not None:
            await self._control.close()
        for runtime in self._runtimes.values():
            await runtime.pd.close()
            for listener in [*runtime.pd_members, *runtime.listeners.values()]:
                await listener.close()

    # --- faults ---------------------------------------------------------------------------------
    async def apply(self, fault: Fault) -> Cluster:
        """Apply a fault; a timeline's first steps happen now, the rest in the background."""
        cluster = pick_cluster(self.clusters, fault.cluster)
        steps = expand(fault, cluster)
        now_ns = self.clock.now_ns()
        for at, step in steps:
            if at <= 0:
                apply_fault(self.clusters, step, now_ns)
        await self.reconcile(cluster.key)
        later = sorted((Step(at_seconds=at, fault=step) for at, step in steps if at > 0), key=lambda s: s.at_seconds)
        if later:
            due = deque(now_ns + seconds_to_ns(step.at_seconds) for step in later)
            task = asyncio.create_task(self._play(later, now_ns, due))
            self._timelines[task] = due
            task.add_done_callback(self._timeline_done)
        return cluster

    async def _play(self, steps: list[Step], origin_ns: int, due: deque[int]) -> None:
        """Play steps on the simulator's clock; each takes effect at its own time, however late it runs."""

        def elapsed() -> float:
            return (self.clock.now_ns() - origin_ns) / NS_PER_SECOND

        async def sleep(seconds: float) -> None:
            if isinstance(self.clock, SystemClock):
                await asyncio.sleep(seconds)
                return
            until = self.clock.now_ns() + seconds_to_ns(seconds)
            # A hand-moved clock signals nothing when it moves: look at it now and then.
            while (left := until - self.clock.now_ns()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(min(left / NS_PER_SECOND, _TIMELINE_POLL_S))

        async def apply(step: Fault) -> None:
            cluster = apply_fault(self.clusters, step, due[0])
            await self.reconcile(cluster.key)
            due.popleft()  # only now: settle() must also see the listeners follow

        await play(steps, apply, sleep, elapsed)

    def _timeline_done(self, task: "asyncio.Task[None]") -> None:
        self._timelines.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            self.timeline_errors.append(str(task.exception()))

    @property
    def timelines_running(self) -> int:
        return len(self._timelines)

    def caught_up(self) -> bool:
        """No timeline step is due and still waiting to run (tests that move a ManualClock wait for this)."""
        now_ns = self.clock.now_ns()
        return not any(due and due[0] <= now_ns for due in self._timelines.values())

    async def reconcile(self, cluster_key: str) -> None:
        """Open or close listeners so that they match the model: a stopped store refuses connections.

        In pod-label mode a new process is a new pod with a new IP: its listener moves to a new port.
        """
        async with self._reconciling:
            await self._reconcile(self._runtimes[cluster_key])

    async def _reconcile(self, runtime: _ClusterRuntime) -> None:
        cluster = runtime.cluster
        # A host-network pod keeps its node's IP across restarts.
        new_pods = cluster.identity.instance_label is InstanceLabel.POD_LABEL and not cluster.identity.host_network
        for slot in cluster.slots:
            listener = runtime.listeners[slot.index]
            store = cluster.store(slot.store_id)
            if not store.running or slot.removed:
                await listener.close()
                continue
            boot = (store.id, store.process_start_ns)
            if runtime.booted.get(slot.index) != boot:
                runtime.booted[slot.index] = boot
                if new_pods:
                    await _move(listener)
                    runtime.pod_ips[slot.index] = self._next_pod_ip()
            await listener.open()
        # An unreachable PD is every member gone, their metrics with them.
        for listener in [runtime.pd, *runtime.pd_members]:
            if cluster.pd.mode is PdMode.UNREACHABLE:
                await listener.close()
            else:
                await listener.open()
        self.write_file_sd()

    def cascade_log(self, cluster: str | None = None) -> dict[str, Any]:
        """What the cluster's cascades did so far: each symptom, when, on which store, from which fault."""
        model = self._runtime(cluster).cluster
        return {"cluster": model.key, "cascade": model.cascade.enabled,
                "symptoms": cascade.symptoms(model, self.clock.now_ns())}

    # --- what the outside world needs to find us --------------------------------------------------
    def target_groups(self) -> list[dict[str, Any]]:
        groups = []
        extra = self.config.extra_labels
        for runtime in self._runtimes.values():
            cluster = runtime.cluster
            for slot in cluster.slots:
                if not slot.removed:
                    groups.append(targets.store_group(cluster, slot, runtime.pod(slot.index), extra))
            for member in range(len(runtime.pd_members)):
                groups.append(targets.pd_group(cluster, member, runtime.pd_pod(member), extra))
        return groups

    def write_file_sd(self) -> None:
        """Rewrite the file when the targets changed (Prometheus re-reads it on every change)."""
        if self.config.file_sd is None:
            return
        groups = self.target_groups()
        if groups != self._written_groups:
            file_sd.write_atomically(self.config.file_sd, groups)
            self._written_groups = groups

    def summary(self) -> dict[str, Any]:
        now_ns = self.clock.now_ns()
        clusters = []
        for key, runtime in self._runtimes.items():
            cluster = runtime.cluster
            cascade.settle(cluster, now_ns)
            stores = []
            for store_id in sorted(cluster.stores):
                store = cluster.store(store_id)
                slot = cluster.slots[store.spec.slot]
                current = slot.store_id == store_id and not slot.removed
                listener = runtime.listeners[slot.index]
                stores.append(
                    {
                        "id": store_id,
                        "engine": store.spec.engine,
                        "pod": cluster.identity.pod_name(slot.ordinal, slot.engine),
                        "node": slot.node,
                        "address": store.spec.address,
                        "status_address": store.spec.status_address,
                        "instance": targets.instance_of(cluster, slot, runtime.pod(slot.index)),
                        "metrics_url": f"{listener.url}/metrics" if current else None,
                        "running": store.running,
                        "state_name": pd_view.state_name(cluster, store, now_ns),
                        "meta_state": store.meta_state.title,
                        "physically_destroyed": store.physically_destroyed,
                        "disk_used_percent": store.disk_used_percent,
                        "p99_ms": store.spec.p99_seconds * 1000,
                        "grpc_p99_ms": store.grpc_p99_ms(),
                    }
                )
            leader = cluster.pd.leader
            clusters.append(
                {
                    "name": cluster.name,
                    "key": key,
                    "namespace": cluster.identity.namespace,
                    "pd_url": runtime.pd.url,
                    "pd_metrics_url": f"{runtime.pd.url}/metrics",
                    "pd_mode": cluster.pd.mode.value,
                    "pd_leader": cluster.identity.pd_member_name_of(leader.leader_index),
                    "pd_leader_changes": leader.changes,
                    "pd_leader_phase": leader.phase(now_ns).value,
                    "pd_members": [
                        {
                            "name": cluster.identity.pd_member_name_of(index),
                            "metrics_url": f"{listener.url}/metrics",
                            "leader": index == leader.leader_index,
                        }
                        for index, listener in enumerate(runtime.pd_members)
                    ],
                    "region_problems": cluster.region_counts(),
                    "cascade": cluster.cascade.enabled,
                    "stores": stores,
                }
            )
        return {"control_url": self.control_url, "timelines_running": self.timelines_running, "clusters": clusters}
