"""One check's view of a TiKV cluster: what PD and Prometheus answered (or that they did not)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

STORE_UP = "Up"
TOMBSTONE = "Tombstone"
ENGINE_LABEL = "engine"
TIFLASH = "tiflash"


@dataclass(frozen=True)
class Store:
    """A store as PD lists it (Tombstone stores are not in PD's default list)."""

    id: str
    address: str = ""
    status_address: str = ""
    state_name: str = STORE_UP
    capacity_bytes: int | None = None
    available_bytes: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    last_heartbeat_ns: int | None = None
    physically_destroyed: bool = False

    @property
    def up(self) -> bool:
        return self.state_name == STORE_UP

    @property
    def engine(self) -> str:
        """"tikv", or what the store's `engine` label says (TiFlash registers with engine=tiflash)."""
        return next((value for key, value in self.labels if key == ENGINE_LABEL), "") or "tikv"

    @property
    def exports_tikv_metrics(self) -> bool:
        """TiFlash's proxy exports tiflash_proxy_tikv_*, never the tikv_* families the invariants read."""
        return self.engine != TIFLASH


@dataclass(frozen=True)
class PDObservation:
    """`reachable` False means PD did not answer correctly; `error` says how, `stores` is then empty.

    `tombstones` are stores PD confirmed as Tombstone (asked only when a store with a ticket went missing
    from the list); `unlisted` are such stores PD knows in neither list."""

    url: str
    reachable: bool
    stores: tuple[Store, ...] = ()
    error: str = ""
    tombstones: tuple[Store, ...] = ()
    unlisted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Series:
    """One sample of an instant query's answer: its labels and value (NaN: no samples in the window)."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class MetricsObservation:
    """The answers to the check's Prometheus queries, by query name.

    A query that failed is absent from `values` and its reason is in `failures`; `reachable` False means
    the query API itself failed (no query answered)."""

    url: str
    reachable: bool
    queries: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, tuple[Series, ...]] = field(default_factory=dict)
    error: str = ""
    failures: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    cluster: str
    at: datetime
    pd: PDObservation
    metrics: MetricsObservation
