"""The text of `tikv_grpc_msg_duration_seconds`, the largest family a store exports (about 4.6k bucket series).

Children without traffic stay zero for a process' life, so their text is built once and reused: a scrape
only formats the dozen children that carry requests.
"""

from functools import cache

from tikv_sim.exposition import prometheus_number
from tikv_sim.grpc_types import exported_children, exported_set_of
from tikv_sim.latency import GRPC_BUCKETS, Child, LatencyHistogram, TypeSeries

NAME = "tikv_grpc_msg_duration_seconds"
_BOUNDS: tuple[str, ...] = (*(prometheus_number(b) for b in GRPC_BUCKETS), "+Inf")


def _labels(child: Child) -> str:
    # rust-prometheus sorts label pairs by name, and puts `le` last on buckets.
    msg_type, priority = child
    return f'priority="{priority}",type="{msg_type}"'


@cache
def _zero_child(child: Child) -> str:
    labels = _labels(child)
    lines = [f'{NAME}_bucket{{{labels},le="{bound}"}} 0' for bound in _BOUNDS]
    lines += [f"{NAME}_sum{{{labels}}} 0", f"{NAME}_count{{{labels}}} 0"]
    return "\n".join(lines)


def _child(child: Child, series: TypeSeries) -> str:
    labels = _labels(child)
    lines = [
        f'{NAME}_bucket{{{labels},le="{bound}"}} {prometheus_number(count)}'
        for bound, count in zip(_BOUNDS, series.cumulative(), strict=True)
    ]
    lines.append(f"{NAME}_sum{{{labels}}} {prometheus_number(round(series.sum_value, 6))}")
    lines.append(f"{NAME}_count{{{labels}}} {prometheus_number(series.total)}")
    return "\n".join(lines)


def render(histogram: LatencyHistogram, now_ns: int, profile: str = "full") -> str:
    """The family's text without a trailing newline; `profile` is "full" or "lean" (grpc_types)."""
    histogram.advance(now_ns)
    exported = exported_children(profile)
    exported_set = exported_set_of(profile)
    chunks = [f"# HELP {NAME} Bucketed histogram of grpc server messages", f"# TYPE {NAME} histogram"]
    for child in exported:
        series = histogram.series.get(child)
        chunks.append(_zero_child(child) if series is None else _child(child, series))
    # A child with traffic always shows, even one the lean profile leaves out.
    extra = sorted(child for child in histogram.series if child not in exported_set)
    chunks += [_child(child, histogram.series[child]) for child in extra]
    return "\n".join(chunks)
