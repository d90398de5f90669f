"""No import circles in src/hubbub (issue 14), type-checking-only and lazy imports included.

A circle means two modules cannot be understood, tested or changed apart; an
import under ``if TYPE_CHECKING:`` or inside a function still ties them, so it
counts too. The graph is read from the source with :mod:`ast`, nothing is
imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the hubbub modules it imports (a package's ``__init__`` is the package)."""
    files = {_module_name(p): p for p in (SRC / "hubbub").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in files)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    # "from pkg import module" imports the module.
                    sub = f"{target}.{alias.name}"
                    if sub in files:
                        edges.add(sub)
                    elif target in files:
                        edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_package_init_edge(a: str, b: str) -> bool:
    # A package's __init__ re-exports its modules: that edge is not a circle
    # of the design, as long as the modules do not import the package back.
    return b.startswith(a + ".")


def test_the_graph_sees_known_imports() -> None:
    graph = import_graph()
    assert "hubbub.exceptions" in graph["hubbub.protocol.frames"]
    assert "hubbub.protocol.connection" in graph["hubbub.asyncio.connection"]


def test_no_import_circles_in_src() -> None:
    graph = import_graph()
    without_reexports = {
        a: {b for b in edges if not _is_package_init_edge(a, b)} for a, edges in graph.items()
    }
    assert circles(without_reexports) == []


def test_the_exception_tree_imports_nothing_of_hubbub() -> None:
    assert import_graph()["hubbub.exceptions"] == set()
