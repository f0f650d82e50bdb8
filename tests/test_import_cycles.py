"""The package's modules and subpackages import one another one way: no import cycle.

Packages depend one way (docs/development.md): no cycle among modules, and none among the
package's parts (``settings``, ``http``, ``storage``, ``logs``... each counted as one), where
``settings`` importing ``http/client_address.py`` while ``http/delivery.py`` imports
``settings`` was one.

Module-level imports of reporting_svc's own modules are read from the source, as grimp
(import-linter's graph) reads them: imports inside functions and under ``if TYPE_CHECKING:``
run later or never, so they close no cycle at import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import reporting_svc

ROOT = Path(reporting_svc.__file__).parent
PACKAGE = "reporting_svc"


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: not in a function, not TYPE_CHECKING's."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try) and not is_type_checking(node):
            pending.extend(ast.iter_child_nodes(node))  # type: ignore[arg-type]


def imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The package's own modules ``node`` imports: ``from a import b`` imports module ``a.b``
    when there is one, else ``a`` (a package's ``__init__`` runs first either way, as Python
    finishes it before a submodule, so it closes no cycle of its own)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & known
    base = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    module = node.module or ""
    base = f"{base}.{module}".strip(".") if node.level else module
    found = {f"{base}.{alias.name}" for alias in node.names} & known
    return found if len(found) == len(node.names) else found | ({base} & known)


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    known = set(paths)
    graph = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set().union(
            *(imported(name, path, node, known) for node in top_level_imports(tree))
        ) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while stack[-1] != node:
                group.append(stack.pop())
            group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def parts_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph of the package's parts: each top-level module or subpackage is one node."""
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        part = part_of(module)
        parts.setdefault(part, set()).update(part_of(target) for target in targets)
        parts[part].discard(part)
    return parts


def part_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_the_graph_sees_relative_and_absolute_imports() -> None:
    graph = import_graph()

    assert "reporting_svc.settings.model" in graph["reporting_svc.settings.loading"]
    assert "reporting_svc.settings" in graph["reporting_svc.cli"]


def test_no_module_of_the_package_imports_itself_back() -> None:
    assert cycles(import_graph()) == []


def test_no_part_of_the_package_imports_itself_back() -> None:
    assert cycles(parts_graph(import_graph())) == []
