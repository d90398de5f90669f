"""The hub's core imports nothing that does I/O, keeps time or runs threads (issue 14).

The same two checks as ``tests/protocol/test_no_io.py`` (whose checkers are
reused, and proved there to catch a forbidden import), applied to
``hubbub.hub.core``: the node is handed its clock, its broker, its token
verifier and its metrics, and imports none of them.

Imports under ``if TYPE_CHECKING:`` count too: the core names the metrics and
the token verifier it is handed through its own interfaces
(``core/traffic.py``'s ``NodeMetrics``, ``core/identity.py``'s ``TokenVerifier``).

One exception, checked to stay exactly that: ``logging``. The core logs, and the
standard library's logging module imports ``threading`` (its handler locks) and
``time`` (record timestamps) for itself. The runtime check imports it before
watching, so that what *the core* imports is still seen.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import hubbub.hub.core


def _load_protocol_checks() -> ModuleType:
    # tests/ is not a package: load the protocol's checkers by path, once.
    path = Path(__file__).resolve().parents[1] / "protocol" / "test_no_io.py"
    spec = importlib.util.spec_from_file_location("_protocol_no_io", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


checks = _load_protocol_checks()

CORE_DIR = Path(hubbub.hub.core.__file__).parent
SRC_DIR = CORE_DIR.parents[2]
PACKAGE = "hubbub.hub.core"
# Inside hubbub, the core may import itself, the error tree, and the hub
# package whose lazy __init__ only names things (it imports nothing).
ALLOWED_HUBBUB = (PACKAGE, "hubbub.exceptions")


def core_modules() -> list[str]:
    return sorted(
        PACKAGE if p.stem == "__init__" else f"{PACKAGE}.{p.stem}" for p in CORE_DIR.glob("*.py")
    )


def imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules one import statement of the core names (as the protocol's check reads them)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    parts = PACKAGE.split(".")
    base = parts[: len(parts) - node.level + 1] if node.level else []
    module = ".".join([*base, node.module] if node.module else base)
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def violations(path: Path) -> list[str]:
    """The imports of ``path`` (a module of the core) that break the core's rule."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        for name in imported_names(node):
            top = name.split(".")[0]
            if top in checks.FORBIDDEN or (
                top == "hubbub" and "." in name and not name.startswith(ALLOWED_HUBBUB)
            ):
                found.append(name)
    return found


def test_every_import_of_the_core_is_read() -> None:
    # The same reading as the protocol's check, dynamic imports aside (none here).
    for path in CORE_DIR.glob("*.py"):
        ours = [
            name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for name in imported_names(node)
        ]
        assert sorted(ours) == sorted(checks.static_imports(path, PACKAGE)), path.name


def test_core_modules_are_found() -> None:
    modules = core_modules()
    for name in ("node", "operations", "session", "permissions", "protocol", "broker"):
        assert f"{PACKAGE}.{name}" in modules


def test_the_hub_core_source_has_no_io_import() -> None:
    assert {p.name: violations(p) for p in sorted(CORE_DIR.glob("*.py"))} == {
        p.name: [] for p in sorted(CORE_DIR.glob("*.py"))
    }


def test_a_forbidden_or_outside_import_is_caught(tmp_path: Path) -> None:
    # The rule itself, on a module written for the purpose next to the core's.
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from typing import TYPE_CHECKING\nimport time\nfrom ..server import Hub\n"
        "from ..metrics import HubMetrics\n"
        "if TYPE_CHECKING:\n    from ..metrics import Traffic\n    import asyncio\n"
    )
    assert violations(bad) == ["time", "hubbub.hub.server", "hubbub.hub.server.Hub",
                               "hubbub.hub.metrics", "hubbub.hub.metrics.HubMetrics",
                               "hubbub.hub.metrics", "hubbub.hub.metrics.Traffic",
                               "asyncio"]  # fmt: skip


def test_importing_the_hub_core_imports_no_io_module() -> None:
    # logging is imported before the watch starts (see the module docstring).
    checker = checks.CHECKER.replace(
        "sys.meta_path.insert(0, Watcher())", "import logging\nsys.meta_path.insert(0, Watcher())"
    )
    original = checks.CHECKER
    checks.CHECKER = checker
    try:
        result = checks.run_checker("hubbub", SRC_DIR / "hubbub", core_modules(), SRC_DIR)
    finally:
        checks.CHECKER = original
    assert result["findings"] == []
    # What is loaded at all is only what logging brought.
    assert set(result["loaded"]) <= {"threading", "time"}
