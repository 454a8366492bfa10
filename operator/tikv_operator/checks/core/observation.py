"""One check's view of a TiKV cluster: what PD and Prometheus answered (or that they did not)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

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
    start_timestamp: int | None = None  # seconds; the TiKV process' start (0 before its first heartbeat)
    leader_count: int | None = None
    region_count: int | None = None
    slow_score: float | None = None  # PD leaves it out before the first heartbeat, and when 0

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


# Who said no to a Secret. "refused": the operator read it and will not or cannot use it (not labelled to
# opt in, a ServiceAccount token, a key missing or malformed): its owner must change the Secret.
# "unreadable": the API server did not hand it over (404, 403, 429, 5xx, a timeout).
CredentialsFailure = Literal["refused", "unreadable"]


@dataclass(frozen=True)
class NotContacted:
    """A probe that was not attempted because its credentials could not be used. `reason` names the
    Secret and the key, never a value."""

    failure: CredentialsFailure
    reason: str


@dataclass(frozen=True)
class PDObservation:
    """`reachable` False means PD did not answer correctly; `error` says how, `stores` is then empty.
    `not_contacted` set means PD was never asked (its credentials could not be used): `reachable` is then
    False too, so everything that needs PD stays unknown, but PD itself is not to blame.

    `tombstones` are stores PD confirmed as Tombstone (asked only when a store with a ticket went missing
    from the list); `unlisted` are such stores PD knows in neither list."""

    url: str
    reachable: bool
    stores: tuple[Store, ...] = ()
    error: str = ""
    tombstones: tuple[Store, ...] = ()
    unlisted: tuple[str, ...] = ()
    not_contacted: NotContacted | None = None


@dataclass(frozen=True)
class Series:
    """One sample of an instant query's answer: its labels and value (NaN: no samples in the window)."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class MetricsObservation:
    """The answers to the check's Prometheus queries, by query name.

    A query that failed is absent from `values` and its reason is in `failures`; `reachable` False means
    the query API itself failed (no query answered), or, with `not_contacted`, was never asked. `busy`: no
    query was asked because the operator's workers for this Prometheus were all taken by other clusters'
    queries, which says nothing about Prometheus (unknown, rule 5)."""

    url: str
    reachable: bool
    queries: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, tuple[Series, ...]] = field(default_factory=dict)
    error: str = ""
    failures: Mapping[str, str] = field(default_factory=dict)
    not_contacted: NotContacted | None = None
    busy: bool = False
    # The checks inside the union queries: check -> (the query it rides in, its own expression).
    parts: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    """`secrets`: the Secrets ("namespace/name") the check's probes were given, for the status."""

    cluster: str
    at: datetime
    pd: PDObservation
    metrics: MetricsObservation
    secrets: tuple[str, ...] = ()
    stale_secrets: tuple[str, ...] = ()  # why a Secret in use is an older copy (its re-reads fail)
    # Store id -> pod, as the deployment declares it (spec.storePods, from tidb-operator): no guessing.
    store_pods: Mapping[str, str] = field(default_factory=dict)
