"""A request flows as values: no view or HTTP layer leaves state on ``flask.g`` for another
to read, and no code tells answers apart by their response's class (issue 22, item 1)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import reporting_svc

PACKAGE = Path(reporting_svc.__file__).parent


def _trees(*folders: str) -> Iterator[tuple[str, ast.AST]]:
    for folder in folders:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            yield str(path.relative_to(PACKAGE)), ast.parse(path.read_text())


def _uses_g(tree: ast.AST) -> bool:
    imports_g = (
        isinstance(node, ast.ImportFrom)
        and node.module == "flask"
        and any(alias.name == "g" for alias in node.names)
        for node in ast.walk(tree)
    )
    reads_flask_g = (
        isinstance(node, ast.Attribute)
        and node.attr == "g"
        and isinstance(node.value, ast.Name)
        and node.value.id == "flask"
        for node in ast.walk(tree)
    )
    return any(imports_g) or any(reads_flask_g)


def _checks_a_response_class(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            names = {getattr(part, "id", "") for part in ast.walk(node.args[1])}
            if any(name.endswith("Response") for name in names):
                return True
    return False


def test_no_view_or_http_module_reads_or_writes_flask_g() -> None:
    assert [name for name, tree in _trees("api", "http") if _uses_g(tree)] == []


def test_no_module_tells_answers_apart_by_their_response_class() -> None:
    assert [name for name, tree in _trees(".") if _checks_a_response_class(tree)] == []
