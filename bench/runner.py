"""The skeleton every benchmark on the platform shares: mark the start, bring the platform up (or use the
running one), measure, bring it down whatever happens (only if this run brought it up), then print the
section and store it in RESULTS.md."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from bench.common import Platform, platform_down, platform_up, start, write_section


@dataclass(frozen=True)
class Run:
    """One benchmark's run: its name (the module's, the section's), arguments, start and platform."""

    name: str
    argv: list[str]
    started: datetime
    platform: Platform


@contextlib.contextmanager
def on_platform() -> Iterator[Platform]:
    """The platform for the block; down afterwards if the block brought it up, also when the block fails."""
    platform = platform_up()
    try:
        yield platform
    finally:
        platform_down(platform)


@contextlib.contextmanager
def benchmark(name: str, argv: list[str] | None) -> Iterator[Run]:
    """A benchmark's measurement on the platform; render and `publish` after the block, the platform down."""
    started = start(name)
    with on_platform() as platform:
        yield Run(name, list(argv or []), started, platform)


def publish(name: str, markdown: str) -> str:
    """Print a benchmark's section and store it (bench/results/NAME.md, then RESULTS.md)."""
    print(markdown, flush=True)
    write_section(name, markdown)
    return markdown
