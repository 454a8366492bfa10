"""Reading the repository's Dockerfile: its instructions, its stages, what its builder stage copies."""

from __future__ import annotations

import re

from tests.unit.chart.chart import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def builder_copy_sources() -> list[str]:
    """The build-context paths that the builder stage's COPY lines name."""
    sources = []
    for keyword, rest in stages(DOCKERFILE.read_text())[0]:
        if keyword == "COPY":
            sources += [s for s in rest.split()[:-1] if not s.startswith("--")]
    return sources
