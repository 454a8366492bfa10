"""One TiKV store as PD and Prometheus see it: meta state, heartbeats, disk, regions, latency, raft health."""

import dataclasses
from dataclasses import dataclass, field
from enum import Enum

from tikv_sim.clock import NS_PER_SECOND, seconds_to_ns
from tikv_sim.grpc_types import DEFAULT_WEIGHT, FOREGROUND_TYPES, Traffic, check_type, default_traffic
from tikv_sim.latency import LatencyHistogram
from tikv_sim.raft_metrics import RaftHealth, check_p99, healthy_p99s

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Timing:
    """PD's and TiKV's clocks, in seconds. Defaults are theirs; tests shrink them (`scaled`).

    The cascade's clocks (docs/simulator.md "Cascades, as real PD and TiKV behave") come after PD's own;
    those marked "model" have no single upstream setting behind them.
    """

    heartbeat_interval: float = 10.0  # TiKV pd-store-heartbeat-tick-interval
    disconnect_after: float = 20.0  # PD storeDisconnectDuration
    unhealthy_after: float = 600.0  # PD storeUnhealthDuration (pd_cluster_status store_unhealth_count)
    down_after: float = 1800.0  # PD schedule.max-store-down-time
    persist_interval: float = 300.0  # PD storePersistInterval: how stale a new leader's heartbeats can be
    # raft-base-tick-interval 1 s x raft-election-timeout-ticks 10: followers of a dead leader campaign.
    election_timeout: float = 10.0
    peer_down_after: float = 600.0  # TiKV raftstore max-peer-down-duration: a leader reports the peer down
    region_heartbeat_interval: float = 60.0  # TiKV pd-heartbeat-tick-interval: regions' heartbeats to PD
    replace_seconds_per_region: float = 4.0  # PD store-limit add-peer 15 a minute, per receiving store
    snapshot_seconds: float = 10.0  # model: a new peer is pending while its snapshot is sent and applied
    latency_recovery: float = 60.0  # model: other stores' raised latency after a failover (clients retry)
    leader_rebalance: float = 300.0  # model: balance-leader (leader-schedule-limit 4) refills a restarted store

    def scaled(self, factor: float) -> "Timing":
        """Every clock times `factor`: 0.01 plays PD's 30 minutes in 18 seconds."""
        if not factor > 0:
            raise ValueError(f"a time scale must be positive, got {factor}")
        return dataclasses.replace(self, **{f.name: getattr(self, f.name) * factor for f in dataclasses.fields(self)})


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
    engine: str = "tikv"  # or "tiflash": PD lists both, only TiKV exports tikv_* metrics
    slot: int = 0  # the pod (ordinal) the store runs in; a replacement store reuses it
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
        self.physically_destroyed = False
        self.traffic: dict[str, Traffic] = default_traffic(spec.p99_seconds)
        self.latency_factor = 1.0  # a cascade's passing slowdown over the set latencies (traffic stays as set)
        self.raft_p99: dict[str, float] = healthy_p99s()  # settings: a restart keeps them, not the counters
        self._drain: tuple[int, float] | None = None  # (start ns, seconds) of a scale-in
        self._stopped_ns: int | None = None
        self._boot(now_ns)

    def _boot(self, now_ns: int) -> None:
        """A (re)started TiKV process: new start time, counters from zero, heartbeat at once."""
        self.process_start_ns = now_ns
        self.histogram = LatencyHistogram(self._felt_traffic(), self.spec.p99_seconds * self.latency_factor, now_ns)
        self.raft = RaftHealth(self.raft_p99, now_ns)
        self._reported = self._snapshot(now_ns)

    # --- identity -----------------------------------------------------------------------------
    @property
    def id(self) -> int:
        return self.spec.id

    @property
    def is_tiflash(self) -> bool:
        return self.spec.engine == "tiflash"

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

    def first_heartbeat_since(self, since_ns: int, now_ns: int) -> int | None:
        """The current process' first heartbeat at or after `since_ns`, if it has happened by `now_ns`."""
        interval = seconds_to_ns(self.timing.heartbeat_interval)
        beats = max(0, -(-(since_ns - self.process_start_ns) // interval))  # ceiling division
        first = self.process_start_ns + beats * interval
        return first if first <= self.last_heartbeat_ns(now_ns) else None

    def persisted_heartbeat_ns(self, now_ns: int) -> int:
        """The heartbeat PD last wrote to etcd: the first one at or after each persist_interval boundary."""
        last = self.last_heartbeat_ns(now_ns)
        persist = seconds_to_ns(self.timing.persist_interval)
        boundary = self.process_start_ns + (last - self.process_start_ns) // persist * persist
        first = self.first_heartbeat_since(boundary, now_ns)
        return last if first is None else first

    def reported(self, now_ns: int) -> Heartbeat:
        """Stats as of the last heartbeat (what PD shows), refreshed when a heartbeat has passed."""
        last = self.last_heartbeat_ns(now_ns)
        if last > self._reported.at_ns:
            self._reported = self._snapshot(last)
        return self._reported

    def _snapshot(self, at_ns: int) -> Heartbeat:
        regions, leaders = self.regions_at(at_ns)
        return Heartbeat(
            at_ns=at_ns,
            capacity=self.spec.capacity_bytes,
            available=self.available_bytes,
            used_size=self.engine_used_bytes,
            region_count=regions,
            leader_count=leaders,
            region_size_mb=regions,  # fresh regions hold about 1 MiB each
            leader_size_mb=leaders,
            slow_score=self.slow_score,
        )

    # --- regions --------------------------------------------------------------------------------
    def regions_at(self, at_ns: int) -> tuple[int, int]:
        """(region count, leader count); a scale-in moves them away linearly over its drain time."""
        if self._drain is None:
            return self.region_count, self.leader_count
        start_ns, seconds = self._drain
        left = 0.0 if seconds <= 0 else max(0.0, 1 - (at_ns - start_ns) / NS_PER_SECOND / seconds)
        left = min(1.0, left)
        return round(self.region_count * left), round(self.leader_count * left)

    def start_drain(self, seconds: float, now_ns: int) -> None:
        if seconds < 0:
            raise ValueError("a drain cannot take negative time")
        self.reported(now_ns)
        self._drain = (now_ns, seconds)

    def shift_counts(self, regions: int, leaders: int) -> None:
        """Peers or leaders moved to or from this store. PD learns it from the regions' own heartbeats
        (a new leader sends one at once), not from the store's: its view follows now, even for a dead store."""
        self.region_count = max(0, self.region_count + regions)
        self.leader_count = max(0, self.leader_count + leaders)
        self._reported = dataclasses.replace(
            self._reported,
            region_count=max(0, self._reported.region_count + regions),
            region_size_mb=max(0, self._reported.region_size_mb + regions),
            leader_count=max(0, self._reported.leader_count + leaders),
            leader_size_mb=max(0, self._reported.leader_size_mb + leaders),
        )

    @property
    def stopped_ns(self) -> int | None:
        return None if self.running else self._stopped_ns

    def down_seconds(self, now_ns: int) -> float:
        return (now_ns - self.last_heartbeat_ns(now_ns)) / NS_PER_SECOND

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

    def set_p99(self, p99_seconds: float, now_ns: int, msg_type: str | None = None, weight: int | None = None) -> None:
        """The p99 of every foreground type (the store's latency), or of one type, switching its traffic on."""
        if p99_seconds <= 0:
            raise ValueError("p99 must be positive")
        if weight is not None and weight < 0:
            raise ValueError("weight (per-mille of the store's requests) cannot be negative")
        if msg_type is None:
            if weight is not None:
                raise ValueError("weight needs a type")
            self.spec.p99_seconds = p99_seconds
            self.histogram.set_store_p99(p99_seconds * self.latency_factor, now_ns)
            for name in FOREGROUND_TYPES:
                self._set_traffic(name, p99_seconds, None, now_ns)
            return
        self._set_traffic(check_type(msg_type), p99_seconds, weight, now_ns)

    def _set_traffic(self, name: str, p99_seconds: float, weight: int | None, now_ns: int) -> None:
        old = self.traffic.get(name)
        if weight is None:
            weight = old.weight if old is not None and old.weight > 0 else DEFAULT_WEIGHT
        priority = old.priority if old is not None else "medium"
        # A type given its own p99 is slow as a whole (lock waits, range deletes), not just in its tail.
        traffic = Traffic(weight, p99_seconds, priority)
        self.traffic[name] = traffic
        self.histogram.set_traffic(name, dataclasses.replace(traffic, p99_seconds=p99_seconds * self.latency_factor),
                                   now_ns)

    def _felt_traffic(self) -> dict[str, Traffic]:
        factor = self.latency_factor
        return {name: dataclasses.replace(t, p99_seconds=t.p99_seconds * factor) for name, t in self.traffic.items()}

    def set_latency_factor(self, factor: float, now_ns: int) -> None:
        """Every latency of the store times `factor` from now on, the set latencies kept (1 undoes it)."""
        if not factor > 0:
            raise ValueError("a latency factor must be positive")
        self.latency_factor = factor
        self.histogram.set_store_p99(self.spec.p99_seconds * factor, now_ns)
        for name, traffic in self._felt_traffic().items():
            self.histogram.set_traffic(name, traffic, now_ns)

    def set_slow_score(self, score: int, now_ns: int) -> None:
        if not 1 <= score <= 100:
            raise ValueError("TiKV slow scores range over 1..100")
        self.reported(now_ns)
        self.slow_score = score

    def set_leader_count(self, count: int, now_ns: int) -> None:
        """Leaders PD sees from the next heartbeat on; TiKV's region_count gauge shows them at once."""
        if count < 0:
            raise ValueError("a leader count cannot be negative")
        if self.is_tiflash and count:
            raise ValueError(f"store {self.id} is TiFlash: it holds learners only and leads no region")
        self.reported(now_ns)
        self.leader_count = count

    def _tikv_only(self, what: str) -> None:
        if self.is_tiflash:
            raise ValueError(f"store {self.id} is TiFlash: it exports no tikv_* metrics, so no {what}")

    def set_raft_p99(self, key: str, value: float, now_ns: int) -> None:
        """The p99 of a raft histogram ("log-lag" in entries, "append"/"apply" in seconds); a stopped
        store keeps it for its next process."""
        check_p99(key, value)
        self._tikv_only(f"raft {key}")
        self.raft_p99[key] = value
        self.raft.set_p99(key, value, now_ns)

    def count_critical_error(self, kind: str, count: int) -> None:
        """Errors of the running process: a stopped one counts nothing, a restarted one starts from none."""
        self._tikv_only("critical errors")
        if not self.running:
            raise ValueError(f"store {self.id} is not running: a stopped process counts no critical errors")
        self.raft.count_error(kind, count)

    def set_meta_state(self, state: MetaState) -> None:
        self.meta_state = state

    def grpc_p99_ms(self) -> dict[str, float]:
        """p99 (ms) of every type with traffic."""
        return {name: t.p99_seconds * 1000 for name, t in self.traffic.items() if t.weight > 0}

    def cpu_seconds(self, now_ns: int) -> float:
        return self.cpu_cores * (now_ns - self.process_start_ns) / NS_PER_SECOND
