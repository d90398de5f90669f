"""Fixtures for the hub core: a fake clock, a memory broker, nodes and in-memory clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hub_helpers import SECRET, Client, FakeClock, hub_config
from redis_helpers import RedisServer

from hubbub.hub import Authenticator, HubMetrics, MemoryBroker, Node, mint_token


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker(clock: FakeClock) -> MemoryBroker:
    return MemoryBroker(clock=clock)


@pytest.fixture
def auth(clock: FakeClock) -> Authenticator:
    return Authenticator(secret=SECRET, insecure_dev_mode=True, clock=clock)


@pytest.fixture
def make_node(broker: MemoryBroker, auth: Authenticator, clock: FakeClock) -> Callable[..., Node]:
    def make(**overrides: Any) -> Node:
        return Node(broker, auth, hub_config(**overrides), clock=clock, metrics=HubMetrics())

    return make


@pytest.fixture
def node(make_node: Callable[..., Node]) -> Node:
    return make_node()


@pytest.fixture
def token(clock: FakeClock) -> Callable[..., str]:
    def mint(user: str, ttl: float = 3600.0, **kwargs: Any) -> str:
        return mint_token(user, SECRET, ttl, now=clock(), **kwargs)

    return mint


@pytest.fixture
def connect(node: Node, token: Callable[..., str]) -> Callable[..., Awaitable[Client]]:
    async def open_client(user: str, on: Node | None = None, **kwargs: Any) -> Client:
        client = Client(on or node)
        await client.ok("connect", token=token(user, **kwargs))
        return client

    return open_client


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One ``redis-server`` for a test module (modules may define their own)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
