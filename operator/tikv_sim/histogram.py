"""Histograms shaped so that PromQL's histogram_quantile(0.99, ...) returns a set value.

histogram_quantile() interpolates linearly inside the bucket that holds the 0.99 rank. Each tick adds
observations in a fixed proportion: 1 % of them inside the bucket (lo, hi] that contains the target, a
share t (where target = lo + t * (hi - lo)) of that 1 % above hi and the rest at or below lo. Then the
0.99 rank lands exactly at t of the way through the bucket, whatever the rate window, because every
window holds a whole number of identical ticks. Series at the same p99 keep the property when summed.

Counters are cumulative and grow lazily: advanced by whole ticks to `now` whenever read or reconfigured,
so a hand-moved clock gives the same series as a real one.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from tikv_sim.clock import NS_PER_SECOND
from tikv_sim.exposition import prometheus_number

TICK_NS = NS_PER_SECOND
# Observations per weight unit per tick: 1 % of them (100) sit in the target bucket, which gives the
# interpolated p99 a resolution of 1/100 of a bucket per weight unit.
OBSERVATIONS_PER_WEIGHT = 10_000
_IN_BUCKET_PER_WEIGHT = OBSERVATIONS_PER_WEIGHT // 100

Bounds = tuple[float, ...]  # the finite upper bounds, ascending; +Inf is implied


def clamp(bounds: Bounds, target: float) -> float:
    """The layout can express targets from the first bound to the last one; PromQL itself never
    answers above the last finite bound."""
    return min(max(target, bounds[0]), bounds[-1])


def _bucket_index(bounds: Bounds, value: float) -> int:
    """Index of the first bound >= the value; never 0, so a lower bucket always exists for the bulk."""
    target = clamp(bounds, value)
    return max(1, next(i for i, bound in enumerate(bounds) if bound >= target))


def tick_increments(bounds: Bounds, target: float, weight: int, bulk_below: float | None = None) -> list[int]:
    """Observations added per tick to each bucket (non-cumulative; the last slot is +Inf).

    The bulk (99 %) goes just under the target's bucket, or under `bulk_below`'s bucket when that is lower.
    """
    target = clamp(bounds, target)
    index = _bucket_index(bounds, target)
    lo, hi = bounds[index - 1], bounds[index]
    share = (target - lo) / (hi - lo)
    in_bucket = _IN_BUCKET_PER_WEIGHT * weight
    above = round(in_bucket * share)
    below = OBSERVATIONS_PER_WEIGHT * weight - in_bucket - above
    bulk_slot = index - 1 if bulk_below is None else min(index, _bucket_index(bounds, bulk_below)) - 1
    counts = [0] * (len(bounds) + 1)
    counts[bulk_slot] += below
    counts[index] += in_bucket
    counts[index + 1] += above
    return counts


def representative(bounds: Bounds, bucket: int) -> float:
    """A value inside each bucket, for _sum (the quantile does not depend on it)."""
    if bucket == 0:
        return bounds[0] / 2
    if bucket >= len(bounds):
        return bounds[-1]
    return (bounds[bucket - 1] + bounds[bucket]) / 2


def increments_sum(bounds: Bounds, counts: Sequence[int]) -> float:
    """What a tick of `counts` adds to _sum."""
    return sum(count * representative(bounds, bucket) for bucket, count in enumerate(counts))


@dataclass
class Series:
    """One histogram child's cumulative counters; `buckets` are per bucket here, cumulated when printed."""

    size: int
    buckets: list[float] = field(init=False)
    total: float = 0.0
    sum_value: float = 0.0

    def __post_init__(self) -> None:
        self.buckets = [0.0] * self.size

    def add(self, increments: Sequence[int], value_sum: float, ticks: int) -> None:
        for bucket, count in enumerate(increments):
            if count:
                self.buckets[bucket] += count * ticks
                self.total += count * ticks
        self.sum_value += value_sum * ticks

    def cumulative(self) -> list[float]:
        running = 0.0
        out = []
        for count in self.buckets:
            running += count
            out.append(running)
        return out


class Ticks:
    """Whole ticks since the last look: every histogram moves in identical steps of TICK_NS."""

    def __init__(self, start_ns: int) -> None:
        self._last_ns = start_ns

    def take(self, now_ns: int) -> int:
        ticks = max(0, (now_ns - self._last_ns) // TICK_NS)
        self._last_ns += ticks * TICK_NS
        return ticks


class FixedP99Histogram:
    """An unlabelled histogram whose p99 is set; counters start at zero with the process."""

    def __init__(self, bounds: Bounds, p99: float, start_ns: int, weight: int = 1) -> None:
        self.bounds = bounds
        self.weight = weight
        self.series = Series(len(bounds) + 1)
        self._ticks = Ticks(start_ns)
        self._increments: list[int] = []
        self._increment_sum = 0.0
        self.p99 = p99
        self._recompute()

    def set_p99(self, p99: float, now_ns: int) -> None:
        self.advance(now_ns)  # what happened so far keeps the old distribution
        self.p99 = p99
        self._recompute()

    def _recompute(self) -> None:
        self._increments = tick_increments(self.bounds, self.p99, self.weight)
        self._increment_sum = increments_sum(self.bounds, self._increments)

    def advance(self, now_ns: int) -> None:
        ticks = self._ticks.take(now_ns)
        if ticks:
            self.series.add(self._increments, self._increment_sum, ticks)


def render(name: str, help_text: str, histogram: FixedP99Histogram, now_ns: int) -> list[str]:
    """The exposition lines of an unlabelled histogram, as rust-prometheus prints them."""
    histogram.advance(now_ns)
    series = histogram.series
    bounds = [*(prometheus_number(b) for b in histogram.bounds), "+Inf"]
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    lines += [
        f'{name}_bucket{{le="{bound}"}} {prometheus_number(count)}'
        for bound, count in zip(bounds, series.cumulative(), strict=True)
    ]
    lines.append(f"{name}_sum {prometheus_number(round(series.sum_value, 6))}")
    lines.append(f"{name}_count {prometheus_number(series.total)}")
    return lines
