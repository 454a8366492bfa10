"""The one skeleton of the benchmarks on the platform: the platform comes down whatever the block does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bench import runner


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    platform: Any = object()
    monkeypatch.setattr(runner, "start", lambda name: seen.append(f"start {name}") or datetime(2026, 1, 1, tzinfo=UTC))
    monkeypatch.setattr(runner, "platform_up", lambda: seen.append("up") or platform)
    monkeypatch.setattr(runner, "platform_down", lambda p: seen.append("down" if p is platform else "down?"))
    return seen


def test_a_benchmark_runs_between_up_and_down(calls: list[str]) -> None:
    with runner.benchmark("scale", None) as run:
        calls.append("measure")

    assert calls == ["start scale", "up", "measure", "down"]
    assert (run.name, run.argv, run.started) == ("scale", [], datetime(2026, 1, 1, tzinfo=UTC))


def test_the_platform_comes_down_when_the_measurement_fails(calls: list[str]) -> None:
    with pytest.raises(RuntimeError, match="boom"), runner.benchmark("failover", ["--handovers", "2"]):
        raise RuntimeError("boom")

    assert calls == ["start failover", "up", "down"]


def test_publish_prints_and_stores_the_section(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    stored: dict[str, str] = {}
    monkeypatch.setattr(runner, "write_section", lambda name, markdown: stored.setdefault(name, markdown))

    assert runner.publish("query_cost", "## 5. figures") == "## 5. figures"
    assert stored == {"query_cost": "## 5. figures"}
    assert capsys.readouterr().out == "## 5. figures\n"
