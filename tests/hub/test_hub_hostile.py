"""Hostile clients against a real hub over real sockets (issue 12).

Each test plays an attacker with :class:`raw_client.RawClient` (frames written
by hand, reads only when the attacker would) and checks what the hub must
guarantee: deadlines hold, one client cannot break another's deliveries,
limits are counted as documented. No timing is asserted; waits are bounded so
that a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hub_helpers import SECRET, hub_config
from raw_client import RawClient

from hubbub.hub.server import Hub, start_hub


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with start_hub(
        "127.0.0.1",
        0,
        secret=SECRET,
        config=hub_config(connect_timeout=3.0),
        tick_interval=0.05,
        close_timeout=1.0,
    ) as running:
        yield running


async def _flood_pings(client: RawClient, stop: asyncio.Event) -> None:
    payload = b"x" * 125
    while not stop.is_set():
        for _ in range(200):
            client.ping(payload)
        try:
            await asyncio.wait_for(client.writer.drain(), 0.5)
        except (TimeoutError, ConnectionError):
            await asyncio.sleep(0.01)
            if client.writer.is_closing():
                return


async def _wait_no_connections(hub: Hub, bound: float = 20.0) -> None:
    """Wait until the server holds no connection; fail after ``bound`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while hub.server.connections:
        assert loop.time() < deadline, "a connection outlived its connect deadline"
        await asyncio.sleep(0.05)


async def test_ping_flood_does_not_extend_the_connect_deadline(hub: Hub) -> None:
    # Finding 1: pings (answered by pongs the attacker never reads) keep
    # traffic flowing and fill the hub's send buffer; the connection must still
    # be closed once connect_timeout passes without a connect, TCP included
    # (at most close_timeout later), while the attacker never reads.
    client = await RawClient.open(hub.port)
    assert client.status == 101
    stop = asyncio.Event()
    flooder = asyncio.create_task(_flood_pings(client, stop))
    try:
        await _wait_no_connections(hub)
        assert hub.node.sessions == {}
        assert 'hubbub_disconnects_total{code="4002"} 1.0' in hub.node.metrics.render().decode()
    finally:
        stop.set()
        await flooder
        client.close()


async def test_ping_command_flood_does_not_extend_the_connect_deadline(hub: Hub) -> None:
    client = await RawClient.open(hub.port)
    for req_id in range(1, 40):
        client.send_text(f'{{"id":{req_id},"method":"ping"}}')
        await asyncio.sleep(0.05)
    # Never read: the replies and the disconnect push stay unread.
    await _wait_no_connections(hub)
    assert hub.node.sessions == {}
    client.close()
