"""Prometheus text exposition format helpers, printing numbers as TiKV's (Rust) and PD's (Go) clients do."""

from collections.abc import Iterable
from decimal import Decimal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[dict[str, str], float]


def prometheus_number(value: float) -> str:
    """Whole floats print without a decimal point, and never in e-notation here."""
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer() and abs(value) < 1e17:
        return str(int(value))
    return format(Decimal(repr(float(value))).normalize(), "f")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels_text(labels)} {prometheus_number(value)}" for labels, value in samples]
    return lines
