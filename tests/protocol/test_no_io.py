"""The sans-I/O core imports nothing that does I/O, keeps time or runs threads.

Two independent checks, each of which would fail if someone added ``import
asyncio`` (or ``from time import monotonic`` inside a function) to
``hubbub.protocol``:

* at run time, in a fresh interpreter, a meta-path hook sees every import of a
  forbidden module and records which module asked for it; the core is imported
  through a stand-in for the ``hubbub`` package, so that whatever the package's
  own ``__init__`` imports (the adapters do I/O) cannot hide or cause a finding;
* statically, every ``import`` statement in the core's source, including those
  inside functions that only run later, is checked.

Both checkers are first run against a small package written for the purpose,
with a forbidden import in it, to prove that they do catch one.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hubbub.protocol

FORBIDDEN = ("asyncio", "socket", "threading", "time", "selectors", "ssl")

# Modules outside hubbub.protocol that the core may import: the error tree and
# the hot-path helpers (pure computation, or their compiled twin).
ALLOWED_HUBBUB = ("hubbub.exceptions", "hubbub.speedups", "hubbub._speedups")

PROTOCOL_DIR = Path(hubbub.protocol.__file__).parent
SRC_DIR = PROTOCOL_DIR.parent.parent

CHECKER = textwrap.dedent(
    """
    import importlib, json, os, sys, types

    package, package_dir, version, forbidden, targets = json.loads(sys.argv[1])
    forbidden = set(forbidden)

    # A forbidden module already loaded by the interpreter's start-up ("time"
    # can be) would not go through the finders again: forget it first.
    for name in list(sys.modules):
        if name.split(".")[0] in forbidden:
            del sys.modules[name]

    findings = []

    class Watcher:
        # A meta-path finder that finds nothing: it only records who imports.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in forbidden:
                frame = sys._getframe(1)
                importer = None
                while frame is not None:
                    mod = frame.f_globals.get("__name__", "")
                    if mod == package or mod.startswith(package + "."):
                        importer = mod
                        break
                    frame = frame.f_back
                findings.append([name, importer])
            return None

        def invalidate_caches(self):
            pass

    sys.meta_path.insert(0, Watcher())

    # The stand-in package: the sub-packages load from the real directory, but
    # the real __init__ (which may import the I/O adapters) does not run.
    stub = types.ModuleType(package)
    stub.__path__ = [package_dir]
    stub.__version__ = version
    sys.modules[package] = stub

    for target in targets:
        importlib.import_module(target)

    loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    print(json.dumps({"findings": findings, "loaded": loaded}))
    """
)


def run_checker(
    package: str, package_dir: Path, targets: list[str], pythonpath: Path
) -> dict[str, list[object]]:
    """Import ``targets`` in a fresh interpreter; return the forbidden imports seen."""
    arg = json.dumps([package, str(package_dir), hubbub.__version__, list(FORBIDDEN), targets])
    proc = subprocess.run(
        [sys.executable, "-c", CHECKER, arg],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=pythonpath,
        env={"PYTHONPATH": str(pythonpath), "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[object]] = json.loads(proc.stdout.splitlines()[-1])
    return result


def core_modules() -> list[str]:
    return sorted(
        "hubbub.protocol" if p.stem == "__init__" else f"hubbub.protocol.{p.stem}"
        for p in PROTOCOL_DIR.glob("*.py")
    )


def static_imports(path: Path, package: str) -> list[str]:
    """Every module imported by ``path``'s source, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    parts = package.split(".")
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.append(module)
            # "from hubbub import asyncio" imports a module too.
            names.extend(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            name = getattr(func, "id", getattr(func, "attr", ""))
            if name in ("__import__", "import_module") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.append(first.value)
    return names


def static_violations(package_dir: Path, package: str) -> list[tuple[str, str]]:
    violations = []
    for path in sorted(package_dir.glob("*.py")):
        for name in static_imports(path, package):
            top = name.split(".")[0]
            if top in FORBIDDEN:
                violations.append((path.name, name))
            elif top == "hubbub" and "." in name:
                # Inside hubbub, only the core and its allowed helpers.
                inside = name.startswith("hubbub.protocol") or name.startswith(ALLOWED_HUBBUB)
                if not inside and name != "hubbub.__version__":
                    violations.append((path.name, name))
    return violations


# --- the checkers catch a forbidden import -------------------------------------------


@pytest.fixture
def bad_package(tmp_path: Path) -> Path:
    """A package ``fakecore`` whose ``core.mod`` imports asyncio lazily and socket eagerly."""
    core = tmp_path / "fakecore" / "core"
    core.mkdir(parents=True)
    (tmp_path / "fakecore" / "__init__.py").write_text("raise RuntimeError('never run')\n")
    (core / "__init__.py").write_text("from . import mod\n")
    (core / "mod.py").write_text(
        "import json\nimport socket\n\ndef later():\n    import asyncio\n    return asyncio\n"
    )
    (core / "clean.py").write_text("import json\nfrom time import monotonic\n")
    return tmp_path


def test_runtime_checker_catches_a_forbidden_import(bad_package: Path) -> None:
    result = run_checker(
        "fakecore", bad_package / "fakecore", ["fakecore.core", "fakecore.core.clean"], bad_package
    )
    assert ["socket", "fakecore.core.mod"] in result["findings"]
    assert ["time", "fakecore.core.clean"] in result["findings"]
    assert "socket" in result["loaded"]


def test_static_checker_catches_a_lazy_import(bad_package: Path) -> None:
    violations = static_violations(bad_package / "fakecore" / "core", "fakecore.core")
    assert ("mod.py", "asyncio") in violations  # inside a function: never run above
    assert ("mod.py", "socket") in violations
    assert ("clean.py", "time") in violations


def test_static_imports_resolve_relative_and_dynamic_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from .. import asyncio\nfrom ..sync import x\nfrom . import frames\n"
        "import importlib\nimportlib.import_module('threading')\n__import__('ssl')\n"
    )
    names = static_imports(source, "hubbub.protocol")
    assert "hubbub.asyncio" in names
    assert "hubbub.sync" in names
    assert "hubbub.protocol.frames" in names
    assert "threading" in names
    assert "ssl" in names


# --- the real core -------------------------------------------------------------------


def test_core_modules_are_found() -> None:
    modules = core_modules()
    for name in ("connection", "frames", "http11", "handshake", "server", "client", "extensions"):
        assert f"hubbub.protocol.{name}" in modules


def test_importing_the_core_imports_no_io_module() -> None:
    targets = [*core_modules(), "hubbub.exceptions"]
    result = run_checker("hubbub", SRC_DIR / "hubbub", targets, SRC_DIR)
    assert result["findings"] == []
    assert result["loaded"] == []


def test_the_core_source_has_no_io_import() -> None:
    assert static_violations(PROTOCOL_DIR, "hubbub.protocol") == []
