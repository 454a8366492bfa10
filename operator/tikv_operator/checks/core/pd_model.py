"""The parts of PD's HTTP answers the operator reads, parsed leniently: PD omits empty fields, adds new
ones between versions, and changed its size format once. Pure: bytes in, models out."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from tikv_operator.checks.core.observation import Store
from tikv_operator.model.json_text import load_json
from tikv_operator.model.sizes import parse_size

# Counts and moments beyond these are no count or moment PD keeps (uint64 fields, read as int64 by Go
# clients): NaN, Infinity or 1e300 there is as good as no value, and must not overflow a datetime later.
INT64_LIMIT = 2**63
# Seconds before year 10000, the last a datetime holds.
SECONDS_LIMIT = 253402300800


def _size_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError:
        # One odd size must not cost the whole answer; the disk invariant reads Prometheus anyway.
        return None


def _within(limit: int) -> Any:
    def check(value: Any) -> Any:
        # NaN compares False with everything, so it is out of range too.
        if isinstance(value, int | float) and not isinstance(value, bool) and not 0 <= value < limit:
            return None
        return value

    return BeforeValidator(check)


def _id_text(value: Any) -> str:
    # member ids are uint64 above 2**53: keep them as text so no JSON float rounding touches them.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not an id")
    return str(value)


Size = Annotated[int | None, BeforeValidator(_size_or_none)]
IdText = Annotated[str, BeforeValidator(_id_text)]
Count = Annotated[int | None, _within(INT64_LIMIT)]
Nanoseconds = Annotated[int | None, _within(INT64_LIMIT)]
Seconds = Annotated[int | None, _within(SECONDS_LIMIT)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StoreLabel(_Lenient):
    key: str
    value: str = ""


class StoreMeta(_Lenient):
    id: IdText
    address: str = ""
    status_address: str = ""
    labels: tuple[StoreLabel, ...] = ()
    version: str = ""
    # An answer without a state says nothing about the store: "" makes its invariants unknown.
    state_name: str = ""
    last_heartbeat: Nanoseconds = None
    physically_destroyed: bool = False
    start_timestamp: Seconds = None


class StoreStatus(_Lenient):
    capacity: Size = None
    available: Size = None
    used_size: Size = None
    region_count: Count = None
    leader_count: Count = None
    # NaN and Infinity are kept: store_slow says PD reported them (unknown), rather than taking them for a score.
    slow_score: float | None = None
    last_heartbeat_ts: str | None = None
    uptime: str | None = None


class StoreEntry(_Lenient):
    store: StoreMeta
    status: StoreStatus = Field(default_factory=StoreStatus)


class StoresResponse(_Lenient):
    count: int | None = None
    stores: tuple[StoreEntry, ...] = ()

    def observed(self) -> tuple[Store, ...]:
        """The stores as the invariants see them."""
        return tuple(
            Store(e.store.id, e.store.address, e.store.status_address, e.store.state_name,
                  e.status.capacity, e.status.available,
                  labels=tuple((label.key, label.value) for label in e.store.labels),
                  last_heartbeat_ns=e.store.last_heartbeat, physically_destroyed=e.store.physically_destroyed,
                  start_timestamp=e.store.start_timestamp, leader_count=e.status.leader_count,
                  region_count=e.status.region_count, slow_score=e.status.slow_score)
            for e in self.stores
        )


class HealthMember(_Lenient):
    name: str = ""
    member_id: IdText
    client_urls: tuple[str, ...] = ()
    health: bool = False


class PDAnswerError(ValueError):
    """PD answered, but not with what the API promises."""


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


class PDAnswerTooLarge(PDAnswerError):
    """PD's answer lists more than the operator reads."""


def parse_stores(body: bytes | bytearray | str, max_stores: int | None = None) -> StoresResponse:
    """GET /pd/api/v1/stores. More than `max_stores` stores is PDAnswerTooLarge, found before any is validated
    (a validated store costs about 3 KiB: tens of thousands would take the memory other clusters need)."""
    try:
        data = load_json(body)
    except ValueError as error:
        raise PDAnswerError(f"/stores is not JSON: {error}") from None
    if isinstance(data, dict) and data.get("stores", ()) is None:
        data["stores"] = []  # PD answers `"stores": null` when there are none
    if not isinstance(data, dict) or not isinstance(data.get("stores", []), list):
        raise PDAnswerError("/stores is not an object with a list of stores")
    if max_stores is not None and len(data.get("stores", [])) > max_stores:
        raise PDAnswerTooLarge(f"answer too large: it lists {len(data['stores'])} stores, more than {max_stores}")
    try:
        return StoresResponse.model_validate(data)
    except ValidationError as error:
        raise PDAnswerError(f"/stores has an unexpected shape ({_describe(error)})") from None


def parse_health(body: bytes | str) -> tuple[HealthMember, ...]:
    """GET /pd/api/v1/health."""
    try:
        data = load_json(body)
    except ValueError as error:
        raise PDAnswerError(f"/health is not JSON: {error}") from None
    if not isinstance(data, list):
        raise PDAnswerError("/health is not a list of members")
    try:
        return tuple(HealthMember.model_validate(m) for m in data)
    except ValidationError as error:
        raise PDAnswerError(f"/health has an unexpected shape ({_describe(error)})") from None

