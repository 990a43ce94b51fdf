"""Every tsdiff module imports, and tsdiff's modules import each other without cycles.

Two graphs of tsdiff's modules, each with an edge ``a -> b`` when module ``a`` imports tsdiff
module ``b``: one with the imports that run when ``a`` is imported (module level, ``if`` /
``try`` blocks included), one with the deferred imports inside functions and classes too (an
import moved into a function hides a cycle from Python, not from the design). ``from tsdiff.x
import y`` is an edge to ``tsdiff.x.y`` when that is a module, else to ``tsdiff.x``. Parent
packages, which Python also runs on import, are not edges: a package's ``__init__`` importing its
own submodules is not a cycle.

No cycle is allowed among module-level imports; the cycles through deferred imports that are
not broken yet are listed in :data:`KNOWN`.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tsdiff"

#: Cycles through deferred imports (strongly connected components) not broken yet, each as the
#: sorted tuple of its modules. A cycle not listed here fails the test; a listed one that is gone
#: fails it too, so the list only shrinks.
KNOWN: set[tuple[str, ...]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _top_level(tree: ast.Module):
    """Statements that run when the module is imported (not function or class bodies)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            stack.extend(getattr(node, field, []) or [])


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    """``{module: tsdiff modules it imports at module level}`` (``deferred``: anywhere in it)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree) if deferred else _top_level(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == {("a", "b", "c")}
    assert cycles({"a": {"b"}, "b": set()}) == set()


def test_the_graphs_read_module_level_and_deferred_imports():
    graph, everything = import_graph(), import_graph(deferred=True)
    assert "tsdiff.training.module" in graph["tsdiff.training.engine"]
    assert "tsdiff.data.scalers" in graph["tsdiff.training.module"]
    assert "tsdiff.api.settings" in graph["tsdiff.api.building"]  # from tsdiff.api.settings import ...
    assert "tsdiff.api.fitting" in graph["tsdiff.api.forecaster"]  # from tsdiff.api import fitting
    # tsdiff.api.building imports the engine inside a function only
    assert "tsdiff.training.engine" not in graph["tsdiff.api.building"]
    assert "tsdiff.training.engine" in everything["tsdiff.api.building"]
    assert all(graph[m] <= everything[m] for m in graph)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_module_imports(name):
    importlib.import_module(name)


def test_no_import_cycle_among_module_level_imports():
    assert cycles(import_graph()) == set()


def test_no_new_import_cycle_through_deferred_imports():
    found = cycles(import_graph(deferred=True))
    assert found - KNOWN == set(), f"new import cycle(s) among tsdiff's modules: {sorted(found - KNOWN)}"
    assert KNOWN - found == set(), f"cycle(s) broken: remove them from KNOWN: {sorted(KNOWN - found)}"
