"""Time sources. Everything in the model asks a Clock, so tests can move time by hand."""

import time
from typing import Protocol

NS_PER_SECOND = 1_000_000_000


def seconds_to_ns(seconds: float) -> int:
    return round(seconds * NS_PER_SECOND)


class Clock(Protocol):
    def now_ns(self) -> int:
        """Wall-clock time in integer nanoseconds since the epoch (PD reports nanosecond heartbeats)."""
        ...


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


class ManualClock:
    """A clock that only moves when told to: state transitions become instant to test."""

    def __init__(self, start_ns: int = 1_764_000_000 * NS_PER_SECOND) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now_ns += seconds_to_ns(seconds)
