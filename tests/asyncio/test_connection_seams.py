"""The connection's public operations that broadcast(), the WebSocket API and the hub use."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from asyncio_helpers import running_server, url

from hubbub.asyncio import ServerConnection, connect
from hubbub.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    LocalProtocolError,
)

pytestmark = pytest.mark.both_loops


async def closed_by(handler: Callable[[ServerConnection], Awaitable[None]]) -> ConnectionClosed:
    """Run ``handler`` for one client; return how that client saw the connection end."""
    async with running_server(handler) as server:
        client = await connect(url(server), ping_interval=None)
        with pytest.raises(ConnectionClosed) as caught:
            await client.recv()
        await asyncio.wait_for(client.wait_closed(), 5)
        return caught.value


async def test_fail_sends_the_code_and_closes_without_waiting() -> None:
    async def handler(ws: ServerConnection) -> None:
        ws.fail(1008, "go away")  # returns at once: nothing to await
        await ws.wait_closed()

    closed = await closed_by(handler)
    assert isinstance(closed, ConnectionClosedError)
    assert (closed.code, closed.reason) == (1008, "go away")


async def test_fail_refuses_a_code_that_may_not_be_sent() -> None:
    refused: list[BaseException] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            ws.fail(1006)  # section 7.4.1: never on the wire
        except LocalProtocolError as exc:
            refused.append(exc)
        await ws.close()

    assert isinstance(await closed_by(handler), ConnectionClosedOK)
    assert len(refused) == 1


async def test_start_close_sends_the_close_frame_and_the_handshake_completes() -> None:
    async def handler(ws: ServerConnection) -> None:
        ws.start_close(1001, "restarting")
        assert ws.protocol.close_sent is not None  # sent before any await
        await ws.wait_closed()

    closed = await closed_by(handler)
    assert isinstance(closed, ConnectionClosedOK)
    assert (closed.code, closed.reason) == (1001, "restarting")


async def test_abort_drops_tcp_without_a_close_frame() -> None:
    async def handler(ws: ServerConnection) -> None:
        ws.abort()
        await ws.wait_closed()

    closed = await closed_by(handler)
    assert isinstance(closed, ConnectionClosedError)
    assert closed.code == 1006


async def test_flush_writes_and_empties_the_cores_outgoing_list() -> None:
    """The adapter drains ``protocol.outgoing`` (the core's seam) and never replaces it."""
    seen: list[tuple[bool, int]] = []

    async def handler(ws: ServerConnection) -> None:
        out = ws.protocol.outgoing
        async for message in ws:
            await ws.send(message)  # nothing else queued: written at once
            seen.append((ws.protocol.outgoing is out, len(out)))

    async with running_server(handler) as server:
        client = await connect(url(server), ping_interval=None)
        for i in range(3):
            await client.send(f"m{i}")
            assert await asyncio.wait_for(client.recv(), 5) == f"m{i}"
        await client.close()
    assert seen == [(True, 0)] * 3
