"""Fixtures and settings shared by the protocol tests."""

from __future__ import annotations

import pytest

from hubbub.protocol import Connection, Side


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: bounded fuzz run of the parsers (a few seconds); -m 'not fuzz' skips it"
    )


@pytest.fixture
def server() -> Connection:
    """A server-side connection in the OPEN state: it receives masked frames."""
    return Connection(Side.SERVER)


@pytest.fixture
def client() -> Connection:
    """A client-side connection in the OPEN state: it receives unmasked frames."""
    return Connection(Side.CLIENT)


@pytest.fixture(params=[Side.SERVER, Side.CLIENT], ids=["server", "client"])
def conn(request: pytest.FixtureRequest) -> Connection:
    """A connection of either side, in the OPEN state."""
    side: Side = request.param
    return Connection(side)
