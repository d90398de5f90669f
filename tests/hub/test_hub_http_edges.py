"""The hub's HTTP API at the edges of HTTP, over real sockets (issue 12, finding 7).

The adapter refuses what the API never sees (a body over ``MAX_BODY``, a
request line without a version); those answers must be readable by a client
that is still writing, and must not talk about WebSocket on API routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from hub_helpers import SECRET

from hubbub.hub import SUBPROTOCOL
from hubbub.hub.server import start_hub
from hubbub.hub.server.http_api import MAX_BODY


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` (all of it, whatever comes back), then read to the end."""
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.setblocking(False)
        # What matters is reading the answer, even after a reset.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await asyncio.wait_for(loop.sock_sendall(sock, data), 30)
        answer = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 30):
            answer += chunk
        return answer
    finally:
        sock.close()


async def test_a_body_over_the_limit_is_answered_413_without_websocket_words() -> None:
    async with start_hub("127.0.0.1", 0, secret=SECRET, api_key="k", tick_interval=0.05) as hub:
        body = b"x" * (2 * MAX_BODY)
        head = (
            "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        for _ in range(5):  # a reset lost the answer about half the time
            answer = await exchange(hub.port, head + body)
            assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
            assert b"WebSocket" not in answer


async def test_a_bare_request_line_is_answered_400_at_once() -> None:
    async with start_hub("127.0.0.1", 0, secret=SECRET, tick_interval=0.05) as hub:
        # The hub's open timeout (10 s) is not awaited: the 400 comes first,
        # and the read below would otherwise end with the server's close.
        answer = await exchange(hub.port, b"GET /\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert b"WebSocket" not in answer


async def test_a_ping_flood_that_never_reads_does_not_pile_up_pongs_on_the_hub() -> None:
    # Finding 1 on the hub (which reads with ``async for``): before the fix
    # every ping's pong was buffered (RSS +52 MiB/s on issue 12's machine).
    async with start_hub("127.0.0.1", 0, secret=SECRET, tick_interval=0.05) as hub:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, ("127.0.0.1", hub.port))
            request = (
                "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
            )
            await loop.sock_sendall(sock, request.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
            assert head.startswith(b"HTTP/1.1 101 "), head
            connections = hub.server.connections
            assert len(connections) == 1
            (ws,) = connections
            ping = b"\x89\xfd\x00\x00\x00\x00" + b"p" * 125  # masked with a zero key
            most = 0
            stop = asyncio.Event()

            async def sample() -> None:
                nonlocal most
                while not stop.is_set():
                    most = max(most, ws.buffered_amount)
                    await asyncio.sleep(0)

            sampler = asyncio.ensure_future(sample())
            # 13 MB of pings, sent until the hub stops reading (or its connect
            # deadline closes the connection).
            flood = memoryview(ping * 100_000)
            sent, idle = 0, 0
            while sent < len(flood) and idle < 30:
                try:
                    sent += sock.send(flood[sent : sent + 65536])
                    idle = 0
                except BlockingIOError:
                    idle += 1
                    await asyncio.sleep(0.01)
                except OSError:
                    break
            stop.set()
            await sampler
            # write_limit's high mark plus what one read (256 KiB) can add.
            assert most <= 2**16 + 2**18, most
        finally:
            sock.close()
