"""The table of built-in invariants in docs/invariants.md is the catalogue's (checks.core.catalogue.ENTRIES), rendered
here: a default changed in the code and not in the docs fails this test instead of misleading a reader.

After changing the catalogue, print the table to paste into docs/invariants.md:
    .venv/bin/python -c "from tests.unit.test_readme_catalogue import render_table; print(render_table())"
"""

from __future__ import annotations

from pathlib import Path

from tikv_operator.checks.core.catalogue import ENTRIES, Entry
from tikv_operator.model.durations import format_duration

INVARIANTS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "invariants.md"
HEADER = "| invariant | scope | source | rule | default threshold | grace | severity | window |"


def _cell(text: str) -> str:
    # A bare | would split the cell; no rule has one today, but a future one must not break the table.
    return text.replace("|", "\\|")


def render_row(e: Entry) -> str:
    cells = (f"`{e.name}`", e.scope, e.source_text, e.rule, e.threshold_text(), format_duration(e.grace_period),
             e.severity, e.window_text())
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def render_table() -> str:
    separator = "|" + "---|" * HEADER.count(" | ") + "---|"
    return "\n".join([HEADER, separator, *(render_row(e) for e in ENTRIES.values())])


def _page_table() -> str:
    lines = INVARIANTS_PAGE.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line == HEADER]
    assert len(starts) == 1, f"docs/invariants.md must hold the invariant table once (header {HEADER!r})"
    table = []
    for line in lines[starts[0]:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return "\n".join(table)


def test_the_docs_invariant_table_is_the_catalogue() -> None:
    expected, actual = render_table(), _page_table()
    missing = [row for row in expected.splitlines() if row not in actual.splitlines()]
    extra = [row for row in actual.splitlines() if row not in expected.splitlines()]
    assert actual == expected, (
        "docs/invariants.md's invariant table differs from checks.core.catalogue; paste render_table()'s output "
        "into it.\n"
        f"rows the page lacks: {missing}\nrows the catalogue lacks: {extra}"
    )


def test_the_table_has_one_row_per_built_in_invariant() -> None:
    rows = render_table().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{name}`" for name in ENTRIES]
