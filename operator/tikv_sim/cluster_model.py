"""One simulated TiKV cluster: its PD (identity, fault mode, region health) and its stores."""

import hashlib
from dataclasses import dataclass, field
from enum import Enum

from tikv_sim.store_model import MetaState, Store, StoreSpec, Timing


class PdMode(Enum):
    """How the PD API answers; `ok` is a healthy PD."""

    OK = "ok"
    ERROR_500 = "500"
    HANG = "hang"
    MALFORMED = "malformed"
    WRONG_SHAPE = "wrong-shape"
    UNREACHABLE = "unreachable"
    NOT_BOOTSTRAPPED = "not-bootstrapped"

    @classmethod
    def parse(cls, text: str) -> "PdMode":
        for mode in cls:
            if mode.value == str(text).strip().lower():
                return mode
        raise ValueError(f"unknown PD mode {text!r}: use one of {', '.join(m.value for m in cls)}")


class InstanceLabel(Enum):
    """Which value Prometheus' `instance` label takes, i.e. how the cluster is deployed."""

    STATUS_ADDRESS = "status-address"  # tiup: instance = the store's status_address
    POD_NAME = "pod-name"  # tidb-operator TidbMonitor: instance = pod name


# The region problems PD counts (pd_regions_status types, /regions/check/<kind>).
REGION_CHECKS: tuple[str, ...] = (
    "miss-peer",
    "extra-peer",
    "down-peer",
    "pending-peer",
    "offline-peer",
    "learner-peer",
    "empty-region",
    "oversized-region",
    "undersized-region",
)


def region_gauge_type(kind: str) -> str:
    """pd_regions_status type label: "miss-peer" -> "miss-peer-region-count", "empty-region" -> ..."""
    return f"{kind}-count" if kind.endswith("-region") else f"{kind}-region-count"


def _uint64_id(seed: str) -> int:
    """A stable PD-style id. Real member and cluster ids are random uint64s, nearly always above 2**53."""
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    return digest | (1 << 62)


@dataclass
class PdState:
    mode: PdMode = PdMode.OK
    hang_seconds: float = 30.0


@dataclass
class ClusterIdentity:
    name: str
    namespace: str
    instance_label: InstanceLabel
    replicas: int = 3

    @property
    def cluster_id(self) -> int:
        return _uint64_id(f"{self.namespace}/{self.name}/cluster")

    @property
    def member_id(self) -> int:
        return _uint64_id(f"{self.namespace}/{self.name}/pd-0")

    @property
    def pd_member_name(self) -> str:
        return f"{self.name}-pd-0" if self.instance_label is InstanceLabel.POD_NAME else "pd-0"

    @property
    def tidb_cluster(self) -> str:
        return f"{self.namespace}-{self.name}"

    def pod_name(self, store_index: int) -> str:
        return f"{self.name}-tikv-{store_index}"

    def store_addresses(self, store_index: int, metrics_port: int) -> tuple[str, str]:
        """(address, status_address) as PD reports them for this deployment style."""
        if self.instance_label is InstanceLabel.POD_NAME:
            host = f"{self.pod_name(store_index)}.{self.name}-tikv-peer.{self.namespace}.svc"
            return f"{host}:20160", f"{host}:20180"
        # tiup: Prometheus scrapes the status address itself, so it must be the real port.
        return f"127.0.0.1:{20160 + store_index}", f"127.0.0.1:{metrics_port}"

    def store_instance(self, store_index: int, status_address: str) -> str:
        if self.instance_label is InstanceLabel.POD_NAME:
            return self.pod_name(store_index)
        return status_address


@dataclass
class Cluster:
    identity: ClusterIdentity
    stores: dict[int, Store]
    timing: Timing
    created_ns: int
    pd: PdState = field(default_factory=PdState)
    region_problems: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REGION_CHECKS, 0))

    @property
    def name(self) -> str:
        return self.identity.name

    def store(self, store_id: int) -> Store:
        try:
            return self.stores[store_id]
        except KeyError:
            raise LookupError(f"cluster {self.name} has no store {store_id}") from None

    def region_total(self) -> int:
        """Regions in the cluster: every region has `replicas` peers spread over the stores."""
        peers = sum(s.region_count for s in self.stores.values() if s.meta_state is not MetaState.TOMBSTONE)
        return max(1, peers // max(1, min(self.identity.replicas, len(self.stores))))

    def set_region_problems(self, counts: dict[str, int]) -> None:
        for kind, count in counts.items():
            if kind not in REGION_CHECKS:
                raise ValueError(f"unknown region check {kind!r}: use one of {', '.join(REGION_CHECKS)}")
            if int(count) < 0:
                raise ValueError("region counts cannot be negative")
        for kind, count in counts.items():
            self.region_problems[kind] = int(count)


def build_cluster(
    identity: ClusterIdentity,
    metrics_ports: list[int],
    timing: Timing,
    now_ns: int,
    p99_seconds: float = 0.01,
) -> Cluster:
    """Stores 1..N, regions replicated over them, leaders spread evenly, disks a little different."""
    count = len(metrics_ports)
    regions = 20 * count
    peers_per_store = regions * min(identity.replicas, count) // count
    stores: dict[int, Store] = {}
    for index, port in enumerate(metrics_ports):
        address, status_address = identity.store_addresses(index, port)
        spec = StoreSpec(
            id=index + 1,
            address=address,
            status_address=status_address,
            labels={"zone": f"z{index % 3 + 1}", "host": identity.pod_name(index)},
            disk_used_percent=30.0 + 1.5 * index,
            region_count=peers_per_store,
            leader_count=regions // count,
            p99_seconds=p99_seconds,
        )
        stores[spec.id] = Store(spec, timing, now_ns)
    return Cluster(identity=identity, stores=stores, timing=timing, created_ns=now_ns)
