"""The running simulator: clusters of stores, their listeners, the control API and the file_sd file."""

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from tikv_sim import file_sd, metrics
from tikv_sim.clock import Clock, SystemClock
from tikv_sim.cluster_model import Cluster, ClusterIdentity, InstanceLabel, PdMode, build_cluster
from tikv_sim.control_api import make_control_app
from tikv_sim.faults import Fault, apply_fault
from tikv_sim.listener import Listener
from tikv_sim.pd_api import PdServer
from tikv_sim.store_model import Timing


@dataclass
class SimConfig:
    stores: int = 3
    clusters: int = 1
    name: str = "basic"
    namespace: str = "tidb"
    instance_label: InstanceLabel = InstanceLabel.STATUS_ADDRESS
    pd_port: int = 0  # first PD port when several clusters run; 0 picks free ports
    control_port: int | None = 0  # None: no control API (embedded use drives the model directly)
    p99_ms: float = 10.0
    timing: Timing = field(default_factory=Timing)
    file_sd: Path | None = None
    extra_labels: dict[str, str] = field(default_factory=dict)

    def cluster_name(self, index: int) -> str:
        return self.name if self.clusters == 1 else f"{self.name}-{index + 1}"


@dataclass
class _ClusterRuntime:
    cluster: Cluster
    pd: Listener
    stores: dict[int, Listener]  # store id -> its TiKV status (metrics) listener


class Simulator:
    def __init__(self, config: SimConfig, clock: Clock | None = None) -> None:
        if config.stores < 1 or config.clusters < 1:
            raise ValueError("a simulation needs at least one cluster of one store")
        self.config = config
        self.clock = clock or SystemClock()
        self._runtimes: dict[str, _ClusterRuntime] = {}
        self._control: Listener | None = None

    @property
    def clusters(self) -> dict[str, Cluster]:
        return {name: runtime.cluster for name, runtime in self._runtimes.items()}

    @property
    def control_url(self) -> str | None:
        return self._control.url if self._control else None

    def pd_url(self, cluster: str | None = None) -> str:
        return self._runtime(cluster).pd.url

    def store_listener(self, store_id: int, cluster: str | None = None) -> Listener:
        return self._runtime(cluster).stores[store_id]

    def _runtime(self, cluster: str | None) -> _ClusterRuntime:
        if cluster is None:
            return next(iter(self._runtimes.values()))
        return self._runtimes[cluster]

    # --- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            for index in range(self.config.clusters):
                await self._start_cluster(index)
            if self.config.control_port is not None:
                self._control = Listener(lambda: make_control_app(self), self.config.control_port)
                await self._control.open()
        except BaseException:
            await self.stop()
            raise
        self.write_file_sd()

    async def _start_cluster(self, index: int) -> None:
        config = self.config
        name = config.cluster_name(index)
        holder: dict[str, Cluster] = {}
        store_listeners: dict[int, Listener] = {}
        for store_index in range(config.stores):
            store_id = store_index + 1
            listener = Listener(partial(self._store_app, holder, store_id))
            await listener.open()
            store_listeners[store_id] = listener
        identity = ClusterIdentity(name=name, namespace=config.namespace, instance_label=config.instance_label)
        ports = [store_listeners[i + 1].port for i in range(config.stores)]
        cluster = build_cluster(identity, ports, config.timing, self.clock.now_ns(), config.p99_ms / 1000)
        holder["cluster"] = cluster
        pd_port = config.pd_port + index if config.pd_port else 0
        pd_server = PdServer(cluster, self.clock, lambda: pd_listener.url)
        pd_listener = Listener(pd_server.make_app, pd_port)
        self._runtimes[name] = _ClusterRuntime(cluster=cluster, pd=pd_listener, stores=store_listeners)
        await pd_listener.open()

    def _store_app(self, holder: dict[str, Cluster], store_id: int) -> web.Application:
        async def serve_metrics(_request: web.Request) -> web.Response:
            store = holder["cluster"].store(store_id)
            text = metrics.tikv_metrics(store, self.clock.now_ns())
            return web.Response(body=text.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/metrics", serve_metrics)
        return app

    async def stop(self) -> None:
        if self._control is not None:
            await self._control.close()
        for runtime in self._runtimes.values():
            await runtime.pd.close()
            for listener in runtime.stores.values():
                await listener.close()

    # --- faults ---------------------------------------------------------------------------------
    async def apply(self, fault: Fault) -> Cluster:
        cluster = apply_fault(self.clusters, fault, self.clock.now_ns())
        await self.reconcile(cluster.name)
        return cluster

    async def reconcile(self, cluster_name: str) -> None:
        """Open or close listeners so that they match the model: a stopped store refuses connections."""
        runtime = self._runtimes[cluster_name]
        for store_id, listener in runtime.stores.items():
            if runtime.cluster.store(store_id).running:
                await listener.open()
            else:
                await listener.close()
        if runtime.cluster.pd.mode is PdMode.UNREACHABLE:
            await runtime.pd.close()
        else:
            await runtime.pd.open()

    # --- what the outside world needs to find us --------------------------------------------------
    def target_groups(self) -> list[dict[str, Any]]:
        groups = []
        pod_names = self.config.instance_label is InstanceLabel.POD_NAME
        for runtime in self._runtimes.values():
            identity = runtime.cluster.identity
            deployment: dict[str, str] = {}
            if pod_names:
                deployment = {"tidb_cluster": identity.tidb_cluster}
            for index, (store_id, listener) in enumerate(runtime.stores.items()):
                store = runtime.cluster.store(store_id)
                instance = identity.store_instance(index, store.spec.status_address)
                labels = ({"component": "tikv"} if pod_names else {}) | deployment | self.config.extra_labels
                groups.append(file_sd.target_group(listener.port, instance, labels))
            pd_instance = identity.pd_member_name if pod_names else f"127.0.0.1:{runtime.pd.port}"
            labels = ({"component": "pd"} if pod_names else {}) | deployment | self.config.extra_labels
            groups.append(file_sd.target_group(runtime.pd.port, pd_instance, labels))
        return groups

    def write_file_sd(self) -> None:
        if self.config.file_sd is not None:
            file_sd.write_atomically(self.config.file_sd, self.target_groups())

    def summary(self) -> dict[str, Any]:
        now_ns = self.clock.now_ns()
        clusters = []
        for runtime in self._runtimes.values():
            cluster = runtime.cluster
            stores = []
            for index, (store_id, listener) in enumerate(runtime.stores.items()):
                store = cluster.store(store_id)
                stores.append(
                    {
                        "id": store_id,
                        "address": store.spec.address,
                        "status_address": store.spec.status_address,
                        "instance": cluster.identity.store_instance(index, store.spec.status_address),
                        "metrics_url": f"{listener.url}/metrics",
                        "running": store.running,
                        "state_name": store.state_name(now_ns),
                        "disk_used_percent": store.disk_used_percent,
                        "p99_ms": store.spec.p99_seconds * 1000,
                    }
                )
            clusters.append(
                {
                    "name": cluster.name,
                    "namespace": cluster.identity.namespace,
                    "pd_url": runtime.pd.url,
                    "pd_metrics_url": f"{runtime.pd.url}/metrics",
                    "pd_mode": cluster.pd.mode.value,
                    "region_problems": dict(cluster.region_problems),
                    "stores": stores,
                }
            )
        return {"control_url": self.control_url, "clusters": clusters}
