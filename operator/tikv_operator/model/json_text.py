"""JSON as other programs answer it and as the API server takes it.

Python's json module reads what no JSON peer should send (NaN, Infinity, nesting deep enough to exhaust the
stack: RecursionError) and, writing, emits NaN and Infinity, which Go's decoder (the API server's,
Alertmanager's) refuses. Pure: values in, values out."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def load_json(text: str | bytes | bytearray) -> Any:
    """json.loads, with every way a body can fail to be a JSON value a ValueError (too deep a nesting included),
    so a caller's one `except ValueError` covers a hostile answer."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None
    except UnicodeDecodeError as error:  # a ValueError already; said without the bytes it quotes
        raise ValueError(f"not UTF-8 text ({error.reason})") from None


def spell_number(value: float) -> str:
    """A non-finite number as Prometheus and Go spell it: "NaN", "+Inf", "-Inf"."""
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def finite_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by its spelling (JSON has no NaN or Infinity): what
    json.dumps writes from it is JSON every decoder reads."""
    if isinstance(value, float) and not math.isfinite(value):
        return spell_number(value)
    if isinstance(value, Mapping):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    return value
