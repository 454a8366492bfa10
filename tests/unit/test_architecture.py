"""The model and every feature's core stay free of I/O; the operator never imports the simulator (pyproject
contracts); no two modules, and no two trees (operator, harness, tests, bench, hack), import each other in a
circle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.import_graph import cycles, import_graph, tree_cycles, tree_of

REPO = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_the_import_graph_sees_every_tree() -> None:
    graph = import_graph(REPO)

    assert {tree_of(module) for module in graph} == {"operator", "harness", "tests", "bench", "hack"}
    assert "machine" in graph["localplatform"]
    assert "harness.kube" in graph["harness.operator_process"]
    assert "bench.common" in graph["bench.run_all"]


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert cycles(import_graph(REPO)) == []


def test_no_trees_import_each_other_in_a_circle() -> None:
    assert tree_cycles(import_graph(REPO)) == []


def test_the_shared_harness_imports_neither_tests_nor_bench() -> None:
    graph = import_graph(REPO)

    for module, targets in graph.items():
        if tree_of(module) in ("harness", "bench"):
            assert not {t for t in targets if tree_of(t) == "tests"}, module
        if tree_of(module) == "harness":
            assert not {t for t in targets if tree_of(t) == "bench"}, module


def test_cycles_are_the_strongly_connected_components() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}

    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]


def test_no_two_modules_of_the_operator_share_a_file_name() -> None:
    names = [path.name for path in (REPO / "operator" / "tikv_operator").rglob("*.py") if path.name != "__init__.py"]

    assert sorted({name for name in names if names.count(name) > 1}) == []
