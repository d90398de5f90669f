"""The receive queue of an asyncio connection (``hubbub.asyncio.inbox``), over real sockets.

``recv()`` and ``async for`` take a queued message with a plain call and, when
the queue is simply empty, wait inline on one Future (``waiter_when_empty``)
instead of a coroutine of ``Inbox.next``; ``next()`` is left for what needs a
decision (closing, a failure, another receiver, a turn to wait for).
"""

from __future__ import annotations

import asyncio

import pytest
from asyncio_helpers import FAST, running_server, url

from hubbub.asyncio import ServerConnection, connect
from hubbub.asyncio.inbox import Inbox
from hubbub.exceptions import ConcurrencyError, ConnectionClosedOK


@pytest.fixture
def next_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls of ``Inbox.next`` (the slow way of waiting)."""
    calls: list[int] = []
    original = Inbox.next

    def counted(self: Inbox) -> object:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(Inbox, "next", counted)
    return calls


async def test_request_response_waits_inline(next_calls: list[int]) -> None:
    received: list[object] = []

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(message)
            await ws.send(message)

    async with running_server(handler, **FAST) as server, connect(url(server), **FAST) as ws:
        for i in range(20):
            await ws.send(f"m{i}")
            # The server's handler waited for each message (the queue was
            # empty), and so does this recv().
            assert await asyncio.wait_for(ws.recv(), 5) == f"m{i}"
        assert next_calls == []
    # The close ended the server's iteration through next(), which raises.
    assert received == [f"m{i}" for i in range(20)]
    assert len(next_calls) >= 1


async def test_a_cancelled_inline_wait_leaves_the_queue_usable() -> None:
    async def handler(ws: ServerConnection) -> None:
        message = await ws.recv()
        await ws.send(message)
        await ws.wait_closed()

    async with running_server(handler, **FAST) as server, connect(url(server), **FAST) as ws:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.05)
        assert ws._messages.waiter is None
        await ws.send("after")
        assert await asyncio.wait_for(ws.recv(), 5) == "after"


async def test_a_second_receiver_is_refused_while_one_waits_inline() -> None:
    async with running_server(**FAST) as server, connect(url(server), **FAST) as ws:
        first = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0.01)
        with pytest.raises(ConcurrencyError):
            await ws.recv()
        with pytest.raises(ConcurrencyError):
            ws.on_message = print
        await ws.send("hello")
        assert await asyncio.wait_for(first, 5) == "hello"


async def test_a_close_wakes_an_inline_wait() -> None:
    async def handler(ws: ServerConnection) -> None:
        await asyncio.sleep(0.05)
        await ws.close()

    async with running_server(handler, **FAST) as server, connect(url(server), **FAST) as ws:
        received = [message async for message in ws]  # ends quietly on 1000
        assert received == []
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()
