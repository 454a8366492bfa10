"""One check's view of a TiKV cluster: what PD and Prometheus answered (or that they did not)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

STORE_UP = "Up"


@dataclass(frozen=True)
class Store:
    """A store as PD lists it (Tombstone stores are not listed)."""

    id: str
    address: str = ""
    status_address: str = ""
    state_name: str = STORE_UP
    capacity_bytes: int | None = None
    available_bytes: int | None = None

    @property
    def up(self) -> bool:
        return self.state_name == STORE_UP


@dataclass(frozen=True)
class PDObservation:
    """`reachable` False means PD did not answer correctly; `error` says how, `stores` is then empty."""

    url: str
    reachable: bool
    stores: tuple[Store, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class MetricsObservation:
    """The answers to the check's Prometheus queries: per query name, value by `instance` label.

    A query that failed is absent from `values`; `reachable` False means the query API itself failed."""

    url: str
    reachable: bool
    queries: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class Observation:
    cluster: str
    at: datetime
    pd: PDObservation
    metrics: MetricsObservation
