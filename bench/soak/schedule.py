"""The soak's plan: a seeded, reproducible list of timed events (pure: same seed and size -> same plan).

Lanes keep one event's effects from being undone by another's: each store has a lane (one store fault at a
time: stop, disk, latency; scale-in ends the lane), each cluster has a PD lane (PD errors, leader changes)
and a regions lane; a rolling restart reserves every store lane of its cluster while it runs (it stops and
starts each store: a stop-store of ours in the middle would be started again by it). Platform events
(Prometheus down, kube-apiserver paused, operator killed or stopped) and people's actions are global.
Everything that has an end ends `settle_s` before the run does, so the run finishes quiet and its final
state can be compared with Alertmanager's.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

# Store faults and their share of a store lane's faults; durations in seconds (compressed time: PD's clocks
# and the grace periods run about 10x faster than production's, see run.SOAK_TIMING).
STORE_FAULTS: dict[str, tuple[float, tuple[float, float]]] = {
    "stop-store": (0.35, (3.0, 40.0)),
    "disk": (0.35, (4.0, 40.0)),
    "latency": (0.30, (8.0, 50.0)),
}
PD_MODES = ("500", "hang", "malformed", "wrong-shape", "not-bootstrapped", "unreachable")
ROUTINE = frozenset({"pd-leader-change", "rolling-restart", "scale-in"})
PLATFORM = ("prometheus-down", "apiserver-pause", "operator-sigkill", "operator-sigterm")
PEOPLE = ("hold", "unhold", "ack", "resolve")
ROLLING_DOWNTIME_S, ROLLING_GAP_S = 3.0, 2.0
SCALE_IN_DRAIN_S = 4.0


@dataclass(frozen=True)
class Rates:
    """Mean seconds between events of each lane (exponential gaps, so events cluster as in life)."""

    store_gap_s: float = 40.0
    pd_gap_s: float = 75.0
    regions_gap_s: float = 120.0
    rolling_gap_s: float = 480.0
    prometheus_gap_s: float = 200.0
    apiserver_gap_s: float = 150.0
    operator_gap_s: float = 240.0
    person_gap_s: float = 6.0
    scale_in_share: float = 0.25  # of the clusters scale one store in, once


@dataclass(frozen=True)
class Event:
    at: float  # seconds from the start of the run
    kind: str  # a STORE_FAULTS key, pd-error, regions, one of ROUTINE, PLATFORM or "person"
    cluster: str | None = None
    store: int | None = None
    duration: float = 0.0  # 0: instantaneous (the event has no end of its own)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.at + self.duration


def rolling_duration(stores: int) -> float:
    return stores * (ROLLING_DOWNTIME_S + ROLLING_GAP_S)


def _cs(seconds: float) -> float:
    """Rounded down to centiseconds: a rounded duration never reaches past its lane's end."""
    return math.floor(seconds * 100) / 100


def _gaps(rng: random.Random, mean: float, start: float, stop: float) -> list[float]:
    """Poisson arrival times in [start, stop)."""
    times, at = [], start
    while True:
        at += rng.expovariate(1 / mean)
        if at >= stop:
            return times
        times.append(at)


def _free(at: float, end: float, reserved: list[tuple[float, float]]) -> bool:
    return all(end <= a or at >= b for a, b in reserved)


def _cluster_plan(rng: random.Random, cluster: str, stores: int, duration: float, last: float, rates: Rates,
                  scale_in: bool) -> list[Event]:
    events: list[Event] = []
    # Rolling restarts first: they reserve the store lanes (plus a few seconds for the last start to land).
    reserved: list[tuple[float, float]] = []
    for at in _gaps(rng, rates.rolling_gap_s, 10.0, last - rolling_duration(stores)):
        if _free(at - 5, at + rolling_duration(stores) + 5, reserved):
            events.append(Event(at, "rolling-restart", cluster, duration=rolling_duration(stores),
                                params={"downtime": ROLLING_DOWNTIME_S, "gap": ROLLING_GAP_S}))
            reserved.append((at - 2, at + rolling_duration(stores) + 3))
    scaled = rng.randint(1, stores) if scale_in else None
    scale_at = rng.uniform(0.3, 0.8) * duration if scale_in else None
    for store in range(1, stores + 1):
        at = rng.uniform(1.0, rates.store_gap_s)
        lane_end = last
        if store == scaled and scale_at is not None:
            # The scale-in takes the first free moment after its time; the lane ends with it.
            while not _free(scale_at, scale_at + SCALE_IN_DRAIN_S + 3, reserved):
                scale_at += 5
            if scale_at < last:
                lane_end = scale_at - 2
                events.append(Event(scale_at, "scale-in", cluster, store, SCALE_IN_DRAIN_S,
                                    {"drain_seconds": SCALE_IN_DRAIN_S}))
        while at < lane_end:
            kind = rng.choices(list(STORE_FAULTS), weights=[w for w, _ in STORE_FAULTS.values()])[0]
            low, high = STORE_FAULTS[kind][1]
            length = min(rng.uniform(low, high), lane_end - at)
            if length >= 2 and _free(at, at + length + 2, reserved):
                params: dict[str, Any] = {}
                if kind == "disk":
                    # > 70 % used, < 80 %: PD's own store_low_space (20 % free) stays out of it
                    params = {"percent": round(rng.uniform(74, 79), 1)}
                elif kind == "latency":
                    params = {"p99_ms": float(rng.choice((250, 400, 800)))}
                events.append(Event(at, kind, cluster, store, _cs(length), params))
                at += length
            at += 2 + rng.expovariate(1 / rates.store_gap_s)
    pd_at = rng.uniform(2.0, rates.pd_gap_s)
    while pd_at < last:
        if rng.random() < 0.6:
            length = min(rng.uniform(3, 40), last - pd_at)
            mode = rng.choice(PD_MODES)
            params = {"mode": mode, **({"hang_seconds": 30.0} if mode == "hang" else {})}
            events.append(Event(pd_at, "pd-error", cluster, duration=_cs(length), params=params))
            pd_at += length
        else:
            events.append(Event(pd_at, "pd-leader-change", cluster, params={"election_seconds": 2.0}))
            pd_at += 6
        pd_at += 2 + rng.expovariate(1 / rates.pd_gap_s)
    for at in _gaps(rng, rates.regions_gap_s, 5.0, last):
        length = min(rng.uniform(5, 30), last - at)
        if not any(e.kind == "regions" and e.end + 3 > at for e in events):
            events.append(Event(at, "regions", cluster, duration=_cs(length),
                                params={"miss-peer": rng.choice((150, 300, 1000))}))
    return events


def _platform_plan(rng: random.Random, duration: float, last: float, rates: Rates) -> list[Event]:
    events: list[Event] = []
    kinds = {"prometheus-down": (rates.prometheus_gap_s, (8.0, 35.0)),
             "apiserver-pause": (rates.apiserver_gap_s, (2.0, 6.0))}
    for kind, (gap, (low, high)) in kinds.items():
        times = _gaps(rng, gap, 15.0, last - high) or [rng.uniform(0.2, 0.7) * duration]  # at least one a run
        free_from = 0.0
        for at in times:
            # One pause of a process at a time: a resume is a SIGCONT, which would end an overlapping pause too.
            if at >= free_from:
                length = _cs(rng.uniform(low, high))
                events.append(Event(at, kind, duration=length))
                free_from = at + length + 5
    # Operator disruptions: at least one SIGKILL and one SIGTERM a run, at least 45 s apart (a handover
    # after SIGKILL waits the Lease out: 15 s), the stopped replica started again 2-8 s later.
    times = sorted(_gaps(rng, rates.operator_gap_s, 20.0, last - 30))
    spaced: list[float] = []
    for at in times:
        if not spaced or at - spaced[-1] >= 45:
            spaced.append(at)
    while len(spaced) < 2:
        spaced = [0.25 * duration, 0.55 * duration] if duration >= 120 else [0.2 * duration, 0.5 * duration]
    signals = ["operator-sigkill", "operator-sigterm"] + [rng.choice(("operator-sigkill", "operator-sigterm"))
                                                        for _ in spaced[2:]]
    rng.shuffle(signals)
    for at, kind in zip(spaced, signals, strict=True):
        events.append(Event(at, kind, params={"restart_after": round(rng.uniform(2, 8), 2)}))
    return events


def _people_plan(rng: random.Random, duration: float, last: float, rates: Rates) -> list[Event]:
    events = []
    for index, at in enumerate(_gaps(rng, rates.person_gap_s, 10.0, last)):
        # hold and ack more often than unhold and resolve: a person mostly takes tickets into their hands.
        action = rng.choices(PEOPLE, weights=(0.35, 0.15, 0.3, 0.2))[0]
        events.append(Event(at, "person", params={"action": action, "pick": rng.random(), "index": index}))
    # At least one of each action a run, wherever the random times put none.
    for action in PEOPLE:
        if not any(e.params["action"] == action for e in events):
            events.append(Event(rng.uniform(0.3, 0.9) * last, "person",
                                params={"action": action, "pick": rng.random(), "index": len(events)}))
    return events


def plan(seed: int, duration: float, clusters: list[tuple[str, int]], rates: Rates | None = None,
         settle_s: float = 30.0) -> list[Event]:
    """Every event of a run of `duration` seconds over `clusters` ((name, number of stores)), in time order."""
    rates = rates or Rates()
    rng = random.Random(seed)  # noqa: S311  (a reproducible test plan, not a secret)
    last = max(duration - settle_s, duration / 2)
    events: list[Event] = []
    scaled = set(rng.sample([name for name, _ in clusters], round(rates.scale_in_share * len(clusters))))
    for name, stores in clusters:
        events += _cluster_plan(random.Random(f"{seed}/{name}"), name, stores, duration, last, rates,  # noqa: S311
                                name in scaled and stores > 1)
    events += _platform_plan(rng, duration, last, rates)
    events += _people_plan(rng, duration, last, rates)
    return sorted(events, key=lambda e: (e.at, e.kind, e.cluster or "", e.store or 0))


def counts(events: list[Event]) -> dict[str, int]:
    out: dict[str, int] = {}
    for event in events:
        key = f"person:{event.params['action']}" if event.kind == "person" else event.kind
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))
