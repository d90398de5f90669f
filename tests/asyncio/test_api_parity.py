"""Conveniences users of ``websockets`` expect, and connection logging, over real sockets.

``process_response``, ``recv(decode=...)``, ``connection.id``,
``recv_streaming()`` and the INFO lines for a connection's open and close
(docs/logging.md).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncio_helpers import FAST, running_server, url, wait_until

from hubbub.asyncio import ServerConnection, connect
from hubbub.exceptions import ConcurrencyError, InvalidStatus
from hubbub.protocol.http11 import Request, Response


async def test_process_response_adds_a_header_to_the_101() -> None:
    seen: list[int] = []

    def add_header(conn: ServerConnection, request: Request, response: Response) -> None:
        seen.append(response.status)
        response.headers["X-Hook"] = request.path

    async with (
        running_server(process_response=add_header) as server,
        connect(url(server, "/room"), **FAST) as ws,
    ):
        assert ws.response is not None
        assert ws.response.headers["X-Hook"] == "/room"
        await ws.send("hi")
        assert await ws.recv() == "hi"
    assert seen == [101]


async def test_async_process_response_replaces_the_response() -> None:
    async def refuse(conn: ServerConnection, request: Request, response: Response) -> Response:
        return conn.respond(403, "no")

    async with running_server(process_response=refuse) as server:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server), **FAST)
        assert info.value.response.status == 403
        assert not server.connections


async def test_process_response_sees_what_process_request_answered() -> None:
    statuses: list[int] = []

    def teapot(conn: ServerConnection, request: Request) -> Response:
        return conn.respond(418, "tea")

    def record(conn: ServerConnection, request: Request, response: Response) -> None:
        statuses.append(response.status)

    async with running_server(process_request=teapot, process_response=record) as server:
        with pytest.raises(InvalidStatus):
            await connect(url(server), **FAST)
    assert statuses == [418]


async def test_recv_decode() -> None:
    async with running_server() as server, connect(url(server), **FAST) as ws:
        await ws.send("héllo")
        assert await ws.recv(decode=False) == "héllo".encode()
        await ws.send("héllo".encode())
        assert await ws.recv(decode=True) == "héllo"
        await ws.send("same")
        assert await ws.recv(decode=True) == "same"
        await ws.send(b"\x00")
        assert await ws.recv(decode=False) == b"\x00"
        await ws.send(b"\xff")
        with pytest.raises(UnicodeDecodeError):
            await ws.recv(decode=True)
        await ws.send("still open")
        assert await ws.recv() == "still open"


async def test_connection_id_is_a_uuid4_per_connection() -> None:
    ids: list[uuid.UUID] = []

    async def handler(ws: ServerConnection) -> None:
        ids.append(ws.id)
        await ws.send(str(ws.id))

    async with running_server(handler) as server:
        async with connect(url(server), **FAST) as first:
            assert await first.recv() == str(ids[0])
            assert first.id == first.id  # stable
        async with connect(url(server), **FAST) as second:
            await second.recv()
    assert len({ids[0], ids[1], first.id, second.id}) == 4
    assert all(i.version == 4 for i in ids)


async def test_open_and_close_are_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hubbub")
    async with running_server() as server:
        async with connect(url(server, "/chat?x=1"), **FAST) as ws:
            await ws.send("hi")
            await ws.recv()
            client_port = ws.local_address[1]
        server_port = server.port
    server_lines = [r.getMessage() for r in caplog.records if r.name == "hubbub.server"]
    client_lines = [r.getMessage() for r in caplog.records if r.name == "hubbub.client"]
    opened = [m for m in server_lines if " open: " in m]
    closed = [m for m in server_lines if " closed: " in m]
    assert len(opened) == 1, server_lines
    assert len(closed) == 1, server_lines
    assert f"remote 127.0.0.1:{client_port}" in opened[0]
    assert "/chat?x=1" in opened[0]
    assert "received 1000 ''" in closed[0]
    assert f"connection {ws.id} open: remote 127.0.0.1:{server_port}" in client_lines[0]
    assert any(f"connection {ws.id} closed:" in m and "sent 1000" in m for m in client_lines)


async def test_logger_option_and_handler_errors_with_context(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mine = logging.getLogger("tests.mine")
    caplog.set_level(logging.INFO, "tests.mine")
    ids: list[uuid.UUID] = []

    async def failing(ws: ServerConnection) -> None:
        ids.append(ws.id)
        raise RuntimeError("boom")

    async with (
        running_server(failing, logger=mine) as server,
        connect(url(server), logger=mine, **FAST) as ws,
    ):
        await ws.wait_closed()
    assert ws.close_code == 1011
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.mine"]
    assert any(m.startswith(f"connection {ids[0]} handler failed (remote ") for m in messages)
    assert any(f"connection {ws.id} open" in m for m in messages)  # the client's
    assert not [r for r in caplog.records if r.name.startswith("hubbub.")]


async def test_nothing_is_formatted_when_info_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "hubbub")
    async with running_server() as server, connect(url(server), **FAST) as ws:
        await ws.send("x")
        await ws.recv()
        # The id is made only on first use: logging did not need it.
        assert ws._id is None
    assert not [r for r in caplog.records if r.name.startswith("hubbub")]


# --- recv_streaming (section 5.4) ---------------------------------------------------------


def _fragmenting_server(
    gate: asyncio.Event, *messages: list[str] | list[bytes], parsed: asyncio.Event | None = None
) -> Any:
    """A handler sending each of ``messages`` as one fragmented message, one frame per item.

    Before the third item of the first message it waits for ``gate``: the
    first frame leaves once the second item is known (the last frame must
    carry FIN), so what the client gets before then came while the message
    was incomplete. Before waiting it pings the client: once the pong is
    back, the client parsed the first frame, and ``parsed`` is set.
    """

    async def handler(ws: ServerConnection) -> None:
        async def first(parts: list[str] | list[bytes]) -> AsyncIterator[str | bytes]:
            for i, part in enumerate(parts):
                if i == 2:
                    await ws.ping()  # a control frame between fragments (section 5.4)
                    if parsed is not None:
                        parsed.set()
                    await gate.wait()
                yield part

        await ws.send(first(messages[0]))
        for parts in messages[1:]:
            await ws.send(parts)
        await ws.wait_closed()

    return handler


async def test_recv_streaming_yields_each_fragment_as_it_arrives() -> None:
    gate, parsed = asyncio.Event(), asyncio.Event()
    handler = _fragmenting_server(gate, ["héll", "o ", "wörld"], parsed=parsed)
    got: list[str | bytes] = []
    async with (
        running_server(handler, compression=None) as server,
        connect(url(server), **FAST) as ws,
    ):
        # The first frame is in before the application asks for the message:
        # it must come out now, not with the next frame (sent only after it).
        await parsed.wait()
        async for fragment in ws.recv_streaming():
            got.append(fragment)
            gate.set()  # the rest is sent only now
    assert got == ["héll", "o ", "wörld"]


async def test_recv_streaming_compressed_and_decoded() -> None:
    gate = asyncio.Event()
    parts = [b"ab", "é".encode()[:1], "é".encode()[1:]]
    handler = _fragmenting_server(gate, parts, [b"x"])
    got: list[str | bytes] = []
    async with running_server(handler) as server, connect(url(server), **FAST) as ws:
        # decode=True: a binary message as text, a character cut between frames.
        async for fragment in ws.recv_streaming(decode=True):
            got.append(fragment)
            gate.set()
        assert got == ["ab", "", "é"]
        # A message of one frame yields once.
        assert [f async for f in ws.recv_streaming(decode=False)] == [b"x"]


async def test_recv_after_streaming_joins_fragmented_messages() -> None:
    gate = asyncio.Event()
    handler = _fragmenting_server(gate, ["a", "b", "c"], ["d", "e", "f"], [b"g", b"h"])
    async with (
        running_server(handler, compression=None) as server,
        connect(url(server), **FAST) as ws,
    ):
        stream = ws.recv_streaming()
        assert await anext(stream) == "a"
        gate.set()
        # The next messages arrive while this one streams: queued as fragments.
        await wait_until(lambda: len(ws._messages) >= 7)
        assert [f async for f in stream] == ["b", "c"]
        assert await ws.recv() == "def"
        assert await ws.recv(decode=True) == "gh"


async def test_an_abandoned_stream_is_discarded_by_the_next_receive() -> None:
    gate = asyncio.Event()
    handler = _fragmenting_server(gate, ["a", "b", "c"], ["next"])
    async with (
        running_server(handler, compression=None) as server,
        connect(url(server), **FAST) as ws,
    ):
        stream = ws.recv_streaming()
        assert await anext(stream) == "a"
        gate.set()
        assert await anext(stream) == "b"
        # The application stops reading this message: the rest is dropped.
        assert await ws.recv() == "next"
        with pytest.raises(ConcurrencyError):
            await anext(stream)
