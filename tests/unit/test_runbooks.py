"""Every invariant ships a runbook (docs/runbooks/<invariant>.md), which --runbook-url can point alerts at."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tikv_operator.checks.core.catalogue import ENTRIES, INVARIANT_NAMES, Entry

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
INDEX = RUNBOOKS / "README.md"  # the list of runbooks, not one


def test_every_invariant_has_a_runbook_that_says_what_fired_and_what_to_do() -> None:
    for name in INVARIANT_NAMES:
        text = (RUNBOOKS / f"{name}.md").read_text()
        assert text.startswith(f"# {name}\n"), name
        for part in ("**What fired**", "**Check first**", "**Act**"):
            assert part in text, f"{name}: {part}"
    runbooks = [p.stem for p in RUNBOOKS.glob("*.md") if p.name != INDEX.name]
    assert sorted(runbooks) == sorted(INVARIANT_NAMES), "a runbook without invariant"


def test_the_runbook_index_lists_every_runbook_in_the_catalogue_order() -> None:
    # docs/runbooks/README.md: one row per built-in invariant, linking its runbook; its scope as declared.
    rows = re.findall(r"^\| \[(\w+)\]\((\w+)\.md\) \| (\w+) \|", INDEX.read_text(), flags=re.M)
    assert [name for name, _, _ in rows] == list(ENTRIES), "the index must list every runbook, in catalogue order"
    for name, target, scope in rows:
        assert target == name, f"{name}: the index links {target}.md"
        assert scope == ENTRIES[name].scope, f"{name}: the index says {scope}, the catalogue {ENTRIES[name].scope}"


def _spellings(entry: Entry) -> list[str]:
    """The ways a runbook may write the default threshold for a person: 0.1 seconds as "100 ms", a 0.7 ratio
    as "70 %", or the number itself, as in the catalogue."""
    assert entry.threshold is not None
    value = entry.threshold
    spellings = [f"{value:g}"]
    if entry.unit == "seconds":
        spellings += [f"{value * 1000:g} ms"]
    if entry.unit == "ratio":
        spellings += [f"{value * 100:g} %", f"{value * 100:g}%"]
    return spellings


@pytest.mark.parametrize("entry", [e for e in ENTRIES.values() if e.threshold is not None], ids=lambda e: e.name)
def test_a_runbook_states_the_default_threshold_of_the_catalogue(entry: Entry) -> None:
    # "default <value>" and no longer number: "default 0" must not pass for "default 0.2".
    text = " ".join((RUNBOOKS / f"{entry.name}.md").read_text().split())
    found = [s for s in _spellings(entry) if re.search(rf"default {re.escape(s)}(?!\d|\.\d)", text)]
    assert found, f"{entry.name}.md does not say 'default {' or '.join(_spellings(entry))}' ({entry.threshold_text()})"
