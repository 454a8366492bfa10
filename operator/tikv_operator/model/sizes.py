"""PD's human-readable sizes: "96.73GiB" (PD today), "937 GiB" (old PD), "0B" (a Down store)."""

from __future__ import annotations

import math
import re

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
    "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
    "p": 1 << 50, "pb": 1 << 50, "pib": 1 << 50,
    "e": 1 << 60, "eb": 1 << 60, "eib": 1 << 60,
}
# PD formats with go-units' BytesSize, which is binary whatever the suffix says ("KB" from very old PDs
# means KiB too), so every unit here is a power of 1024.
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int | float) -> int:
    """Bytes of a PD size string; raises ValueError on anything else."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a size")
    if isinstance(text, int):
        return text
    if isinstance(text, float):
        if not math.isfinite(text):  # PD's JSON may hold NaN or Infinity: no size at all
            raise ValueError(f"{text!r} is not a size")
        return int(text)
    if not isinstance(text, str):
        raise ValueError(f"{type(text).__name__} is not a size")
    match = _SIZE.match(text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size like 96.73GiB or 937 GiB")
    number = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(number):  # "1e999GiB"
        raise ValueError(f"{text!r} is too large a size")
    return round(number)
