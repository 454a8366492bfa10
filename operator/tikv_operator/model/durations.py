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
# The longest duration the operator takes: a year. No period, window, timeout or retention of a health check
# means more, and it keeps every moment worked out from one (now + a grace period, a check's next start) far
# from what datetime and the event loop's timers hold: 99999999999999h overflowed them and crashed the
# cluster's daemon on every turn.
MAX_DURATION = timedelta(hours=8760)
# The same bound as the API server can check it without CEL: a spelling of at most 14 characters, which
# holds the longest natural ones ("2h45m30s500ms", "8759h59m59.99s") and refuses 99999999999999h ("should be
# at most 14 chars long"); a shorter spelling beyond a year ("9999h") is refused by the operator, named in
# the spec's status.
DURATION_MAX_LENGTH = 14


@lru_cache(maxsize=1024)  # every cluster's spec spells the same few durations
def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration (no sign, no days: Kubernetes users write 24h)."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration like 30s, 1m30s, 500ms or 24h")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
    # Compared as a float before it becomes a timedelta, which overflows (OverflowError, no ValueError).
    if not seconds <= MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than {format_duration(MAX_DURATION)} (a year), the longest duration "
                         "the operator takes")
    return timedelta(seconds=seconds)


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


# A duration of at least one second, as a pattern the API server can check without CEL (Kubernetes 1.20):
# some part is a whole number of seconds, minutes or hours above zero, or 1000ms and more. It refuses a
# few spellings of a second or more ("0.5m"); people write 30s.
_ANY_PART = r"[0-9]+(\.[0-9]+)?(ms|s|m|h)"
_SECOND_OR_MORE_PART = r"(0*[1-9][0-9]*(\.[0-9]+)?(s|m|h)|0*[1-9][0-9]{3,}(\.[0-9]+)?ms)"
AT_LEAST_A_SECOND_PATTERN = rf"^({_ANY_PART})*{_SECOND_OR_MORE_PART}({_ANY_PART})*$"


def _check_at_least_a_second(text: str) -> str:
    if parse_duration(text) < timedelta(seconds=1):
        raise ValueError(f"{text!r} is shorter than 1s")
    return text


Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=DURATION_MAX_LENGTH, examples=["30s", "1m30s", "24h"]),
    AfterValidator(_check),
]

AtLeastASecond = Annotated[
    str,
    Field(pattern=AT_LEAST_A_SECOND_PATTERN, max_length=DURATION_MAX_LENGTH, examples=["30s", "1m"]),
    AfterValidator(_check_at_least_a_second),
]
"""A period that drives requests (a check, a write): zero would be a hot loop against PD, Prometheus and the
API server."""
