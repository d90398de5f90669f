"""Callback mode: ``Connection.on_message`` and ``send_nowait``, over real sockets.

Messages reach the callback from the read callback, in order, instead of the
receive queue; what it sends goes out with the other answers to the same read.
Frames are checked on the wire with :class:`RawPeer` where the test is about
what the server writes (order, close codes).
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from asyncio_helpers import (
    FAST,
    OP_BINARY,
    OP_CLOSE,
    OP_TEXT,
    RawPeer,
    build_frame,
    running_server,
    send_until_stalled,
    url,
    wait_until,
)

from hubbub.asyncio import ServerConnection, connect
from hubbub.exceptions import ConcurrencyError, ConnectionClosed


async def callback_echo(ws: ServerConnection) -> None:
    ws.on_message = ws.send_nowait
    await ws.wait_closed()


@pytest.mark.both_loops
async def test_callback_echo_text_and_binary_in_order() -> None:
    async with running_server(callback_echo) as server, connect(url(server), **FAST) as ws:
        for i in range(50):
            await ws.send(f"m{i}" if i % 2 else f"b{i}".encode())
        got = [await ws.recv() for _ in range(50)]
        assert got == [f"m{i}" if i % 2 else f"b{i}".encode() for i in range(50)]
    assert ws.close_code == 1000


async def test_pipelined_answers_leave_in_one_write_per_read() -> None:
    """Ten frames in one read are answered together, in order, before anything else."""
    async with running_server(callback_echo) as server, await RawPeer.open(server.port) as peer:
        await peer.handshake()
        burst = b"".join(build_frame(OP_TEXT, f"n{i}".encode(), mask=b"abcd") for i in range(10))
        await peer.send(burst)
        frames = [await peer.read_frame() for _ in range(10)]
        assert [(f.opcode, f.payload) for f in frames] == [
            (OP_TEXT, f"n{i}".encode()) for i in range(10)
        ]
        assert not any(f.masked for f in frames)
        closing = await peer.close_handshake()
        assert closing.close_code == 1000


async def test_messages_queued_before_the_callback_is_set_come_first() -> None:
    got: list[object] = []
    ready = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ready.wait()
        ws.on_message = got.append
        await ws.wait_closed()

    async with running_server(handler) as server, connect(url(server), **FAST) as ws:
        for i in range(3):
            await ws.send(f"early{i}")
        await wait_until(lambda: len(server.connections) == 1)
        (conn,) = server.connections
        await wait_until(lambda: len(conn._messages) == 3)
        ready.set()
        await wait_until(lambda: len(got) == 3)
        await ws.send("late")
        await wait_until(lambda: len(got) == 4)
    assert got == ["early0", "early1", "early2", "late"]


async def test_recv_while_a_callback_is_set_is_a_concurrency_error() -> None:
    errors: list[BaseException] = []

    async def handler(ws: ServerConnection) -> None:
        ws.on_message = lambda message: None
        try:
            await ws.recv()
        except ConcurrencyError as exc:
            errors.append(exc)

    async with running_server(handler) as server, connect(url(server), **FAST) as ws:
        await ws.wait_closed()
    assert len(errors) == 1
    assert "on_message" in str(errors[0])


async def test_setting_a_callback_while_recv_waits_is_refused() -> None:
    outcome: list[object] = []

    async def handler(ws: ServerConnection) -> None:
        receiving = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0.05)
        try:
            ws.on_message = print
        except ConcurrencyError as exc:
            outcome.append(exc)
        outcome.append(ws.on_message)
        outcome.append(await receiving)

    async with running_server(handler) as server, connect(url(server), **FAST) as ws:
        await asyncio.sleep(0.1)
        await ws.send("to recv")
        await ws.wait_closed()
    assert isinstance(outcome[0], ConcurrencyError)
    assert outcome[1:] == [None, "to recv"]


async def test_clearing_the_callback_returns_to_recv() -> None:
    got: list[object] = []

    async def handler(ws: ServerConnection) -> None:
        cleared = asyncio.Event()

        def first_only(message: str | bytes) -> None:
            got.append(message)
            ws.on_message = None
            cleared.set()

        ws.on_message = first_only
        await cleared.wait()
        got.append(await ws.recv())

    async with running_server(handler) as server, connect(url(server), **FAST) as ws:
        await ws.send("one")
        await ws.send("two")
        await ws.wait_closed()
    assert got == ["one", "two"]


async def test_an_exception_in_the_callback_closes_with_1011_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(message: str | bytes) -> None:
        raise RuntimeError(f"cannot handle {message!r}")

    async def handler(ws: ServerConnection) -> None:
        ws.on_message = explode
        await ws.wait_closed()

    with caplog.at_level(logging.ERROR, logger="hubbub"):
        async with running_server(handler) as server, connect(url(server), **FAST) as ws:
            await ws.send("boom")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
    assert info.value.code == 1011
    assert any("on_message" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_messages_before_a_protocol_error_are_answered_then_1002() -> None:
    """As in queue mode (defer_failure): valid messages first, then the close frame."""
    async with running_server(callback_echo) as server, await RawPeer.open(server.port) as peer:
        await peer.handshake()
        await peer.send(
            build_frame(OP_TEXT, b"ok1", mask=b"abcd")
            + build_frame(OP_TEXT, b"ok2", mask=b"abcd")
            + build_frame(OP_TEXT, b"unmasked")  # section 5.1: must be masked
        )
        frames = [await peer.read_frame() for _ in range(3)]
        assert [(f.opcode, f.payload) for f in frames[:2]] == [
            (OP_TEXT, b"ok1"),
            (OP_TEXT, b"ok2"),
        ]
        assert frames[2].opcode == OP_CLOSE
        assert frames[2].close_code == 1002


async def test_send_nowait_rejects_other_types_and_raises_once_closed() -> None:
    results: list[object] = []
    closed = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        with pytest.raises(TypeError):
            ws.send_nowait(42)  # type: ignore[arg-type]
        ws.send_nowait(bytearray(b"ba"))
        ws.send_nowait(memoryview(b"mv"))
        await closed.wait()
        try:
            ws.send_nowait("too late")
        except ConnectionClosed as exc:
            results.append(exc)

    async with running_server(handler) as server, connect(url(server), **FAST) as ws:
        assert await ws.recv() == b"ba"
        assert await ws.recv() == b"mv"
    closed.set()
    await wait_until(lambda: results)
    assert isinstance(results[0], ConnectionClosed)


async def test_reading_pauses_while_the_write_buffer_is_full() -> None:
    """A peer that sends without reading cannot grow the echo's buffer without bound."""
    server_ws: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        server_ws.append(ws)
        await callback_echo(ws)

    size, limit = 64 * 1024, 256 * 1024
    async with running_server(handler, write_limit=limit) as server:
        peer = await RawPeer.open(server.port, rcvbuf=16 * 1024, sndbuf=16 * 1024)
        async with peer:
            await peer.handshake()
            await wait_until(lambda: server_ws)
            ws = server_ws[0]
            frame = build_frame(OP_BINARY, bytes(size - 4) + b"tail", mask=b"abcd")
            # 25.6 MiB if nothing pushed back.
            sent = await send_until_stalled(peer.sock, frame * 400)
            # The server stopped reading with its write buffer bounded: the
            # high water mark plus what one read (256 KiB at most) answered.
            assert not ws.transport.is_reading()
            assert ws.buffered_amount <= limit + 256 * 1024 + size
            # Reading everything back resumes the flow: every echoed byte arrives.
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2**20)
            whole = sent // len(frame)
            echoed = 0
            while echoed < whole:
                got = await peer.read_frame(timeout=5)
                assert got.opcode == OP_BINARY
                assert got.payload[-4:] == b"tail"
                echoed += 1
            await wait_until(ws.transport.is_reading)


def plain_echo(ws: ServerConnection) -> None:
    """A plain function handler: callback mode without a Task per connection."""
    ws.on_message = ws.send_nowait


@pytest.mark.both_loops
@pytest.mark.parametrize("hooked", [False, True], ids=["no-hooks", "process_request"])
async def test_a_plain_function_handler_keeps_the_connection_open(hooked: bool) -> None:
    """Before: ``await None`` raised TypeError and the connection closed with 1011."""
    hooks = {"process_request": lambda ws, request: None} if hooked else {}
    async with running_server(plain_echo, **hooks) as server:
        async with connect(url(server), **FAST) as ws:
            for i in range(5):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
            (served,) = server.connections
            # No Task runs the handler (with a hook, only the done hook's one).
            assert served.handler_task is None or served.handler_task.done()
            assert ws.close_code is None
        assert ws.close_code == 1000
        await wait_until(lambda: not server.connections)


async def test_a_plain_function_handler_open_until_the_server_closes() -> None:
    async with running_server(plain_echo) as server, connect(url(server), **FAST) as ws:
        await ws.send("x")
        assert await ws.recv() == "x"
        server.close()
        await server.wait_closed()
        await ws.wait_closed()
        assert ws.close_code == 1001


async def test_a_plain_function_handler_that_raises_closes_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(ws: ServerConnection) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="hubbub.server"):
        async with running_server(broken) as server, connect(url(server), **FAST) as ws:
            await ws.wait_closed()
            assert ws.close_code == 1011
    assert any("handler failed" in r.getMessage() for r in caplog.records)
