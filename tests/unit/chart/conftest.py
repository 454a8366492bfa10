from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart.chart import VALUE_SETS, helm_binary, render


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return helm_binary()


@pytest.fixture(scope="session")
def rendered(helm_bin: str) -> dict[str, list[dict[str, Any]]]:
    """`helm template` of each of VALUE_SETS, by name."""
    return {name: render(helm_bin, values) for name, values in VALUE_SETS.items()}
