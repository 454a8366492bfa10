"""Every invariant ships a runbook (docs/runbooks/<invariant>.md), which --runbook-url can point alerts at."""

from __future__ import annotations

from pathlib import Path

from tikv_operator.core.vocabulary import INVARIANT_NAMES

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"


def test_every_invariant_has_a_runbook_that_says_what_fired_and_what_to_do() -> None:
    for name in INVARIANT_NAMES:
        text = (RUNBOOKS / f"{name}.md").read_text()
        assert text.startswith(f"# {name}\n"), name
        for part in ("**What fired**", "**Check first**", "**Act**"):
            assert part in text, f"{name}: {part}"
    assert sorted(p.stem for p in RUNBOOKS.glob("*.md")) == sorted(INVARIANT_NAMES), "a runbook without invariant"
