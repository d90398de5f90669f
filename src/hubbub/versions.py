"""What this process runs: hubbub's version, the accelerator's state, Python and uvloop.

``hubbub --version`` prints :func:`describe`, the CLI servers log it at start-up
(logger ``hubbub.server``, INFO) and the hub's ``/healthz`` includes
:func:`versions`: whoever reads a benchmark or a bug report can tell whether
the C accelerator (:mod:`hubbub.speedups`) was in use.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata

from . import __version__, speedups

__all__ = ["accelerator", "describe", "versions"]


def accelerator() -> str:
    """``"C"`` when the compiled accelerator is in use, else why it is not."""
    if speedups.ACCELERATED:
        return "C"
    if os.environ.get("HUBBUB_NO_EXTENSIONS", "") not in ("", "0"):
        return "pure Python (HUBBUB_NO_EXTENSIONS is set)"
    return "pure Python (the C extension is not built)"


def versions() -> dict[str, str]:
    """hubbub's and Python's versions, the accelerator's state, uvloop's version if installed."""
    try:
        uvloop = metadata.version("uvloop")
    except metadata.PackageNotFoundError:
        uvloop = "not installed"
    return {
        "hubbub": __version__,
        "accelerator": accelerator(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "uvloop": uvloop,
    }


def describe() -> str:
    """One line: ``hubbub 1.0 (accelerator: C, CPython 3.11.2, uvloop 0.19.0)``."""
    info = versions()
    return (
        f"hubbub {info['hubbub']} (accelerator: {info['accelerator']}, {info['python']}, "
        f"uvloop {info['uvloop']})"
    )
