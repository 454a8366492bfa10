"""What really happened in a soak run, as the harness did it: the faults the simulator was told (and when
it answered), the store stops and starts they stand for (a rolling restart's steps included), the platform
disruptions, operator signals, people's kubectl actions and the operators' memory. Times are wall-clock
seconds (time.time()), the clock the operator's timestamps use too (one machine).

Plain dataclasses that survive a JSON round trip, so a run's record can be checked again later
(`python -m bench.soak --check <record.json>`)."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class Fault:
    """One fault (or routine operation) the simulator or the platform was told about."""

    id: int
    kind: str  # schedule kinds: stop-store, disk, latency, regions, pd-error, prometheus-down, and ROUTINE
    cluster: str | None
    store: int | None
    on: float  # when it had surely taken effect (the simulator answered, the signal was sent)
    off: float | None = None  # when it had surely been cleared; None: still on when the run ended
    params: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # the injection failed: the fault never happened and is not judged
    # When the harness asked for it and for its end: the simulator applies a request somewhere between the
    # ask and its answer, so a fault may have begun from `requested` and is surely on until `clearing`.
    requested: float = 0.0
    clearing: float | None = None


@dataclass
class StoreStep:
    """A store stopped or started, went Offline (scale-in) or was removed (Tombstone)."""

    cluster: str
    store: int
    at: float
    what: str  # stop | start | offline | removed
    cause: str  # the fault kind that did it


@dataclass
class Outage:
    """A time when the operator could not act: no replica led (a signal until the handover), or the
    kube-apiserver was paused."""

    kind: str  # operator-sigkill | operator-sigterm | apiserver-pause
    start: float
    end: float


@dataclass
class PersonAction:
    """A person's kubectl patch of a ticket, and the ticket as the API server returned it."""

    index: int
    action: str  # hold | unhold | ack | resolve
    ticket: str
    before: float
    after: float
    ok: bool
    resource_version: int = 0  # of the object the patch produced
    phase_before: str = ""  # as the harness' watch last saw it
    phase_after: str = ""
    held_after: bool = False
    output: str = ""


@dataclass
class RssSample:
    process: int  # the replica's number, in start order
    at: float
    rss_kib: int
    leader: bool
    peak_kib: int = 0  # VmHWM: the highest RSS of the process so far (0 in records from before it was kept)


@dataclass
class Exit:
    """A replica that ended: signalled by the soak (operator-sigkill, operator-sigterm), stopped at the end
    (teardown), or on its own (unexpected: a crash)."""

    process: int
    at: float
    code: int | None
    cause: str  # operator-sigkill | operator-sigterm | teardown | unexpected


@dataclass
class StatusSample:
    """A TiKVCluster's status as the harness listed it: its health, its last check and its conditions (the
    message kept only for a condition that is not True)."""

    cluster: str
    at: float
    health: str
    last_check: str
    conditions: dict[str, str] = field(default_factory=dict)  # type -> status
    reasons: dict[str, str] = field(default_factory=dict)  # type -> message, for conditions not True


@dataclass
class Record:
    seed: int
    clusters: dict[str, str]  # name -> deployment convention: the well-behaved clusters, which the oracle judges
    stores: dict[str, int]
    started: float
    ended: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)  # the timing the oracle needs (run.Settings)
    faults: list[Fault] = field(default_factory=list)
    steps: list[StoreStep] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    actions: list[PersonAction] = field(default_factory=list)
    rss: list[RssSample] = field(default_factory=list)
    replicas: dict[int, list[float]] = field(default_factory=dict)  # replica -> [started, stopped or 0]
    alertmanager: dict[str, Any] = field(default_factory=dict)  # the final comparison, see run.final_alerts
    hostile: dict[str, str] = field(default_factory=dict)  # hostile tenant -> its kind (bench.soak.tenants)
    statuses: list[StatusSample] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, kind: str, item: Any) -> None:
        """Append to one of the lists from any thread."""
        with self._lock:
            getattr(self, kind).append(item)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name != "_lock"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        data = dict(data)
        data.pop("_lock", None)
        record = cls(**{k: v for k, v in data.items() if k not in {
            "faults", "steps", "outages", "actions", "rss", "replicas", "statuses", "exits"}})
        record.faults = [Fault(**f) for f in data.get("faults", [])]
        record.steps = [StoreStep(**s) for s in data.get("steps", [])]
        record.outages = [Outage(**o) for o in data.get("outages", [])]
        record.actions = [PersonAction(**a) for a in data.get("actions", [])]
        record.rss = [RssSample(**r) for r in data.get("rss", [])]
        record.replicas = {int(k): list(v) for k, v in data.get("replicas", {}).items()}
        record.statuses = [StatusSample(**x) for x in data.get("statuses", [])]
        record.exits = [Exit(**x) for x in data.get("exits", [])]
        return record

    def save(self, path: Path, tickets: list[dict[str, Any]]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"record": self.to_json(), "tickets": tickets}))


def load(path: Path) -> tuple[Record, list[dict[str, Any]]]:
    data = json.loads(path.read_text())
    return Record.from_json(data["record"]), list(data["tickets"])
