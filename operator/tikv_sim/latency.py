"""The gRPC latency histogram of one TiKV store, shaped so that PromQL returns each type's configured p99.

histogram_quantile() interpolates linearly inside the bucket that holds the 0.99 rank. Each tick
adds a type's observations in a fixed proportion: 1 % of them inside the bucket (lo, hi] that contains
the target, a share t (where target = lo + t * (hi - lo)) of that 1 % above hi and the rest at or
below lo. Then the 0.99 rank lands exactly at t of the way through the bucket, whatever the rate
window, because every window holds a whole number of identical ticks. Types at the same p99 keep the
property when summed; a slow type moves a mixed p99 only once it holds more than about 1 % of requests.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tikv_sim.clock import NS_PER_SECOND
from tikv_sim.grpc_types import Traffic

# tikv/tikv src/server/metrics.rs since v6.3: exponential_buckets(5e-5, 2.0, 22), i.e. 50 us .. 104.86 s.
GRPC_BUCKETS: tuple[float, ...] = tuple(5e-5 * 2**i for i in range(22))

# Observations per weight unit per tick: 1 % of them (100) sit in the target bucket, which gives
# the interpolated p99 a resolution of 1/100 of a bucket whatever the type's weight.
_OBSERVATIONS_PER_WEIGHT = 10_000
_IN_BUCKET_PER_WEIGHT = _OBSERVATIONS_PER_WEIGHT // 100
TICK_NS = NS_PER_SECOND

Child = tuple[str, str]  # (type, priority)


def clamp_p99(p99_seconds: float) -> float:
    """The bucket layout can express targets from the first bound to the last one."""
    return min(max(p99_seconds, GRPC_BUCKETS[0]), GRPC_BUCKETS[-1])


def _bucket_index(seconds: float) -> int:
    """Index of the first bound >= the value; never 0, so a lower bucket always exists for the bulk."""
    target = clamp_p99(seconds)
    return max(1, next(i for i, bound in enumerate(GRPC_BUCKETS) if bound >= target))


def tick_increments(p99_seconds: float, weight: int, bulk_below: float | None = None) -> list[int]:
    """Observations added per tick to each bucket (non-cumulative; the last slot is +Inf).

    The bulk (99 %) goes just under the target's bucket, or under `bulk_below`'s bucket when that is lower.
    """
    target = clamp_p99(p99_seconds)
    index = _bucket_index(target)
    lo, hi = GRPC_BUCKETS[index - 1], GRPC_BUCKETS[index]
    share = (target - lo) / (hi - lo)
    in_bucket = _IN_BUCKET_PER_WEIGHT * weight
    above = round(in_bucket * share)
    below = _OBSERVATIONS_PER_WEIGHT * weight - in_bucket - above
    bulk_slot = index - 1 if bulk_below is None else min(index, _bucket_index(bulk_below)) - 1
    counts = [0] * (len(GRPC_BUCKETS) + 1)
    counts[bulk_slot] += below
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
    """Cumulative counters that grow lazily: advanced to `now` whenever read or reconfigured.

    Only children with traffic have a TypeSeries; every other child is zero for the process' life.
    """

    def __init__(self, traffic: Mapping[str, Traffic], store_p99: float, start_ns: int) -> None:
        self._traffic = dict(traffic)
        self._store_p99 = store_p99
        self._last_tick_ns = start_ns
        self.series: dict[Child, TypeSeries] = {}
        self._increments: dict[Child, tuple[list[int], float]] = {}
        self._recompute()

    @property
    def traffic(self) -> Mapping[str, Traffic]:
        return self._traffic

    def set_traffic(self, name: str, traffic: Traffic, now_ns: int) -> None:
        self.advance(now_ns)
        self._traffic[name] = traffic
        self._recompute()

    def set_store_p99(self, p99_seconds: float, now_ns: int) -> None:
        """The store's ordinary latency, where tail-only types keep their bulk."""
        self.advance(now_ns)
        self._store_p99 = p99_seconds
        self._recompute()

    def _recompute(self) -> None:
        self._increments = {}
        for name, traffic in self._traffic.items():
            if traffic.weight <= 0:
                continue
            child = (name, traffic.priority)
            bulk = self._store_p99 if traffic.tail_only else None
            counts = tick_increments(traffic.p99_seconds, traffic.weight, bulk)
            seconds = sum(count * _representative(bucket) for bucket, count in enumerate(counts))
            self._increments[child] = (counts, seconds)
            self.series.setdefault(child, TypeSeries())

    def advance(self, now_ns: int) -> None:
        ticks = max(0, (now_ns - self._last_tick_ns) // TICK_NS)
        if ticks == 0:
            return
        self._last_tick_ns += ticks * TICK_NS
        for child, (counts, seconds) in self._increments.items():
            self._add(self.series[child], counts, seconds, ticks)

    @staticmethod
    def _add(series: TypeSeries, increments: Sequence[int], seconds: float, ticks: int) -> None:
        for bucket, count in enumerate(increments):
            if count:
                series.buckets[bucket] += count * ticks
                series.total += count * ticks
        series.sum_seconds += seconds * ticks
