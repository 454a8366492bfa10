"""The tables the docs derive from the invariant declarations (docs/invariants.md's table of built-in invariants,
the runbook index) are what the declarations give: a default changed in the code and not in the docs fails here
instead of misleading a reader. `hack/gen-docs` rewrites them."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness.catalogue_docs import GENERATED, INVARIANT_HEADER, invariant_table, regenerate, render

from tikv_operator.checks.core.catalogue import ENTRIES

REPO = Path(__file__).resolve().parents[2]
INVARIANTS_PAGE = REPO / "docs" / "invariants.md"


def _page_table() -> str:
    lines = INVARIANTS_PAGE.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line == INVARIANT_HEADER]
    assert len(starts) == 1, f"docs/invariants.md must hold the invariant table once (header {INVARIANT_HEADER!r})"
    table = []
    for line in lines[starts[0]:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return "\n".join(table)


def test_the_docs_invariant_table_is_the_catalogue() -> None:
    expected, actual = invariant_table(), _page_table()
    missing = [row for row in expected.splitlines() if row not in actual.splitlines()]
    extra = [row for row in actual.splitlines() if row not in expected.splitlines()]
    assert actual == expected, (
        "docs/invariants.md's invariant table differs from the declarations; run hack/gen-docs.\n"
        f"rows the page lacks: {missing}\nrows the catalogue lacks: {extra}"
    )


def test_the_table_has_one_row_per_built_in_invariant() -> None:
    rows = invariant_table().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{name}`" for name in ENTRIES]


@pytest.mark.parametrize("page", list(GENERATED))
def test_every_generated_table_is_what_the_declarations_give(page: str) -> None:
    text = (REPO / page).read_text()
    assert render(text, GENERATED[page]) == text, f"{page} differs from the invariant declarations: run hack/gen-docs"


def test_gen_docs_rewrites_a_table_edited_by_hand(tmp_path: Path) -> None:
    for page in GENERATED:
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / page).write_text((REPO / page).read_text())
    stale = tmp_path / "docs" / "invariants.md"
    stale.write_text(stale.read_text().replace("| `store_down` | store |", "| `store_down` | cluster |"))
    assert regenerate(tmp_path) == ["docs/invariants.md"]
    assert stale.read_text() == INVARIANTS_PAGE.read_text()
    assert regenerate(tmp_path) == []
