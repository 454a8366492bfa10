"""Half-open time intervals [start, end) and the few operations the oracle needs (pure)."""

from __future__ import annotations

from collections.abc import Iterable

Span = tuple[float, float]


def union(spans: Iterable[Span]) -> list[Span]:
    """Sorted, merged, empty spans dropped."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def subtract(span: Span, holes: Iterable[Span]) -> list[Span]:
    """The parts of `span` outside every hole."""
    pieces = [span] if span[1] > span[0] else []
    for h_start, h_end in union(holes):
        next_pieces = []
        for start, end in pieces:
            if h_end <= start or h_start >= end:
                next_pieces.append((start, end))
                continue
            if h_start > start:
                next_pieces.append((start, h_start))
            if h_end < end:
                next_pieces.append((h_end, end))
        pieces = next_pieces
    return pieces


def measure_within(span: Span, spans: Iterable[Span]) -> float:
    """How much of `span` the (merged) spans cover."""
    return sum(max(0.0, min(end, span[1]) - max(start, span[0])) for start, end in union(spans))


def covers(spans: Iterable[Span], moment: float) -> bool:
    return any(start <= moment < end for start, end in spans)


def overlaps(spans: Iterable[Span], span: Span) -> bool:
    return any(start < span[1] and span[0] < end for start, end in spans)
