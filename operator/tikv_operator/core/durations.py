"""Durations as people write them in Kubernetes resources: "30s", "1m30s", "500ms", "24h"."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, Field

# The same grammar in the CRD schema (pattern) and here, so the API server and the operator agree.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@lru_cache(maxsize=1024)  # every check re-validates its spec: the same few strings, parsed once
def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration (no sign, no days: Kubernetes users write 24h)."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration like 30s, 1m30s, 500ms or 24h")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text)))


def format_duration(value: timedelta) -> str:
    """The shortest Go-style spelling of a duration: 90s -> "1m30s", 0.5s -> "500ms"."""
    millis = round(value.total_seconds() * 1000)
    if millis % 1000:
        return f"{millis}ms"
    seconds = millis // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")
    return text or "0s"


def _check(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, examples=["30s", "1m30s", "24h"]),
    AfterValidator(_check),
]
