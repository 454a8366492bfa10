"""Scenario files: YAML timelines of faults, played against a simulator for demos and tests.

- at: 5s
  fault: stop-store
  store: 1
- at: 1m
  fault: pd
  mode: unreachable

The mapping form, {"steps": [...]}, may also say `cascade: true` (or false): a `cascade on` (off) step at 0 s
first, so one fault sets off what PD and TiKV do next (tikv_sim.cascade).
"""

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import yaml  # type: ignore[import-untyped]  # no stubs in the locked dev tools

from tikv_sim.faults import Fault, FaultError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_STEPS = 10_000


def parse_duration(value: Any) -> float:
    """Go-style durations ("5s", "1m30s", "250ms") or plain numbers of seconds."""
    if isinstance(value, bool):
        raise FaultError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        parts = _DURATION_PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise FaultError(f"not a duration: {value!r} (write 5s, 1m30s, 250ms or a number of seconds)")
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds < 0:
        raise FaultError(f"a step cannot happen before the start: {value!r}")
    return seconds


@dataclass(frozen=True)
class Step:
    at_seconds: float
    fault: Fault


def parse_scenario(text: str) -> list[Step]:
    """A YAML list of steps, or a mapping with a `steps` list. Steps play in the order of `at`."""
    document = yaml.safe_load(text)
    raw_steps = document.get("steps") if isinstance(document, dict) else document
    if not isinstance(raw_steps, list):
        raise FaultError("a scenario is a list of steps (or a mapping with a `steps` list)")
    if len(raw_steps) > MAX_STEPS:
        raise FaultError(f"a scenario holds at most {MAX_STEPS} steps")
    steps = []
    switch = document.get("cascade") if isinstance(document, dict) else None
    if switch is not None:
        if not isinstance(switch, bool):
            raise FaultError(f"cascade is true or false, not {switch!r}")
        mode = "on" if switch else "off"
        steps.append(Step(at_seconds=0.0, fault=Fault.from_mapping({"fault": "cascade", "mode": mode})))
    for number, raw in enumerate(raw_steps, start=1):
        if not isinstance(raw, dict) or "at" not in raw:
            raise FaultError(f"step {number}: each step needs `at` and `fault`")
        try:
            fault = Fault.from_mapping({k: v for k, v in raw.items() if k != "at"})
            steps.append(Step(at_seconds=parse_duration(raw["at"]), fault=fault))
        except FaultError as error:
            raise FaultError(f"step {number}: {error}") from None
    return sorted(steps, key=lambda step: step.at_seconds)  # stable: equal times keep file order


async def play(
    steps: list[Step],
    apply: Callable[[Fault], Awaitable[Any]],
    sleep: Callable[[float], Awaitable[Any]],
    elapsed: Callable[[], float],
    on_step: Callable[[Step], None] | None = None,
) -> None:
    """Apply each step when `elapsed()` (seconds since the start) reaches its `at`."""
    for step in steps:
        wait = step.at_seconds - elapsed()
        if wait > 0:
            await sleep(wait)
        await apply(step.fault)
        if on_step is not None:
            on_step(step)
