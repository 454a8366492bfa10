"""Byte sizes as PD prints them (typeutil.ByteSize, i.e. go-units BytesSize: "%.4g" + binary unit)."""

import re

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_OLD_STYLE = re.compile(r"^\s*([0-9.]+)\s*([KMGTPEZY]?i?B)\s*$", re.IGNORECASE)


def format_size(size_bytes: float) -> str:
    """96.73GiB, 1.636TiB, 292.5MiB, 0B: four significant digits, no space (PD >= 4.0)."""
    size = float(size_bytes)
    unit = 0
    while size >= 1024.0 and unit < len(_BINARY_UNITS) - 1:
        size /= 1024.0
        unit += 1
    # Python's %g follows C, which Go's %g matches for these magnitudes (always < 1024 here).
    return f"{size:.4g}{_BINARY_UNITS[unit]}"


def parse_size(text: str) -> float:
    """Inverse of format_size; also reads the old "937 GiB" form so tests can round-trip either."""
    match = _OLD_STYLE.match(text)
    if match is None:
        raise ValueError(f"not a PD size: {text!r}")
    number, unit = match.groups()
    canonical = {u.lower(): i for i, u in enumerate(_BINARY_UNITS)}
    index = canonical.get(unit.lower())
    if index is None:
        raise ValueError(f"unknown unit in PD size: {text!r}")
    return float(number) * 1024.0**index
