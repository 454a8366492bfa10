"""Pure helpers for the benchmarks' figures: percentiles, histogram quantiles, Prometheus text parsing."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default).
    NaN for no values."""
    data = sorted(values)
    if not data:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    position = (len(data) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    p50: float
    p99: float
    minimum: float
    maximum: float


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    return Summary(len(values), sum(values) / len(values), percentile(values, 50), percentile(values, 99),
                   min(values), max(values))


Buckets = list[tuple[float, float]]  # (upper bound `le`, cumulative count), sorted by bound, +Inf last


def histogram_quantile(q: float, buckets: Buckets) -> float:
    """Prometheus' histogram_quantile (q in 0..1) over cumulative buckets: linear interpolation inside the
    bucket that holds the rank; the lower bound of the first bucket is 0; a rank in the +Inf bucket gives
    the highest finite bound. NaN without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    if not math.isinf(buckets[-1][0]):
        raise ValueError("the last bucket must be +Inf")
    total = buckets[-1][1]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return previous_bound


def fraction_at_most(bound: float, buckets: Buckets) -> float:
    """Share of observations <= `bound` (which must be one of the bucket bounds)."""
    total = buckets[-1][1] if buckets else 0.0
    for le, count in buckets:
        if le == bound:
            return count / total if total else math.nan
    raise ValueError(f"{bound} is not a bucket bound")


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric `name` in Prometheus text exposition: (labels, value)."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group("name") != name:
            continue
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        out.append((labels, float(match.group("value"))))
    return out


def histogram_buckets(text: str, name: str) -> Buckets:
    """Cumulative buckets of histogram `name` (summed over its other labels) from exposition text."""
    sums: dict[float, float] = {}
    for labels, value in parse_samples(text, f"{name}_bucket"):
        bound = math.inf if labels["le"] in ("+Inf", "Inf") else float(labels["le"])
        sums[bound] = sums.get(bound, 0.0) + value
    return sorted(sums.items())


def bucket_delta(after: Buckets, before: Buckets) -> Buckets:
    """Observations between two scrapes of the same cumulative histogram."""
    earlier: Mapping[float, float] = dict(before)
    return [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]


def fmt(value: float, digits: int = 3) -> str:
    """A figure for a table: NaN as "n/a", otherwise `digits` significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"
