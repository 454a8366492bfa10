"""What a cluster's cascade remembers: its switch, each store's latest outage, the symptoms still to come and
the ones that happened (the ground truth a soak judges a diagnosis against). The behaviour is in cascade.py;
this module holds data only, so the cluster model can carry it without importing the behaviour."""

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Symptoms kept for GET .../cascade; older ones fall off (a soak reads them long before).
LOG_MAX = 10_000


@dataclass
class Outage:
    """One stop of one store, from its cause to what the cluster did about it."""

    number: int
    store: int
    cause: str  # the fault that stopped it: stop-store, oom-kill, node-failure node-2, ...
    stopped_ns: int
    started_ns: int | None = None
    down: int = 0  # its regions counted in down-peer now
    moved: dict[int, int] = field(default_factory=dict)  # store -> leaders it took over from this one
    replaced: int = 0  # peers PD has rebuilt elsewhere


@dataclass(frozen=True)
class Symptom:
    at_ns: int
    symptom: str
    store: int | None
    cause: str
    detail: dict[str, Any]


@dataclass(order=True)
class Event:
    due_ns: int
    seq: int
    outage: int = field(compare=False)  # 0: belongs to no outage (never cancelled)
    kind: str = field(compare=False)
    action: Callable[[int], None] = field(compare=False)


@dataclass
class CascadeState:
    enabled: bool = False
    outages: dict[int, Outage] = field(default_factory=dict)  # store id -> its latest outage
    counts: dict[str, int] = field(default_factory=dict)  # region check -> regions the cascade adds
    raised: dict[int, int] = field(default_factory=dict)  # store id -> failovers raising its latency now
    disk_full: set[int] = field(default_factory=set)  # stores showing a near-full disk's symptoms
    log: deque[Symptom] = field(default_factory=lambda: deque(maxlen=LOG_MAX))
    events: list[Event] = field(default_factory=list)  # a heap, by due time then order of scheduling
    _seq: int = 0
    _outages: int = 0

    def schedule(self, due_ns: int, outage: int, kind: str, action: Callable[[int], None]) -> None:
        self._seq += 1
        heapq.heappush(self.events, Event(due_ns, self._seq, outage, kind, action))

    def cancel(self, outage: int, kinds: frozenset[str]) -> None:
        kept = [e for e in self.events if not (e.outage == outage and e.kind in kinds)]
        if len(kept) != len(self.events):
            heapq.heapify(kept)
            self.events = kept

    def pop_due(self, now_ns: int) -> Event | None:
        if self.events and self.events[0].due_ns <= now_ns:
            return heapq.heappop(self.events)
        return None

    def new_outage(self, store: int, cause: str, now_ns: int) -> Outage:
        self._outages += 1
        outage = Outage(number=self._outages, store=store, cause=cause, stopped_ns=now_ns)
        self.outages[store] = outage
        return outage

    def add(self, kind: str, delta: int) -> None:
        self.counts[kind] = max(0, self.counts.get(kind, 0) + delta)
