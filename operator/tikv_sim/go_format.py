"""Values rendered the way Go's encoding/json and time package render them, since PD is written in Go."""

from datetime import UTC, datetime
from typing import Any

from tikv_sim.clock import NS_PER_SECOND

_NS_PER_US = 1_000
_NS_PER_MS = 1_000_000


def _frac(value: int, precision: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction digits of value / 10**precision, trailing zeros dropped."""
    digits = ""
    printed = False
    for _ in range(precision):
        digit = value % 10
        printed = printed or digit != 0
        if printed:
            digits = str(digit) + digits
        value //= 10
    return ("." + digits if printed else ""), value


def go_duration(ns: int) -> str:
    """time.Duration.String(): "8h20m0.12s", "1m30s", "1.5ms", "0s" (PD's store uptime)."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < NS_PER_SECOND:
        if u < _NS_PER_US:
            precision, unit = 0, "ns"
        elif u < _NS_PER_MS:
            precision, unit = 3, "µs"
        else:
            precision, unit = 6, "ms"
        frac, whole = _frac(u, precision)
        return f"{sign}{whole}{frac}{unit}"
    frac, seconds = _frac(u, 9)
    text = f"{seconds % 60}{frac}s"
    minutes = seconds // 60
    if minutes > 0:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours > 0:
            text = f"{hours}h{text}"
    return sign + text


def rfc3339_nano(ns: int) -> str:
    """time.Time in JSON (RFC3339Nano; UTC, as PD runs in containers): no trailing zeros in the fraction."""
    seconds, rest = divmod(ns, NS_PER_SECOND)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{rest:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def go_float(value: float) -> float | int:
    """Go prints float64 16 as `16`, Python json prints `16.0`: hand json an int when the value is whole."""
    return int(value) if float(value).is_integer() else value


def omit_empty(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Drop the named fields when they hold Go's zero value, as `json:",omitempty"` does."""
    return {k: v for k, v in fields.items() if k not in names or v not in (0, 0.0, False, "", None, [], {})}
