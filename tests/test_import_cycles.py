"""No import cycles among the modules of the three packages, counting the imports a module makes
when it is loaded (module level, outside `if TYPE_CHECKING:`). A function's own import, made
when it runs, does not count: the backends are chosen that way (`domaingate.store.backends`).

An import of `a.b.c` loads the packages `a` and `a.b` first, so it counts as an import of each.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domaingate", "gateway", "reconciler")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def known_modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found[module_name(path)] = path
    # sql/ installs as domaingate.sql (data, no code).
    return found


def _loaded_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements run when the module loads: not in functions, not under TYPE_CHECKING."""
    for node in body:
        if isinstance(node, ast.If):
            test = node.test
            if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            ):
                yield from _loaded_statements(node.orelse)
                continue
            yield from _loaded_statements(node.body)
            yield from _loaded_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _loaded_statements(block)
            for handler in node.handlers:
                yield from _loaded_statements(handler.body)
        elif isinstance(node, ast.ClassDef):
            yield from _loaded_statements(node.body)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _loaded_statements(tree.body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        assert isinstance(node, ast.ImportFrom)
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        targets.add(base)
        # `from package import module` loads the module too.
        targets.update(f"{base}.{alias.name}" for alias in node.names)
    loaded: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for end in range(1, len(parts) + 1):
            candidate = ".".join(parts[:end])
            if candidate in known and candidate != name:
                loaded.add(candidate)
    return loaded


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in sorted(graph[node]):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
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
    return found


def test_the_graph_sees_the_imports() -> None:
    known = known_modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert "domaingate.store.abc" in graph["domaingate.store.domains"]
    # A package's module loads the package first.
    assert "domaingate.store" in graph["domaingate.store.sqlite.database"]
    # Chosen when opened, not when loaded.
    assert "domaingate.store.sqlite.database" not in graph["domaingate.store.backends"]


def test_no_import_cycles() -> None:
    known = known_modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert cycles(graph) == []


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
