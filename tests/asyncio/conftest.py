"""Fixtures of the asyncio adapter tests, and the event loops they run on.

Tests marked ``both_loops`` run on the standard asyncio loop and on uvloop
(the adapter must work on both: issue 2, section 3); the others run on asyncio
only, to keep the suite fast.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from asyncio_helpers import make_tls_contexts


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_loops: run on the asyncio event loop and on uvloop")


def _uvloop_factory() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover (uvloop is in the [test] extra)
        pytest.skip("uvloop is not installed")
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], Any]]:
    if item.get_closest_marker("both_loops") is not None:
        return {"asyncio": asyncio.new_event_loop, "uvloop": _uvloop_factory}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) SSL contexts for a self-signed localhost certificate."""
    return make_tls_contexts(tmp_path_factory.mktemp("tls"))
