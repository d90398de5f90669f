"""Flow control both ways, and message size limits, over real sockets.

Sending: ``buffered_amount`` is what the transport holds; above the
``write_limit`` high water mark :meth:`send` waits until the buffer drains.
Receiving: with ``max_queue`` messages unread the adapter stops reading the
socket, so TCP pushes back on the peer, and nothing is lost when it resumes.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest
from asyncio_helpers import (
    FAST,
    OP_BINARY,
    OP_CLOSE,
    RawPeer,
    RawServer,
    build_frame,
    running_server,
    send_until_stalled,
    url,
    wait_until,
)

from hubbub.asyncio import ClientConnection, ServerConnection, connect
from hubbub.exceptions import ConnectionClosedError, PayloadTooBig


async def _client_to_raw_server(raw: RawServer, **options: Any) -> tuple[ClientConnection, RawPeer]:
    ws_task = asyncio.ensure_future(connect(raw.url, **{**FAST, **options}))
    peer = await raw.accept()
    await peer.accept_handshake()
    return await ws_task, peer


async def _fill_until_send_blocks(
    ws: ClientConnection, chunk: bytes, limit: int = 2000
) -> tuple[int, asyncio.Future[None]]:
    """Send ``chunk`` until a send does not complete; return (sent, pending send)."""
    for sent in range(limit):
        task = asyncio.ensure_future(ws.send(chunk))
        done, _ = await asyncio.wait({task}, timeout=0.1)
        if not done:
            return sent, task
        task.result()
    raise AssertionError(f"{limit} sends of {len(chunk)} bytes never blocked")


@pytest.mark.both_loops
async def test_send_waits_above_the_high_water_mark_then_resumes() -> None:
    high, low = 32 * 1024, 8 * 1024
    chunk = b"x" * 16 * 1024
    async with RawServer(rcvbuf=4096) as raw:
        ws, peer = await _client_to_raw_server(raw, write_limit=(high, low))
        assert ws.buffered_amount == 0
        # The peer does not read: the kernel buffers fill, then the transport's.
        sent, blocked = await _fill_until_send_blocks(ws, chunk)
        assert ws.buffered_amount >= high
        assert not blocked.done()
        # Another sender waits too, behind the same drain.
        also_blocked = asyncio.ensure_future(ws.send(b"last"))
        await asyncio.sleep(0.05)
        assert not also_blocked.done()

        # The peer reads again: both sends complete, nothing was lost.
        async def read_all() -> list[bytes]:
            payloads = []
            for _ in range(sent + 2):
                frame = await peer.read_frame(timeout=5)
                assert frame.opcode == OP_BINARY
                payloads.append(frame.payload)
            return payloads

        payloads = await asyncio.wait_for(read_all(), 10)
        await asyncio.wait_for(asyncio.gather(blocked, also_blocked), 2)
        assert payloads == [chunk] * (sent + 1) + [b"last"]
        await wait_until(lambda: ws.buffered_amount == 0)
        assert (await peer.close_handshake()).close_code == 1000
        await asyncio.wait_for(ws.wait_closed(), 2)


async def test_cancelling_one_blocked_send_does_not_cancel_the_others() -> None:
    chunk = b"y" * 16 * 1024
    async with RawServer(rcvbuf=4096) as raw:
        ws, peer = await _client_to_raw_server(raw, write_limit=16 * 1024)
        sent, blocked = await _fill_until_send_blocks(ws, chunk)
        other = asyncio.ensure_future(ws.send(b"other"))
        await asyncio.sleep(0.02)
        blocked.cancel()
        await asyncio.sleep(0.02)
        assert not other.done(), "the other send must still wait for the drain"
        # The cancelled send's frame was accepted already: it is delivered.
        frames = [await peer.read_frame(timeout=5) for _ in range(sent + 2)]
        await asyncio.wait_for(other, 2)
        assert [f.payload for f in frames[-2:]] == [chunk, b"other"]
        await peer.close_handshake()
        await asyncio.wait_for(ws.wait_closed(), 2)


@pytest.mark.both_loops
async def test_receive_queue_bound_pushes_back_on_the_peer_without_loss() -> None:
    """With ``max_queue`` unread messages the server stops reading; TCP blocks the peer."""
    release = asyncio.Event()
    received: list[int] = []
    server_ws: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        server_ws.append(ws)
        await release.wait()
        async for message in ws:
            assert isinstance(message, bytes)
            received.append(struct.unpack("!I", message[:4])[0])

    count, size = 200, 32 * 1024
    async with running_server(handler, max_queue=4) as server:
        peer = await RawPeer.open(server.port, sndbuf=16 * 1024)
        async with peer:
            await peer.handshake()
            await wait_until(lambda: server_ws)
            blob = b"".join(
                build_frame(OP_BINARY, struct.pack("!I", i) + bytes(size - 4), mask=b"abcd")
                for i in range(count)
            )
            sock, view = peer.sock, memoryview(blob)
            offset = await send_until_stalled(sock, blob)
            loop = asyncio.get_running_loop()
            ws = server_ws[0]
            assert not ws.transport.is_reading()
            assert ws.ready_state == 1
            # The sender is blocked far before the end of its 6.4 MB stream.
            assert offset < len(blob) // 2

            release.set()
            # A small send buffer makes a slow sender (delayed ACKs); enlarge it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2**21)
            await asyncio.wait_for(loop.sock_sendall(sock, view[offset:]), 10)
            await wait_until(lambda: len(received) == count, timeout=10)
            assert received == list(range(count))
            assert ws.transport.is_reading()
            frame = await peer.close_handshake()
            assert frame.close_code == 1000


async def test_handler_that_stops_reading_still_closes_promptly() -> None:
    """Closing with a full receive queue must not wait ``close_timeout`` for the peer's close."""

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await wait_until(lambda: not ws.transport.is_reading())
        # Returns without reading the rest: the server closes with 1000.

    server_ws: list[ServerConnection] = []

    async def track(ws: ServerConnection) -> None:
        server_ws.append(ws)
        await handler(ws)

    loop = asyncio.get_running_loop()
    start = loop.time()
    async with running_server(track, max_queue=2, close_timeout=5) as server:
        async with connect(url(server), **{**FAST, "close_timeout": 5}) as ws:
            for i in range(40):
                await ws.send(f"message {i}" * 1000)
            # The server sends nothing and closes normally: the loop just ends.
            assert [message async for message in ws] == []
        assert loop.time() - start < 2
    assert ws.close_code == 1000
    # The server saw the client's answer to its close frame: a complete handshake.
    assert server_ws[0].close_code == 1000


async def test_max_size_exceeded_by_the_client_is_1009() -> None:
    seen: list[BaseException] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosedError as exc:
            seen.append(exc)

    async with running_server(handler, max_size=1000) as server:
        async with connect(url(server), **FAST) as ws:
            await ws.send(b"x" * 1000)  # exactly at the limit: fine
            assert await ws.recv() == b"x" * 1000
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
        assert info.value.code == 1009
        await wait_until(lambda: seen)
    assert seen[0].sent_code == 1009  # type: ignore[attr-defined]
    assert isinstance(seen[0].__cause__, PayloadTooBig)


async def test_max_size_on_the_client_counts_fragments() -> None:
    async with RawServer() as raw:
        ws, peer = await _client_to_raw_server(raw, max_size=100)
        await peer.send_frame(OP_BINARY, b"a" * 60, fin=False)
        await peer.send_frame(0, b"b" * 60, fin=True)
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.sent_code == 1009
        frame = await peer.read_frame()
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1009)


async def test_fragmented_send_waits_for_the_drain_too() -> None:
    chunk = b"z" * 16 * 1024
    async with RawServer(rcvbuf=4096) as raw:
        ws, peer = await _client_to_raw_server(raw, write_limit=16 * 1024)
        sending = asyncio.ensure_future(ws.send([chunk] * 400))  # 6.4 MB in 400 frames
        await wait_until(lambda: ws.buffered_amount >= 16 * 1024)
        await asyncio.sleep(0.05)
        assert not sending.done()
        frames = [await peer.read_frame(timeout=5) for _ in range(400)]
        await asyncio.wait_for(sending, 5)
        assert [f.fin for f in frames] == [False] * 399 + [True]
        assert b"".join(f.payload for f in frames) == chunk * 400
        await peer.close_handshake()
        await asyncio.wait_for(ws.wait_closed(), 2)


async def test_send_waiting_for_the_drain_raises_when_the_connection_is_lost() -> None:
    """A message stuck in the write buffer of a lost connection was not sent: say so."""
    chunk = b"w" * 16 * 1024
    async with RawServer(rcvbuf=4096) as raw:
        ws, peer = await _client_to_raw_server(raw, write_limit=16 * 1024)
        _, blocked = await _fill_until_send_blocks(ws, chunk)
        # Reset the connection (SO_LINGER 0): the unread data is dropped.
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(blocked, 2)
        assert info.value.code == 1006
