from __future__ import annotations

import pytest

from tests.unit.chart.chart import helm_binary


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return helm_binary()
