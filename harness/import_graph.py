"""The import graph of the repository's own Python modules, and the cycles in it.

A module is named as it is imported: `tikv_operator.x` and `tikv_sim.x` (under operator/), `tests.x`, `bench.x`,
`harness.x`, and hack's scripts by their file name (`localplatform`: hack/ is their sys.path). Every import
counts, also the ones inside functions (a deferred import still ties the two modules together), except those
under `if TYPE_CHECKING:`, which only annotations see."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

# Where each tree's modules are found, and the package prefix their names start with there.
ROOTS: tuple[tuple[str, str], ...] = (
    ("operator", ""), (".", "tests"), (".", "bench"), (".", "harness"), ("hack", ""),
)


def module_names(repo: Path) -> dict[str, Path]:
    """Every module of the repository by its import name."""
    modules: dict[str, Path] = {}
    for base, package in ROOTS:
        root = repo / base
        top = root / package if package else root
        for path in sorted(top.rglob("*.py")):
            if any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(repo).parts):
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if base == "hack" and len(parts) > 1:
                continue  # hack/lib/*.py are scripts run on their own, never imported
            if parts[-1] == "__init__":
                parts.pop()
            if parts:
                modules[".".join(parts)] = path
    return modules


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """ast.walk without the bodies of `if TYPE_CHECKING:`."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))


def _imported(tree: ast.AST, name: str, is_package: bool) -> Iterator[str]:
    package = name if is_package else name.rpartition(".")[0]
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(repo: Path) -> dict[str, set[str]]:
    """module -> the repository's modules it imports (a package's __init__ counts for `from pkg import x`)."""
    modules = module_names(repo)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = {target for target in _imported(tree, name, path.name == "__init__.py") if target in modules}
        graph[name] = targets - {name}
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found, key=lambda c: (-len(c), c))


def tree_of(module: str) -> str:
    """The tree a module belongs to: operator, tests, bench, harness or hack."""
    top = module.split(".")[0]
    if top in ("tikv_operator", "tikv_sim"):
        return "operator"
    return top if top in ("tests", "bench", "harness") else "hack"


def tree_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Cycles between the trees themselves (bench imports tests while tests import bench, ...)."""
    trees: dict[str, set[str]] = {}
    for module, targets in graph.items():
        trees.setdefault(tree_of(module), set()).update(tree_of(t) for t in targets if tree_of(t) != tree_of(module))
    return cycles(trees)


if __name__ == "__main__":
    repo = Path(__file__).resolve().parents[1]
    graph = import_graph(repo)
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports")
    for component in cycles(graph):
        print("module cycle:", " <-> ".join(component))
    for component in tree_cycles(graph):
        print("tree cycle:", " <-> ".join(component))
