"""One TiKV store as PD and Prometheus see it: meta state, heartbeats, disk, regions, latency."""

from dataclasses import dataclass, field
from enum import Enum

from tikv_sim.clock import NS_PER_SECOND, seconds_to_ns
from tikv_sim.latency import LatencyHistogram

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Timing:
    """PD's clocks. Defaults are PD's; tests shrink them."""

    heartbeat_interval: float = 10.0  # TiKV pd-heartbeat-tick-interval for stores
    disconnect_after: float = 20.0  # PD storeDisconnectDuration
    unhealthy_after: float = 600.0  # PD storeUnhealthDuration (pd_cluster_status store_unhealth_count)
    down_after: float = 1800.0  # PD schedule.max-store-down-time


class MetaState(Enum):
    """metapb.StoreState; the value is what PD puts in `state` and accepts in `?state=`."""

    UP = 0
    OFFLINE = 1
    TOMBSTONE = 2

    @property
    def title(self) -> str:
        return self.name.title()

    @property
    def node_state(self) -> int:
        """metapb.NodeState that PD derives from it: Serving, Removing, Removed."""
        return {MetaState.UP: 1, MetaState.OFFLINE: 2, MetaState.TOMBSTONE: 3}[self]

    @classmethod
    def parse(cls, text: str) -> "MetaState":
        for state in cls:
            if state.title.lower() == text.strip().lower():
                return state
        raise ValueError(f"unknown store state {text!r}: use Up, Offline or Tombstone")


@dataclass(frozen=True)
class Heartbeat:
    """What PD keeps from the last store heartbeat: PD only knows a store's stats through these."""

    at_ns: int
    capacity: int
    available: int
    used_size: int
    region_count: int
    leader_count: int
    region_size_mb: int
    leader_size_mb: int
    slow_score: int


@dataclass
class StoreSpec:
    id: int
    address: str
    status_address: str
    labels: dict[str, str] = field(default_factory=dict)
    capacity_bytes: int = 100 * GIB
    disk_used_percent: float = 30.0
    region_count: int = 60
    leader_count: int = 20
    p99_seconds: float = 0.01
    version: str = "8.5.0"
    git_hash: str = "5d1a4b1c6b2e4d1f9a8c7e6d5b4a3c2d1e0f9a8b"
    deploy_path: str = "/"


class Store:
    def __init__(self, spec: StoreSpec, timing: Timing, now_ns: int) -> None:
        self.spec = spec
        self.timing = timing
        self.meta_state = MetaState.UP
        self.disk_used_percent = spec.disk_used_percent
        self.region_count = spec.region_count
        self.leader_count = spec.leader_count
        self.slow_score = 1  # TiKV's healthy slow score is 1, not 0
        self.write_stall_micros = 0.0
        self.l0_avg = 2
        self.cpu_cores = 0.4
        self.running = True
        self._stopped_ns: int | None = None
        self._boot(now_ns)

    def _boot(self, now_ns: int) -> None:
        """A (re)started TiKV process: new start time, counters from zero, heartbeat at once."""
        self.process_start_ns = now_ns
        self.histogram = LatencyHistogram(self.spec.p99_seconds, now_ns)
        self._reported = self._snapshot(now_ns)

    # --- identity -----------------------------------------------------------------------------
    @property
    def id(self) -> int:
        return self.spec.id

    @property
    def start_timestamp(self) -> int:
        """metapb.Store.start_timestamp: whole seconds."""
        return self.process_start_ns // NS_PER_SECOND

    # --- heartbeats -----------------------------------------------------------------------------
    def last_heartbeat_ns(self, now_ns: int) -> int:
        """Heartbeats happen every interval from process start, until the process stops."""
        until = now_ns if self.running or self._stopped_ns is None else min(now_ns, self._stopped_ns)
        interval = seconds_to_ns(self.timing.heartbeat_interval)
        beats = max(0, until - self.process_start_ns) // interval
        return self.process_start_ns + beats * interval

    def reported(self, now_ns: int) -> Heartbeat:
        """Stats as of the last heartbeat (what PD shows), refreshed when a heartbeat has passed."""
        last = self.last_heartbeat_ns(now_ns)
        if last > self._reported.at_ns:
            self._reported = self._snapshot(last)
        return self._reported

    def _snapshot(self, at_ns: int) -> Heartbeat:
        return Heartbeat(
            at_ns=at_ns,
            capacity=self.spec.capacity_bytes,
            available=self.available_bytes,
            used_size=self.engine_used_bytes,
            region_count=self.region_count,
            leader_count=self.leader_count,
            region_size_mb=self.region_count,  # fresh regions hold about 1 MiB each
            leader_size_mb=self.leader_count,
            slow_score=self.slow_score,
        )

    def down_seconds(self, now_ns: int) -> float:
        return (now_ns - self.last_heartbeat_ns(now_ns)) / NS_PER_SECOND

    def state_name(self, now_ns: int) -> str:
        """state_name as /stores shows it (tikv/pd pkg/response/store.go BuildStoreInfo)."""
        if self.meta_state is not MetaState.UP:
            return self.meta_state.title
        down = self.down_seconds(now_ns)
        if down > self.timing.down_after:
            return "Down"
        if down > self.timing.disconnect_after:
            return "Disconnected"
        return "Up"

    # --- disk -------------------------------------------------------------------------------------
    @property
    def available_bytes(self) -> int:
        return round(self.spec.capacity_bytes * (1 - self.disk_used_percent / 100))

    @property
    def engine_used_bytes(self) -> int:
        """TiKV's own data (tikv_store_size_bytes{type="used"}, PD used_size): part of the used disk."""
        return min(self.spec.capacity_bytes - self.available_bytes, self.region_count * 5 * MIB)

    # --- changes (each first records a heartbeat that may have passed, so PD lags like the real one)
    def stop(self, now_ns: int) -> None:
        if not self.running:
            return
        self.reported(now_ns)
        self.histogram.advance(now_ns)
        self.running = False
        self._stopped_ns = now_ns

    def start(self, now_ns: int) -> None:
        if self.running:
            return
        self.running = True
        self._stopped_ns = None
        self._boot(now_ns)

    def set_disk_used_percent(self, percent: float, now_ns: int) -> None:
        if not 0 <= percent <= 100:
            raise ValueError("disk percent must be within 0..100")
        self.reported(now_ns)
        self.disk_used_percent = percent

    def set_p99(self, p99_seconds: float, now_ns: int) -> None:
        if p99_seconds <= 0:
            raise ValueError("p99 must be positive")
        self.spec.p99_seconds = p99_seconds
        self.histogram.set_p99(p99_seconds, now_ns)

    def set_slow_score(self, score: int, now_ns: int) -> None:
        if not 1 <= score <= 100:
            raise ValueError("TiKV slow scores range over 1..100")
        self.reported(now_ns)
        self.slow_score = score

    def set_meta_state(self, state: MetaState) -> None:
        self.meta_state = state

    def cpu_seconds(self, now_ns: int) -> float:
        return self.cpu_cores * (now_ns - self.process_start_ns) / NS_PER_SECOND
