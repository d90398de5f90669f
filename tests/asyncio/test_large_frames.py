"""Large binary frames read straight into the message, over real sockets.

The adapter swaps a ``PayloadReader`` (an ``asyncio.BufferedProtocol``) onto
the transport for the rest of a large binary frame, then swaps back. Checked
on both event loops, on both sides, over TLS, in callback mode, with a peer
that vanishes mid-frame, and with frames back to back in one write. Each test
also checks that the reader was really used (``_reader is not None``), so that
a silent fall-back to the copying path cannot pass for the direct one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import struct
from typing import Any

import pytest
from asyncio_helpers import (
    FAST,
    OP_BINARY,
    OP_TEXT,
    RawPeer,
    RawServer,
    build_frame,
    running_server,
    url,
    wait_until,
)

from hubbub import speedups
from hubbub.asyncio import Connection, ServerConnection, connect
from hubbub.exceptions import ConnectionClosed, ConnectionClosedError

MiB = 2**20
BIG: dict[str, Any] = dict(max_size=4 * MiB, compression=None)
"""Room for the largest message, and no extension (which disables direct reads)."""

SIZES = [70_000, MiB, 3 * MiB]


@pytest.fixture(autouse=True)
def _direct_reads_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # The adapter reads into the payload only with the C accelerator (in pure
    # Python it gathers pieces, as fast there); these tests cover the path in
    # both modes, so they turn it on.
    monkeypatch.setattr(Connection, "_direct_reads", True)


DEFAULT_DIRECT_READS = Connection.__dict__["_direct_reads"]  # before any test patches it


def test_direct_reads_follow_the_accelerator() -> None:
    assert DEFAULT_DIRECT_READS is speedups.ACCELERATED


class EchoRecorder:
    """An echo handler that remembers whether each connection used the reader."""

    def __init__(self) -> None:
        self.readers: list[bool] = []
        self.received: list[bytes | str] = []

    async def __call__(self, ws: ServerConnection) -> None:
        try:
            async for message in ws:
                self.received.append(message)
                await ws.send(message)
        finally:
            self.readers.append(ws._reader is not None)


@pytest.mark.both_loops
@pytest.mark.parametrize("size", SIZES, ids=["70KB", "1MiB", "3MiB"])
async def test_echo_large_binary(size: int) -> None:
    """The server reads the large frame directly; so does the client, for the echo."""
    handler = EchoRecorder()
    payload = os.urandom(size)
    async with running_server(handler, **BIG) as server:
        async with connect(url(server), **FAST, **BIG) as ws:
            await ws.send(payload)
            echoed = await asyncio.wait_for(ws.recv(), 10)
            assert type(echoed) is bytes
            assert echoed == payload
            if size >= MiB:
                # A read takes 256 KiB at most: the echo was read directly. (A
                # 70 KB frame may arrive in one read, with nothing to read
                # directly: see the tests that send it in two writes.)
                assert ws._reader is not None
            # Small messages after it still work: the connection was handed back.
            await ws.send(b"small")
            assert await asyncio.wait_for(ws.recv(), 5) == b"small"
            await ws.send("text")
            assert await asyncio.wait_for(ws.recv(), 5) == "text"
        await wait_until(lambda: len(handler.readers) == 1, 5)
    assert handler.readers == [True] or size < MiB
    assert ws.close_code == 1000
    assert handler.received == [payload, b"small", "text"]


@pytest.mark.both_loops
@pytest.mark.parametrize("size", [65_537, 70_000], ids=["64KiB+1", "70KB"])
async def test_server_reads_a_frame_sent_in_two_writes_directly(size: int) -> None:
    handler = EchoRecorder()
    payload = os.urandom(size)
    wire = build_frame(OP_BINARY, payload, mask=os.urandom(4))
    async with running_server(handler, **BIG) as server, await RawPeer.open(server.port) as peer:
        await peer.handshake()
        await peer.send(wire[:14])  # the header alone: all of the payload is missing
        await wait_until(lambda: any(c._reader is not None for c in server.connections), 5)
        await peer.send(wire[14:])
        echoed = await peer.read_frame(timeout=5)
        assert (echoed.opcode, echoed.payload) == (OP_BINARY, payload)
        await peer.send_text("after")
        assert (await peer.read_frame(timeout=5)).payload == b"after"
        await peer.close_handshake()
        await wait_until(lambda: len(handler.readers) == 1, 5)
    assert handler.readers == [True]
    assert handler.received == [payload, "after"]


@pytest.mark.both_loops
async def test_a_64_KiB_frame_in_pieces_is_gathered_not_buffered() -> None:
    """64 KiB or less still to come: the core holds the reads as they are.

    No direct read (two protocol swaps and two more system calls per frame
    cost more than they save there), and no copy into the receive buffer
    either: the pieces are joined once, unmasked in the same pass, and the
    frame after the last piece is parsed from a view of it.
    """
    handler = EchoRecorder()
    payload = os.urandom(65_536)
    wire = build_frame(OP_BINARY, payload, mask=os.urandom(4))
    async with running_server(handler, **BIG) as server, await RawPeer.open(server.port) as peer:
        await peer.handshake()
        await peer.send(wire[:30_000])
        await wait_until(
            lambda: any(c.protocol.reader.large_frame is not None for c in server.connections), 5
        )
        await peer.send(wire[30_000:] + build_frame(OP_TEXT, b"after", mask=os.urandom(4)))
        echoed = await peer.read_frame(timeout=5)
        assert (echoed.opcode, echoed.payload) == (OP_BINARY, payload)
        assert (await peer.read_frame(timeout=5)).payload == b"after"
        await peer.close_handshake()
        await wait_until(lambda: len(handler.readers) == 1, 5)
    assert handler.readers == [False]
    assert handler.received == [payload, "after"]


@pytest.mark.both_loops
@pytest.mark.parametrize("size", [65_537, 70_000], ids=["64KiB+1", "70KB"])
async def test_client_reads_a_frame_sent_in_two_writes_directly(size: int) -> None:
    payload = os.urandom(size)
    wire = build_frame(OP_BINARY, payload)
    async with RawServer() as raw:
        client_task = asyncio.ensure_future(connect(raw.url, **FAST, **BIG))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await asyncio.wait_for(client_task, 5)
        try:
            await peer.send(wire[:10])  # the header alone: all of the payload is missing
            await wait_until(lambda: ws._reader is not None, 5)
            await peer.send(wire[10:] + build_frame(OP_TEXT, b"next"))
            assert await asyncio.wait_for(ws.recv(), 5) == payload
            assert await asyncio.wait_for(ws.recv(), 5) == "next"
        finally:
            await peer.send_close(1000)
            await asyncio.wait_for(ws.close(), 5)
    assert ws.close_code == 1000


@pytest.mark.both_loops
async def test_many_large_messages_both_ways() -> None:
    handler = EchoRecorder()
    payloads = [os.urandom(n) for n in (66_000, 300_000, 70_000, MiB, 100, 2 * MiB)]
    async with running_server(handler, **BIG) as server:
        async with connect(url(server), **FAST, **BIG) as ws:
            for payload in payloads:
                await ws.send(payload)
            got = [await asyncio.wait_for(ws.recv(), 10) for _ in payloads]
            assert got == payloads
        await wait_until(lambda: handler.readers == [True], 5)


@pytest.mark.both_loops
@pytest.mark.parametrize("size", [70_000, 3 * MiB], ids=["70KB", "3MiB"])
async def test_echo_large_binary_over_tls(
    size: int, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ctx, client_ctx = tls
    handler = EchoRecorder()
    payload = os.urandom(size)
    async with running_server(handler, ssl=server_ctx, **BIG) as server:
        async with connect(
            url(server, scheme="wss", host="localhost"), ssl=client_ctx, **FAST, **BIG
        ) as ws:
            await ws.send(payload)
            assert await asyncio.wait_for(ws.recv(), 10) == payload
            assert ws._reader is not None or size < MiB
            await ws.send(b"after")
            assert await asyncio.wait_for(ws.recv(), 5) == b"after"
        await wait_until(lambda: len(handler.readers) == 1, 5)
    assert handler.readers == [True] or size < MiB
    assert ws.close_code == 1000


@pytest.mark.both_loops
async def test_callback_mode() -> None:
    readers: list[bool] = []

    async def callback_echo(ws: ServerConnection) -> None:
        ws.on_message = ws.send_nowait
        await ws.wait_closed()
        readers.append(ws._reader is not None)

    payloads = [os.urandom(MiB), b"small", os.urandom(200_000)]
    async with running_server(callback_echo, **BIG) as server:
        async with connect(url(server), **FAST, **BIG) as ws:
            for payload in payloads:
                await ws.send(payload)
            got = [await asyncio.wait_for(ws.recv(), 10) for _ in payloads]
            assert got == payloads
        await wait_until(lambda: readers == [True], 5)


@pytest.mark.both_loops
@pytest.mark.parametrize("abort", [False, True], ids=["fin", "rst"])
async def test_peer_vanishes_mid_frame(abort: bool, caplog: pytest.LogCaptureFixture) -> None:
    """Header and half the payload, then TCP closes: 1006, no message, no error."""
    outcome: list[object] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        try:
            outcome.append(await ws.recv())
        except ConnectionClosed as exc:
            outcome.append(exc)
        outcome.append(ws._reader is not None)
        done.set()

    caplog.set_level(logging.WARNING)
    size = MiB
    frame = build_frame(OP_BINARY, os.urandom(size), mask=os.urandom(4))
    async with running_server(handler, **BIG) as server:
        peer = await RawPeer.open(server.port)
        await peer.handshake()
        await peer.send(frame[: 14 + size // 2])
        # The server is inside the frame (reading directly) before the peer goes.
        await wait_until(lambda: any(c._reader is not None for c in server.connections), 5)
        (conn,) = server.connections
        if abort:
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert conn.close_code == 1006
    assert isinstance(outcome[0], ConnectionClosedError), outcome
    assert outcome[0].code == 1006
    assert outcome[1] is True
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.both_loops
async def test_large_frames_back_to_back_then_a_small_one() -> None:
    handler = EchoRecorder()
    payloads = [os.urandom(n) for n in (70_000, 500_000, 65_537, MiB)]
    key = os.urandom(4)
    burst = b"".join(build_frame(OP_BINARY, p, mask=key) for p in payloads)
    burst += build_frame(OP_TEXT, b"last", mask=key)
    async with running_server(handler, **BIG) as server, await RawPeer.open(server.port) as peer:
        await peer.handshake()
        await peer.send(burst)
        frames = [await peer.read_frame(timeout=10) for _ in range(5)]
        assert [(f.opcode, f.payload) for f in frames] == [
            *((OP_BINARY, p) for p in payloads),
            (OP_TEXT, b"last"),
        ]
        closing = await peer.close_handshake()
        assert closing.close_code == 1000
        await wait_until(lambda: handler.readers == [True], 5)
    assert handler.received == [*payloads, "last"]


@pytest.mark.both_loops
async def test_fragmented_message_with_large_frames_from_a_raw_peer() -> None:
    handler = EchoRecorder()
    parts = [os.urandom(100_000), os.urandom(10), os.urandom(300_000)]
    key = os.urandom(4)
    wire = build_frame(OP_BINARY, parts[0], fin=False, mask=key)
    wire += build_frame(0x9, b"ping", mask=key)
    wire += build_frame(0x0, parts[1], fin=False, mask=key)
    wire += build_frame(0x0, parts[2], mask=key)
    async with running_server(handler, **BIG) as server, await RawPeer.open(server.port) as peer:
        await peer.handshake()
        # Sent in odd pieces, so that frame boundaries fall inside reads.
        for i in range(0, len(wire), 77_777):
            await peer.send(wire[i : i + 77_777])
        pong = await peer.read_frame(timeout=10)
        assert (pong.opcode, pong.payload) == (0xA, b"ping")
        echoed = await peer.read_frame(timeout=10)
        assert (echoed.opcode, echoed.payload) == (OP_BINARY, b"".join(parts))
        await peer.close_handshake()
        await wait_until(lambda: handler.readers == [True], 5)


async def test_max_size_over_the_limit_fails_with_1009() -> None:
    handler = EchoRecorder()
    async with (
        running_server(handler, max_size=200_000, compression=None) as server,
        await RawPeer.open(server.port) as peer,
    ):
        await peer.handshake()
        await peer.send(build_frame(OP_BINARY, bytes(300_000), mask=b"abcd")[:1000])
        closing = await peer.read_frame(timeout=5)
        assert closing.close_code == 1009
        await wait_until(lambda: handler.readers == [False], 5)


@pytest.mark.both_loops
async def test_reading_paused_by_max_queue_inside_large_frames() -> None:
    """The queue fills while large frames are read directly: nothing is lost."""
    release = asyncio.Event()
    got: list[bytes | str] = []
    readers: list[bool] = []

    async def slow(ws: ServerConnection) -> None:
        await release.wait()
        async for message in ws:
            got.append(message)
        readers.append(ws._reader is not None)

    payloads = [os.urandom(MiB + i) for i in range(4)]
    async with running_server(slow, max_queue=1, **BIG) as server:
        async with connect(url(server), **FAST, **BIG) as ws:
            sending = asyncio.ensure_future(asyncio.gather(*(ws.send(p) for p in payloads)))
            await asyncio.sleep(0.2)
            release.set()
            await asyncio.wait_for(sending, 10)
            await wait_until(lambda: len(got) == len(payloads), 10)
        await wait_until(lambda: readers == [True], 5)
    assert got == payloads


@pytest.mark.both_loops
async def test_server_closes_while_a_large_frame_arrives() -> None:
    """close() in the middle of a frame: the frame is read to its end, then the close."""
    closed: list[int | None] = []

    async def closer(ws: ServerConnection) -> None:
        await wait_until(lambda: ws._reader is not None, 5)
        await ws.close(1001, "bye")
        closed.append(ws.close_code)

    size = MiB
    wire = build_frame(OP_BINARY, os.urandom(size), mask=os.urandom(4))
    async with running_server(closer, **BIG) as server, await RawPeer.open(server.port) as peer:
        await peer.handshake()
        await peer.send(wire[:1000])
        closing = await peer.read_frame(timeout=5)
        assert (closing.close_code, closing.close_reason) == (1001, "bye")
        await peer.send(wire[1000:] + build_frame(0x8, struct.pack("!H", 1001), mask=b"abcd"))
        assert await peer.read_to_eof(timeout=5) == b""
        await wait_until(lambda: closed == [1001], 5)


@pytest.mark.both_loops
async def test_callback_mode_backpressure_inside_large_frames() -> None:
    """A callback echo to a slow client: its writes pause the server's reading mid-frame."""
    readers: list[bool] = []

    async def callback_echo(ws: ServerConnection) -> None:
        ws.on_message = ws.send_nowait
        await ws.wait_closed()
        readers.append(ws._reader is not None)

    payloads = [os.urandom(MiB + i) for i in range(8)]
    async with running_server(callback_echo, write_limit=2**16, **BIG) as server:
        async with connect(url(server), max_queue=1, **FAST, **BIG) as ws:

            async def send_all() -> None:
                for payload in payloads:
                    await ws.send(payload)

            async def recv_all() -> list[bytes | str]:
                got: list[bytes | str] = []
                for _ in payloads:
                    got.append(await ws.recv())
                    await asyncio.sleep(0.01)  # a slow reader: queues and buffers fill
                return got

            _, got = await asyncio.wait_for(asyncio.gather(send_all(), recv_all()), 20)
            assert got == payloads
        await wait_until(lambda: readers == [True], 5)


@pytest.mark.both_loops
async def test_unallocatable_frame_length_is_not_a_fatal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome: list[object] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            outcome.append(await ws.recv())
        except ConnectionClosed as exc:
            outcome.append(exc)

    caplog.set_level(logging.WARNING)
    head = bytes([0x82, 0xFF]) + struct.pack("!Q", 2**62) + b"abcd"
    async with running_server(handler, max_size=None, compression=None) as server:
        async with await RawPeer.open(server.port) as peer:
            await peer.handshake()
            await peer.send(head + bytes(1000))
            await peer.send(bytes(1000))
            # No room for the payload at once: the pieces are gathered as they
            # come instead, and the connection stays open.
            await asyncio.sleep(0.3)
            assert not outcome
            assert len(server.connections) == 1
        await wait_until(lambda: outcome, 5)
    assert isinstance(outcome[0], ConnectionClosed)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.both_loops
async def test_large_frame_right_behind_the_handshake_request() -> None:
    """A client that does not wait for the 101: the frame's head came with the request."""
    handler = EchoRecorder()
    payload = os.urandom(MiB)
    request = (
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    wire = build_frame(OP_BINARY, payload, mask=os.urandom(4))
    async with running_server(handler, **BIG) as server, await RawPeer.open(server.port) as peer:
        await peer.send(request + wire[:5000])
        response = await peer.read_http()
        assert response.status == 101
        await peer.send(wire[5000:])
        echoed = await peer.read_frame(timeout=10)
        assert (echoed.opcode, echoed.payload) == (OP_BINARY, payload)
        await peer.close_handshake()
        await wait_until(lambda: len(handler.readers) == 1, 5)
    assert handler.received == [payload]
    assert handler.readers == [True]
