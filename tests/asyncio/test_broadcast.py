"""broadcast(): one frame to many connections, over real sockets, with a stuck client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hubbub.asyncio import ClientConnection, ServerConnection, connect, serve
from hubbub.asyncio.broadcast import BroadcastResult, broadcast
from hubbub.exceptions import ConnectionClosed

pytestmark = pytest.mark.both_loops


async def _drain(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


@contextlib.asynccontextmanager
async def hub(**options: Any) -> AsyncIterator[Any]:
    """A server whose handlers only read; the test broadcasts to its connections."""
    options.setdefault("ping_interval", None)
    async with serve(_drain, "127.0.0.1", 0, **options) as server:
        yield server


async def wait_connections(server: Any, n: int) -> list[ServerConnection]:
    for _ in range(200):
        conns = [c for c in server.connections if c.ready_state == 1]
        if len(conns) >= n:
            return conns
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {len(server.connections)} of {n} connections opened")


async def clients(server: Any, n: int, **options: Any) -> list[ClientConnection]:
    url = f"ws://127.0.0.1:{server.port}/"
    return [await connect(url, ping_interval=None, **options) for _ in range(n)]


def stuck_client(port: int) -> socket.socket:
    """A client that completes the handshake and then never reads again."""
    sock = socket.socket()
    # A tiny receive buffer, so the server's writes back up quickly.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # byte by byte: not a byte past the response
    assert response.startswith(b"HTTP/1.1 101")
    return sock


async def test_every_open_connection_gets_the_message() -> None:
    async with hub() as server:
        peers = await clients(server, 5)
        conns = await wait_connections(server, 5)
        assert broadcast(conns, "hello") == BroadcastResult(5, 0, 0)
        assert broadcast(conns, b"\x00\x01") == BroadcastResult(5, 0, 0)
        assert broadcast(conns, bytearray(b"ba")) == BroadcastResult(5, 0, 0)
        for peer in peers:
            assert await peer.recv() == "hello"
            assert await peer.recv() == b"\x00\x01"
            assert await peer.recv() == b"ba"
        for peer in peers:
            await peer.close()


async def test_connections_that_are_not_open_are_ignored() -> None:
    async with hub() as server:
        peers = await clients(server, 3)
        conns = await wait_connections(server, 3)
        await peers[0].close()
        closed = [c for c in conns if c.ready_state != 1]
        for _ in range(100):
            closed = [c for c in conns if c.ready_state != 1]
            if closed:
                break
            await asyncio.sleep(0.01)
        assert len(closed) == 1
        assert broadcast(conns, "after") == BroadcastResult(2, 0, 0)
        for peer in peers[1:]:
            assert await peer.recv() == "after"
            await peer.close()


async def test_a_fragmented_message_in_progress_is_not_interrupted() -> None:
    async with hub() as server:
        (peer,) = await clients(server, 1)
        (conn,) = await wait_connections(server, 1)
        conn.protocol.send_text(b"frag", fin=False)
        conn._flush()
        # Section 5.4: no other data frame may come between the fragments.
        assert broadcast([conn], "between") == BroadcastResult(0, 1, 0)
        conn.protocol.send_continuation(b"ment", fin=True)
        conn._flush()
        assert broadcast([conn], "after") == BroadcastResult(1, 0, 0)
        assert await peer.recv() == "fragment"
        assert await peer.recv() == "after"
        await peer.close()


async def test_frames_held_back_by_send_go_first() -> None:
    async with hub() as server:
        (peer,) = await clients(server, 1)
        (conn,) = await wait_connections(server, 1)
        conn.protocol.send_text(b"queued earlier")  # not flushed yet
        broadcast([conn], "broadcast")
        assert await peer.recv() == "queued earlier"
        assert await peer.recv() == "broadcast"
        await peer.close()


async def test_client_connections_mask_each_frame() -> None:
    received: asyncio.Queue[Any] = asyncio.Queue()

    async def collect(ws: ServerConnection) -> None:
        async for message in ws:
            await received.put(message)

    async with serve(collect, "127.0.0.1", 0, ping_interval=None) as server:
        peers = await clients(server, 3)
        # The core rejects unmasked frames from a client (section 5.1): if
        # broadcast() sent the shared unmasked frame, the server would fail
        # these connections with 1002 instead of receiving the messages.
        assert broadcast(peers, "from clients") == BroadcastResult(3, 0, 0)
        got = [await asyncio.wait_for(received.get(), 5) for _ in range(3)]
        assert got == ["from clients"] * 3
        for peer in peers:
            await peer.close()
            assert peer.close_code == 1000


async def test_compressed_connections_get_their_own_frame() -> None:
    server_cm = serve(_drain, "127.0.0.1", 0, compression="deflate", ping_interval=None)
    server = await server_cm.__aenter__()
    try:
        plain = await clients(server, 1, compression=None)
        deflate = await clients(server, 1, compression="deflate")
        conns = await wait_connections(server, 2)
        assert sorted(bool(c.protocol.extensions) for c in conns) == [False, True]
        text = "compressible " * 200
        assert broadcast(conns, text) == BroadcastResult(2, 0, 0)
        assert await plain[0].recv() == text
        assert await deflate[0].recv() == text
        for peer in plain + deflate:
            await peer.close()
    finally:
        await server_cm.__aexit__(None, None, None)


async def _flood(
    server: Any, fast: list[ClientConnection], on_slow: str, count: int, limit: int
) -> list[Any]:
    """Broadcast ``count`` 32 KiB messages while the fast clients read them all."""
    payload = os.urandom(32 * 1024)
    results = []
    received = [0] * len(fast)
    fast_ports = {p.local_address[1] for p in fast}

    async def read(i: int, peer: ClientConnection) -> None:
        while received[i] < count:
            assert await peer.recv() == payload
            received[i] += 1

    readers = [asyncio.ensure_future(read(i, p)) for i, p in enumerate(fast)]
    for _ in range(count):
        results.append(broadcast(server.connections, payload, on_slow=on_slow))  # type: ignore[arg-type]
        # A fast client keeps up: wait until the server's buffers toward the
        # fast clients are below the limit again (never for the stuck one), so
        # "fast" holds however loaded the machine is.
        for _ in range(5000):
            fast_conns = [c for c in server.connections if c.remote_address[1] in fast_ports]
            if all(c.buffered_amount <= limit // 2 for c in fast_conns):
                break
            await asyncio.sleep(0.001)
    await asyncio.wait_for(asyncio.gather(*readers), 30)
    assert received == [count] * len(fast)
    return results


async def test_a_stuck_client_is_skipped_and_its_buffer_stays_bounded() -> None:
    limit = 64 * 1024
    async with hub(write_limit=limit, max_size=2**20) as server:
        fast = await clients(server, 3)
        await wait_connections(server, 3)
        stuck = await asyncio.to_thread(stuck_client, server.port)
        try:
            conns = await wait_connections(server, 4)
            stuck_conn = next(c for c in conns if c.remote_address[1] == stuck.getsockname()[1])
            count = 400  # 12.5 MiB each: far more than the kernel buffers hold
            payload_frame = 32 * 1024 + 4
            results = await _flood(server, fast, "skip", count, limit)
            # Every fast client got every message (checked in _flood), and the
            # stuck one was skipped once its buffer passed the limit.
            assert sum(r.skipped for r in results) > 0
            assert all(r.closed == 0 for r in results)
            assert stuck_conn.ready_state == 1
            assert stuck_conn.buffered_amount <= limit + payload_frame
        finally:
            stuck.close()
        for peer in fast:
            await peer.close()


async def test_a_stuck_client_is_closed_with_1008() -> None:
    limit = 64 * 1024
    async with hub(write_limit=limit, max_size=2**20, close_timeout=0.5) as server:
        fast = await clients(server, 2)
        await wait_connections(server, 2)
        stuck = await asyncio.to_thread(stuck_client, server.port)
        try:
            conns = await wait_connections(server, 3)
            stuck_conn = next(c for c in conns if c.remote_address[1] == stuck.getsockname()[1])
            results = await _flood(server, fast, "close", 400, limit)
            assert sum(r.closed for r in results) == 1
            assert all(r.skipped == 0 for r in results)
            assert stuck_conn.protocol.close_sent is not None
            assert stuck_conn.protocol.close_sent.code == 1008
            # It never reads the close frame: dropped after close_timeout.
            await asyncio.wait_for(stuck_conn.wait_closed(), 5)
            assert len(server.connections) == 2
        finally:
            stuck.close()
        for peer in fast:
            await peer.close()


def test_rejects_other_types_and_policies() -> None:
    with pytest.raises(TypeError, match="cannot broadcast int"):
        broadcast([], 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_slow"):
        broadcast([], "x", on_slow="wait")  # type: ignore[arg-type]


# --- the connection methods broadcast() and the hub share ----------------------


async def test_shares_frames_only_without_masking_or_extensions() -> None:
    async with hub(compression=None) as plain, hub(compression="deflate") as deflating:
        (client,) = await clients(plain, 1, compression="deflate")
        (other,) = await clients(deflating, 1, compression="deflate")
        (server_plain,) = await wait_connections(plain, 1)
        (server_deflate,) = await wait_connections(deflating, 1)
        assert server_plain.shares_frames
        assert not server_deflate.shares_frames  # RFC 7692: per connection
        assert not client.shares_frames  # section 5.1: a client masks
        await client.close()
        await other.close()


async def test_send_frames_nowait_keeps_order_and_refuses_when_it_cannot() -> None:
    async with hub(compression=None, write_limit=16 * 1024) as server:
        (client,) = await clients(server, 1)
        (conn,) = await wait_connections(server, 1)
        conn.send_nowait("first")
        frames = b"\x81\x06second" + b"\x82\x03\x00\x01\x02"
        assert conn.send_frames_nowait(frames)
        assert [await client.recv() for _ in range(3)] == ["first", "second", b"\x00\x01\x02"]
        await client.close()
        await conn.wait_closed()
        assert not conn.send_frames_nowait(b"\x81\x01x")  # not OPEN: nothing written


async def test_send_frames_nowait_respects_the_write_buffer_bound() -> None:
    limit = 16 * 1024
    async with hub(compression=None, write_limit=limit) as server:
        stuck = await asyncio.to_thread(stuck_client, server.port)
        try:
            (conn,) = await wait_connections(server, 1)
            big = b"\x82\x7e\x10\x00" + bytes(4096)  # a 4 KiB binary message
            for _ in range(1000):
                if conn.writing_paused:
                    break
                assert conn.send_frames_nowait(big)
            assert conn.writing_paused
            before = conn.buffered_amount
            assert not conn.send_frames_nowait(big)  # paused: refused
            assert not conn.send_frames_nowait(big, limit=before - 1)
            assert conn.send_frames_nowait(big, limit=before)  # within an explicit bound
            assert conn.buffered_amount == before + len(big)
        finally:
            stuck.close()
