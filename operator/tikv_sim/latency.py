"""The gRPC latency histogram of one TiKV store, shaped so that PromQL returns the configured p99.

histogram_quantile() interpolates linearly inside the bucket that holds the 0.99 rank. Each tick
adds observations in a fixed proportion: 1 % of them inside the bucket (lo, hi] that contains the
target, a share t (where target = lo + t * (hi - lo)) of that 1 % above hi and the rest below lo.
Then the 0.99 rank lands exactly at t of the way through the bucket, whatever the rate window,
because every window holds a whole number of identical ticks.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from tikv_sim.clock import NS_PER_SECOND

# tikv/tikv src/server/metrics.rs: exponential_buckets(0.0005, 2.0, 20), i.e. 0.5 ms .. 262 s.
GRPC_BUCKETS: tuple[float, ...] = tuple(0.0005 * 2**i for i in range(20))

# Relative request volume per gRPC message type. kv_gc is there so that queries which forget to
# exclude it still see the same p99 (every type shares the one shape).
GRPC_TYPE_WEIGHTS: dict[str, int] = {
    "kv_get": 4,
    "kv_batch_get": 2,
    "kv_prewrite": 2,
    "kv_commit": 2,
    "coprocessor": 3,
    "kv_gc": 1,
}

# Observations per weight unit per tick: 1 % of them (100) sit in the target bucket, which gives
# the interpolated p99 a resolution of 1/100 of a bucket per weight unit.
_OBSERVATIONS_PER_WEIGHT = 10_000
_IN_BUCKET_PER_WEIGHT = _OBSERVATIONS_PER_WEIGHT // 100
TICK_NS = NS_PER_SECOND


def clamp_p99(p99_seconds: float) -> float:
    """The bucket layout can express targets from the first bound to the last one."""
    return min(max(p99_seconds, GRPC_BUCKETS[0]), GRPC_BUCKETS[-1])


def tick_increments(p99_seconds: float, weight: int) -> list[int]:
    """Observations added per tick to each bucket (non-cumulative; last slot is +Inf)."""
    target = clamp_p99(p99_seconds)
    # Index of the first bound >= target; never 0, so a lower bucket always exists for the bulk.
    index = next(i for i, bound in enumerate(GRPC_BUCKETS) if bound >= target)
    index = max(index, 1)
    lo, hi = GRPC_BUCKETS[index - 1], GRPC_BUCKETS[index]
    share = (target - lo) / (hi - lo)
    in_bucket = _IN_BUCKET_PER_WEIGHT * weight
    above = round(in_bucket * share)
    below = _OBSERVATIONS_PER_WEIGHT * weight - in_bucket - above
    counts = [0] * (len(GRPC_BUCKETS) + 1)
    counts[index - 1] += below
    counts[index] += in_bucket
    counts[index + 1] += above
    return counts


def _representative(bucket: int) -> float:
    """A value inside each bucket, for _sum (the quantile does not depend on it)."""
    if bucket == 0:
        return GRPC_BUCKETS[0] / 2
    if bucket >= len(GRPC_BUCKETS):
        return GRPC_BUCKETS[-1]
    return (GRPC_BUCKETS[bucket - 1] + GRPC_BUCKETS[bucket]) / 2


@dataclass
class TypeSeries:
    buckets: list[float] = field(default_factory=lambda: [0.0] * (len(GRPC_BUCKETS) + 1))
    total: float = 0.0
    sum_seconds: float = 0.0

    def cumulative(self) -> list[float]:
        running = 0.0
        out = []
        for count in self.buckets:
            running += count
            out.append(running)
        return out


class LatencyHistogram:
    """Cumulative counters that grow lazily: advanced to `now` whenever read or reconfigured."""

    def __init__(self, p99_seconds: float, start_ns: int) -> None:
        self._p99 = p99_seconds
        self._last_tick_ns = start_ns
        self.series: dict[str, TypeSeries] = {name: TypeSeries() for name in GRPC_TYPE_WEIGHTS}

    @property
    def p99_seconds(self) -> float:
        return self._p99

    def set_p99(self, p99_seconds: float, now_ns: int) -> None:
        self.advance(now_ns)
        self._p99 = p99_seconds

    def advance(self, now_ns: int) -> None:
        ticks = max(0, (now_ns - self._last_tick_ns) // TICK_NS)
        if ticks == 0:
            return
        self._last_tick_ns += ticks * TICK_NS
        for name, weight in GRPC_TYPE_WEIGHTS.items():
            self._add(self.series[name], tick_increments(self._p99, weight), ticks)

    @staticmethod
    def _add(series: TypeSeries, increments: Sequence[int], ticks: int) -> None:
        for bucket, count in enumerate(increments):
            if count:
                series.buckets[bucket] += count * ticks
                series.total += count * ticks
                series.sum_seconds += count * ticks * _representative(bucket)
