"""Just enough of Prometheus' evaluation to check what PromQL will compute from the simulator's series."""

import math
from collections import defaultdict
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Series:
    """Every sample of a /metrics page, keyed by (sample name, sorted labels)."""
    text = httpx.get(url, timeout=5).text
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def bucket_increase_by_le(
    before: Series, after: Series, name: str, where: Callable[[dict[str, str]], bool] | None = None
) -> dict[float, float]:
    """sum by (le) (increase(name_bucket{where}[window])); every `type`, kv_gc included, by default."""
    total: dict[float, float] = defaultdict(float)
    for (sample, labels), value in after.items():
        if sample != f"{name}_bucket" or (where is not None and not where(dict(labels))):
            continue
        le = float(dict(labels)["le"])
        total[le] += value - before.get((sample, labels), 0.0)
    return dict(total)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' bucketQuantile: linear interpolation inside the bucket holding the rank."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][0] != math.inf or ordered[-1][1] == 0:
        return math.nan
    rank = q * ordered[-1][1]
    index = next(i for i, (_, count) in enumerate(ordered) if count >= rank)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    start = 0.0 if index == 0 else ordered[index - 1][0]
    below = 0.0 if index == 0 else ordered[index - 1][1]
    end, count = ordered[index]
    return start + (end - start) * (rank - below) / (count - below)
