"""One simulated TiKV cluster: its PD (identity, fault mode, region health) and its stores."""

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from tikv_sim.cascade_state import CascadeState
from tikv_sim.pd_leader import LeaderState
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
    POD_LABEL = "pod-label"  # prometheus-operator ServiceMonitor/PodMonitor: instance = podIP:port, plus `pod`

    @property
    def kubernetes(self) -> bool:
        """PD knows stores by their pods' DNS names."""
        return self is not InstanceLabel.STATUS_ADDRESS


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


def check_region_counts(counts: Mapping[str, int]) -> None:
    for kind, count in counts.items():
        if kind not in REGION_CHECKS:
            raise ValueError(f"unknown region check {kind!r}: use one of {', '.join(REGION_CHECKS)}")
        if int(count) < 0:
            raise ValueError("region counts cannot be negative")


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
    leader: LeaderState = field(default_factory=LeaderState)


ENGINE_PORTS = {"tikv": (20160, 20180), "tiflash": (3930, 20292)}  # (address port, status port) in a pod


@dataclass
class ClusterIdentity:
    name: str
    namespace: str
    instance_label: InstanceLabel
    replicas: int = 3
    key: str = ""  # how faults and the control API name it: the name, or "<ns>/<name>" when names repeat
    pd_members: int = 3
    # TiKV advertises its pod's IP (the node's, on the host network) instead of its DNS name. Not what
    # tidb-operator does (it passes POD_NAME and keeps the DNS name): a what-if for the store -> pod mapping.
    host_network: bool = False
    index: int = 0  # the cluster's place in the simulation, which tells its host IPs apart

    def __post_init__(self) -> None:
        self.key = self.key or self.name

    @property
    def cluster_id(self) -> int:
        return _uint64_id(f"{self.namespace}/{self.name}/cluster")

    def pd_member_id(self, index: int) -> int:
        return _uint64_id(f"{self.namespace}/{self.name}/pd-{index}")

    @property
    def member_id(self) -> int:
        return self.pd_member_id(0)

    def pd_member_name_of(self, index: int) -> str:
        return f"{self.name}-pd-{index}" if self.instance_label.kubernetes else f"pd-{index}"

    @property
    def pd_member_name(self) -> str:
        return self.pd_member_name_of(0)

    @property
    def tidb_cluster(self) -> str:
        return f"{self.namespace}-{self.name}"

    def pod_name(self, store_index: int, engine: str = "tikv") -> str:
        return f"{self.name}-{engine}-{store_index}"

    def peer_service(self, engine: str = "tikv") -> str:
        return f"{self.name}-{engine}-peer"

    def host_ip(self, store_index: int, engine: str = "tikv") -> str:
        """The IP a host-network pod advertises, its node's: 10.<i / 256>.<i % 256>.<ordinal + 10> in cluster i
        (TiFlash pods: ordinal + 110)."""
        last = store_index + (10 if engine == "tikv" else 110)
        if last > 254:
            raise ValueError(f"host_network gives at most 100 pods of each engine per cluster, not {store_index + 1}")
        return f"10.{self.index // 256}.{self.index % 256}.{last}"

    def store_addresses(self, store_index: int, metrics_port: int, engine: str = "tikv") -> tuple[str, str]:
        """(address, status_address) as PD reports them for this deployment style.

        `store_index` counts within the engine (basic-tiflash-0 is the first TiFlash store).
        """
        if self.instance_label.kubernetes:
            host = f"{self.pod_name(store_index, engine)}.{self.peer_service(engine)}.{self.namespace}.svc"
            if self.host_network:
                host = self.host_ip(store_index, engine)
            port, status_port = ENGINE_PORTS[engine]
            return f"{host}:{port}", f"{host}:{status_port}"
        # tiup: Prometheus scrapes the status address itself, so it must be the real port.
        return f"127.0.0.1:{20160 + store_index}", f"127.0.0.1:{metrics_port}"


@dataclass
class Slot:
    """A pod of the cluster: the store it runs now and its place among the pods of its engine."""

    index: int  # position in Cluster.slots, which is also its listener's key
    engine: str
    ordinal: int  # basic-tikv-<ordinal>
    store_id: int
    removed: bool = False  # the pod was deleted (store Tombstone after a scale-in)
    node: str = ""  # the Kubernetes node (or host) the pod runs on: a node failure stops every store on it


@dataclass
class Cluster:
    identity: ClusterIdentity
    stores: dict[int, Store]
    timing: Timing
    created_ns: int
    pd: PdState = field(default_factory=PdState)
    region_problems: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REGION_CHECKS, 0))
    slots: list[Slot] = field(default_factory=list)
    advertise_status_address: bool = True
    regions: int = 1
    cascade: CascadeState = field(default_factory=CascadeState)  # what one fault sets off (cascade.py)

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def key(self) -> str:
        return self.identity.key

    def store(self, store_id: int) -> Store:
        try:
            return self.stores[store_id]
        except KeyError:
            raise LookupError(f"cluster {self.key} has no store {store_id}") from None

    def slot_of(self, store_id: int) -> Slot | None:
        """The pod a store runs in; None for a store that was replaced (its pod now runs another)."""
        return next((slot for slot in self.slots if slot.store_id == store_id), None)

    def pod_name(self, store: Store) -> str:
        slot = self.slots[store.spec.slot]
        return self.identity.pod_name(slot.ordinal, slot.engine)

    def replace_store(self, store_id: int, now_ns: int) -> Store:
        """The store's disk is lost: `pd-ctl store delete` marks it Offline and physically destroyed, and
        a new store (the next id) registers on the same address from the same pod: a new process, new counters."""
        old = self.store(store_id)
        slot = self.slot_of(store_id)
        if slot is None or slot.removed:
            raise ValueError(f"store {store_id} no longer runs in a pod: nothing to replace")
        old.set_meta_state(MetaState.OFFLINE)
        old.physically_destroyed = True
        old.stop(now_ns)
        spec = dataclasses.replace(old.spec, id=max(self.stores) + 1, labels=dict(old.spec.labels))
        new = Store(spec, self.timing, now_ns)
        self.stores[spec.id] = new
        slot.store_id = spec.id
        return new

    def remove_store(self, store_id: int, now_ns: int) -> None:
        """The end of a scale-in: PD makes the store Tombstone and tidb-operator deletes its pod."""
        store = self.store(store_id)
        store.set_meta_state(MetaState.TOMBSTONE)
        store.stop(now_ns)
        slot = self.slot_of(store_id)
        if slot is not None:
            slot.removed = True

    def region_total(self) -> int:
        """Regions in the cluster; a scale-in moves peers between stores but keeps the regions."""
        return max(1, self.regions)

    def region_counts(self) -> dict[str, int]:
        """The region problems PD counts: those set by faults plus those a cascade caused (no more than
        the cluster has regions)."""
        added, most = self.cascade.counts, self.region_total()
        return {kind: count + min(most, added.get(kind, 0)) for kind, count in self.region_problems.items()}

    def stores_on(self, node: str) -> list[Store]:
        """The stores whose pods run on `node` now."""
        return [self.store(slot.store_id) for slot in self.slots if slot.node == node and not slot.removed]

    def set_region_problems(self, counts: Mapping[str, int]) -> None:
        check_region_counts(counts)
        for kind, count in counts.items():
            self.region_problems[kind] = int(count)


def build_cluster(
    identity: ClusterIdentity,
    metrics_ports: list[int],
    timing: Timing,
    now_ns: int,
    p99_seconds: float = 0.01,
    tiflash_ports: list[int] | None = None,
    nodes: int = 0,
) -> Cluster:
    """TiKV stores 1..N, regions replicated over them, leaders spread evenly, disks a little different;
    then the TiFlash stores (ids after the TiKV ones), which hold learner replicas only. Pods run on `nodes`
    nodes in turn (node-1, node-2, ...); 0 gives each pod a node of its own."""
    count = len(metrics_ports)
    regions = 20 * count
    peers_per_store = regions * min(identity.replicas, count) // count
    stores: dict[int, Store] = {}
    slots: list[Slot] = []
    engines = [("tikv", port) for port in metrics_ports] + [("tiflash", port) for port in tiflash_ports or []]
    for slot_index, (engine, port) in enumerate(engines):
        ordinal = slot_index if engine == "tikv" else slot_index - count
        address, status_address = identity.store_addresses(ordinal, port, engine)
        if engine == "tiflash" and not identity.instance_label.kubernetes:
            address = f"127.0.0.1:{20160 + slot_index}"
        labels = {"engine": "tiflash"} if engine == "tiflash" else {}
        labels |= {"zone": f"z{slot_index % 3 + 1}", "host": identity.pod_name(ordinal, engine)}
        spec = StoreSpec(
            id=slot_index + 1,
            address=address,
            status_address=status_address,
            labels=labels,
            disk_used_percent=30.0 + 1.5 * slot_index,
            region_count=peers_per_store if engine == "tikv" else regions // 2,
            leader_count=regions // count if engine == "tikv" else 0,
            p99_seconds=p99_seconds,
            engine=engine,
            slot=slot_index,
        )
        if engine == "tiflash":
            spec.version = "v8.5.0"  # TiFlash reports its version with the "v"
        stores[spec.id] = Store(spec, timing, now_ns)
        node = f"node-{slot_index % nodes + 1}" if nodes > 0 else f"node-{slot_index + 1}"
        slots.append(Slot(index=slot_index, engine=engine, ordinal=ordinal, store_id=spec.id, node=node))
    return Cluster(identity=identity, stores=stores, timing=timing, created_ns=now_ns, slots=slots, regions=regions)
