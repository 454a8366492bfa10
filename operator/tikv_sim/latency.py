"""The gRPC latency histogram of one TiKV store, shaped so that PromQL returns each type's configured p99.

The shaping is histogram.py's: each type's ticks put 1 % of its observations in the bucket that holds
its p99. Types at the same p99 keep the property when summed; a slow type moves a mixed p99 only once
it holds more than about 1 % of requests.
"""

from collections.abc import Mapping

from tikv_sim import histogram
from tikv_sim.grpc_types import Traffic

# tikv/tikv src/server/metrics.rs since v6.3: exponential_buckets(5e-5, 2.0, 22), i.e. 50 us .. 104.86 s.
GRPC_BUCKETS: tuple[float, ...] = tuple(5e-5 * 2**i for i in range(22))

Child = tuple[str, str]  # (type, priority)


def tick_increments(p99_seconds: float, weight: int, bulk_below: float | None = None) -> list[int]:
    """Observations added per tick to each bucket (non-cumulative; the last slot is +Inf)."""
    return histogram.tick_increments(GRPC_BUCKETS, p99_seconds, weight, bulk_below)


TypeSeries = histogram.Series  # one (type, priority) child's counters; _sum in seconds


class LatencyHistogram:
    """Cumulative counters that grow lazily: advanced to `now` whenever read or reconfigured.

    Only children with traffic have a TypeSeries; every other child is zero for the process' life.
    """

    def __init__(self, traffic: Mapping[str, Traffic], store_p99: float, start_ns: int) -> None:
        self._traffic = dict(traffic)
        self._store_p99 = store_p99
        self._ticks = histogram.Ticks(start_ns)
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
            self._increments[child] = (counts, histogram.increments_sum(GRPC_BUCKETS, counts))
            self.series.setdefault(child, TypeSeries(len(GRPC_BUCKETS) + 1))

    def advance(self, now_ns: int) -> None:
        ticks = self._ticks.take(now_ns)
        if ticks == 0:
            return
        for child, (counts, seconds) in self._increments.items():
            self.series[child].add(counts, seconds, ticks)
