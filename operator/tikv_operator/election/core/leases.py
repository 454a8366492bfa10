"""Leader election on a coordination.k8s.io/v1 Lease, the rules client-go's leaderelection package follows.

Only one replica may act at a time. Expiry is judged on the *local* monotonic clock from the moment a
replica saw the record change, never from the renewTime written by another machine: clocks of two
nodes need not agree, their rates do (client-go's argument). The holder stops acting when it has not
renewed for `renew_deadline`, which is shorter than `lease_duration`, the earliest a standby may take
over: the gap is what keeps two replicas from acting at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults (and controller-runtime's, and tidb-operator's): 15 s / 10 s / 2 s."""

    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def problems(self) -> list[str]:
        """Why this timing would let two replicas act at once or flap; empty when it is sound."""
        found = []
        if self.retry_period_s <= 0:
            found.append("the retry period must be positive")
        if self.renew_deadline_s <= self.retry_period_s * (1 + MAX_JITTER):
            found.append(f"the renew deadline must exceed the retry period x {1 + MAX_JITTER:g} (renewals retry "
                         "within it)")
        if self.lease_duration_s <= self.renew_deadline_s:
            found.append("the lease duration must exceed the renew deadline (a holder must stop acting "
                         "before a standby may take over)")
        elif self.write_window_s < MIN_WRITE_WINDOW_S:
            found.append(f"the lease duration must exceed the renew deadline by at least {MIN_WRITE_WINDOW_S:g}s: "
                         "a write let through just before the renew deadline needs that time for one API request "
                         "to end before a standby may take over")
        return found

    @property
    def write_window_s(self) -> float:
        """The fence's margin: a write sent at the last moment the holder acts (the renew deadline) has this
        long to end before a standby may take the Lease (the lease duration)."""
        return self.lease_duration_s - self.renew_deadline_s


# Standbys retry at retry_period x (1 + up to this): two standbys do not ask in lockstep.
MAX_JITTER = 0.1
# The least margin between renew deadline and lease duration: time for one API request (its timeout is cut to
# what is left of the margin, kube/api.py), however short.
MIN_WRITE_WINDOW_S = 1.0


@dataclass(frozen=True)
class LeaseRecord:
    """The parts of a Lease's spec the election reads and writes."""

    holder: str = ""
    duration_s: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Sighting:
    """A record as this replica last read it, and when (monotonic seconds) it first saw it so."""

    record: LeaseRecord
    seen_at: float


def observe(previous: Sighting | None, record: LeaseRecord, now: float) -> Sighting:
    """A record read now: its clock restarts only when the record changed (a holder's renewal is a change)."""
    if previous is not None and previous.record == record:
        return previous
    return Sighting(record, now)


def held_by_other(sighting: Sighting | None, me: str, now: float) -> bool:
    """Another replica holds the Lease and may still be acting: its last renewal, as seen here, is younger
    than the duration it declared. A released Lease (no holder) is free at once."""
    if sighting is None:
        return False
    record = sighting.record
    return bool(record.holder) and record.holder != me and now < sighting.seen_at + record.duration_s


def claim(sighting: Sighting | None, me: str, wall_now: datetime, timing: LeaseTiming) -> LeaseRecord:
    """The record to write to hold the Lease: a renewal keeps acquireTime and the transition count; taking it
    from another holder (or a released Lease) counts one more transition. Call only when not held_by_other."""
    duration = max(1, round(timing.lease_duration_s))
    current = sighting.record if sighting is not None else None
    if current is not None and current.holder == me:
        return replace(current, duration_s=duration, renew_time=wall_now)
    transitions = current.transitions + 1 if current is not None else 0
    return LeaseRecord(holder=me, duration_s=duration, acquire_time=wall_now, renew_time=wall_now,
                       transitions=transitions)


def released(record: LeaseRecord, wall_now: datetime) -> LeaseRecord:
    """What a holder that stops writes: no holder and a 1 s duration, so a standby takes over at its next try
    instead of waiting out the lease (client-go's ReleaseOnCancel)."""
    return replace(record, holder="", duration_s=1, renew_time=wall_now)


def time_left(renewed_at: float | None, now: float, timing: LeaseTiming) -> float:
    """Seconds until a standby may take the Lease after the holder's last renewal (sent at `renewed_at`): a
    write this holder sends now must have ended by then. Standbys count from when they saw the renewal, which
    is after it was sent, so this is never later than their count."""
    return 0.0 if renewed_at is None else renewed_at + timing.lease_duration_s - now


def may_act(renewed_at: float | None, now: float, timing: LeaseTiming) -> bool:
    """The holder acts only while its last successful renewal (sent at `renewed_at`, monotonic) is younger
    than the renew deadline; past it another replica may soon hold the Lease."""
    return renewed_at is not None and now - renewed_at < timing.renew_deadline_s


def next_attempt_in(sighting: Sighting | None, me: str, leading: bool, now: float, timing: LeaseTiming,
                    jitter: float) -> float:
    """Seconds until the next try. The holder renews every retry period. A standby asks every retry period
    (plus `jitter` in [0, 1) of MAX_JITTER), and no later than the moment the holder's lease runs out as
    seen here, so a dead holder is replaced within lease duration + retry period."""
    if leading:
        return timing.retry_period_s
    wait = timing.retry_period_s * (1 + MAX_JITTER * jitter)
    if held_by_other(sighting, me, now):
        assert sighting is not None
        expiry = sighting.seen_at + sighting.record.duration_s - now
        wait = min(wait, max(expiry, 0.0) + 0.05)
    return wait
