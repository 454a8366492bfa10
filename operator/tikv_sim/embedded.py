"""Run a simulator on its own event loop in a background thread, for tests and other Python callers."""

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar

from tikv_sim import tidb_status
from tikv_sim.clock import Clock
from tikv_sim.cluster_model import Cluster
from tikv_sim.faults import Fault
from tikv_sim.simulator import SimConfig, Simulator

T = TypeVar("T")


class SimulatorThread:
    """`with SimulatorThread(SimConfig(stores=3)) as sim:` gives a running simulator and stops it after."""

    def __init__(self, config: SimConfig, clock: Clock | None = None, timeout: float = 10.0) -> None:
        self.simulator = Simulator(config, clock)
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tikv-sim", daemon=True)

    def __enter__(self) -> "SimulatorThread":
        self._thread.start()
        try:
            self.run(self.simulator.start())
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.run(self.simulator.stop())
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self.timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the simulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(self.timeout)

    def call(self, function: Callable[[], T]) -> T:
        """Run a plain function on the simulator's loop, so reads of the model never race its writes."""

        async def wrapper() -> T:
            return function()

        return self.run(wrapper())

    def fault(self, fault: Mapping[str, Any] | Fault) -> Cluster:
        parsed = fault if isinstance(fault, Fault) else Fault.from_mapping(fault)
        return self.run(self.simulator.apply(parsed))

    def cascade_log(self, cluster: str | None = None) -> dict[str, Any]:
        """The symptoms the cluster's cascades produced so far (GET /api/v1/clusters/<name>/cascade)."""
        return self.call(lambda: self.simulator.cascade_log(cluster))

    def settle(self, timeout: float | None = None) -> None:
        """Wait until every timeline step that is due by the clock has been applied."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.call(self.simulator.caught_up):
            if time.monotonic() > deadline:
                raise TimeoutError("timeline steps are due but did not run")
            time.sleep(0.01)

    @property
    def pd_url(self) -> str:
        return self.simulator.pd_url()

    @property
    def control_url(self) -> str | None:
        return self.simulator.control_url

    def metrics_url(self, store_id: int, cluster: str | None = None) -> str:
        return f"{self.simulator.store_listener(store_id, cluster).url}/metrics"

    def summary(self) -> dict[str, Any]:
        return self.call(self.simulator.summary)

    def tidb_tikv_status(
        self,
        cluster: str | None = None,
        *,
        cluster_domain: str = "",
        pod_name_from: tidb_status.PodNameFrom = "address",
        previous: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The `status.tikv` tidb-operator would write for a cluster now (see tikv_sim.tidb_status)."""

        def build() -> dict[str, Any]:
            model = self.simulator.clusters[self.simulator.cluster_key(cluster)]
            return tidb_status.tikv_status(model, self.simulator.clock.now_ns(), cluster_domain=cluster_domain,
                                           pod_name_from=pod_name_from, previous=previous)  # fmt: skip

        return self.call(build)

    def tidb_stores(
        self, cluster: str | None = None, *, pod_name_from: tidb_status.PodNameFrom = "address"
    ) -> dict[str, dict[str, Any]]:
        """`status.tikv.stores`: {"<id>": {id, podName, ip, leaderCount, state, lastTransitionTime}}."""
        return dict(self.tidb_tikv_status(cluster, pod_name_from=pod_name_from).get("stores", {}))
