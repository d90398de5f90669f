"""``send()`` on an asyncio connection: answers to queued messages leave together.

While received messages wait in the queue, ``send()`` holds frames of up to
``TURN_BUDGET`` bytes back and writes them with one call when the queue is
empty (or at the next loop iteration). Observed on the default event loop,
whose transport lets a test count its write calls.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from asyncio_helpers import FAST, running_server, url, wait_until

from hubbub.asyncio import ServerConnection, connect
from hubbub.asyncio.inbox import TURN_BUDGET

BIG: dict[str, Any] = dict(max_size=4 * TURN_BUDGET, max_queue=100, compression=None)


def count_writes(transport: Any, calls: list[int]) -> None:
    """Count the write calls of ``transport`` (a selector transport) in ``calls``.

    Each call adds how many chunks it wrote.
    """
    write, writelines = transport.write, transport.writelines
    inside: list[bool] = []  # writelines() may call write() (CPython 3.11)

    def counted_write(data: Any) -> None:
        if not inside:
            calls.append(1)
        write(data)

    def counted_writelines(data: Any) -> None:
        calls.append(len(data))
        inside.append(True)
        try:
            writelines(data)
        finally:
            inside.pop()

    transport.write, transport.writelines = counted_write, counted_writelines


async def echo_queued(size: int, count: int) -> list[int]:
    """Echo ``count`` messages of ``size`` bytes sent at once, once all are queued.

    Checks that the client gets them back in order; returns the server's write
    calls meanwhile.
    """
    payloads = [os.urandom(size) for _ in range(count)]
    writes: list[int] = []
    answered: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        first = await ws.recv()
        await wait_until(lambda: len(ws._messages) == count - 1, 5)
        count_writes(ws.transport, writes)
        await ws.send(first)
        for _ in range(count - 1):
            await ws.send(await ws.recv())
        answered.extend(writes)  # the last send() wrote what was held
        await ws.wait_closed()

    async with (
        running_server(handler, **FAST, **BIG) as server,
        connect(url(server), **FAST, **BIG) as ws,
    ):
        for payload in payloads:
            await ws.send(payload)
        got = [await asyncio.wait_for(ws.recv(), 5) for _ in payloads]
    assert got == payloads
    return answered


@pytest.mark.parametrize("size", [100, 40_000])
async def test_answers_to_queued_messages_leave_in_one_write(size: int) -> None:
    writes = await echo_queued(size, 4)
    # One call for the four answers (header and payload apart above 1 KiB);
    # 40 KB answers were written one by one before session 6.
    assert writes == [4 if size < 1024 else 8]


async def test_answers_over_the_turn_budget_are_written_at_once() -> None:
    writes = await echo_queued(TURN_BUDGET + 1, 3)
    assert writes == [2, 2, 2]  # header and payload apart, one call each
