"""Run a program of examples/ as a subprocess, the way its docstring says to start it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START_TIMEOUT = 30.0  # seconds: an import on a loaded 2-core machine


@contextlib.asynccontextmanager
async def example(name: str, *args: str) -> AsyncIterator[int]:
    """Start ``python examples/NAME.py --port 0 ARGS``; yield its port; stop it with SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / f"{name}.py"),
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        found = re.fullmatch(rb"listening on http://127\.0\.0\.1:(\d+)/\n", line)
        if found is None:
            errors = await process.stderr.read() if process.returncode is not None else b""
            pytest.fail(f"{name}.py printed {line!r}; stderr: {errors.decode()}")
        yield int(found.group(1))
    finally:
        if process.returncode is None:
            process.terminate()
        _, errors = await asyncio.wait_for(process.communicate(), START_TIMEOUT)
    # SIGTERM stops an example cleanly: it must not have died on an exception.
    assert process.returncode == 0, errors.decode()
    assert errors.decode().strip() == "stopped"


@pytest.fixture
def run_example() -> Callable[..., AbstractAsyncContextManager[int]]:
    return example
