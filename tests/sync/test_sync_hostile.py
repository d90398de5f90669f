"""Hostile peers against the blocking server, over real sockets (issue 12).

Same attacks as tests/asyncio/test_hostile_asyncio.py: a burst of compressed
frames that inflate to far more than they weigh, pings without ever reading,
a request body over the limit. The tests assert bounds and completion, never
a time.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import sync_helpers

from hubbub.adapter import DECODE_STEP
from hubbub.exceptions import ConnectionClosed, ConnectionClosedError
from hubbub.protocol.frames import CloseCode
from hubbub.protocol.handshake import accept_key
from hubbub.sync.client import connect
from hubbub.sync.server import ServerConnection

MiB = 1 << 20
OP_TEXT, OP_BINARY, OP_PING = 0x1, 0x2, 0x9


def client_frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """A masked client frame built by hand (RFC 6455 section 5.2), key 0 for brevity."""
    head = bytearray([0x80 | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return bytes(head) + b"\x00\x00\x00\x00" + payload  # a zero key masks nothing


def open_websocket(
    port: int, extensions: str | None = None, rcvbuf: int | None = None
) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    sock.sendall(
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def wait_for(predicate: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.005)


def test_a_compressed_burst_is_inflated_only_as_the_queue_takes_it() -> None:
    count, max_queue = 200, 4
    go = threading.Event()
    sizes: list[int] = []
    most = [0]
    connections: list[ServerConnection] = []

    def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        go.wait(60)
        for _ in range(count):
            sizes.append(len(ws.recv()))
            most[0] = max(most[0], ws.queued_messages)

    with sync_helpers.running(handler, max_queue=max_queue, compression="deflate") as server:
        sock = open_websocket(server.port, "permessage-deflate")
        with sock:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = (c.compress(bytes(MiB)) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
            burst = client_frame(OP_BINARY, payload, rsv1=True) * count
            sock.sendall(burst)  # about 200 KB: 200 MiB once inflated
            wait_for(lambda: connections and connections[0].queued_messages >= max_queue)
            time.sleep(0.2)  # not an assertion: lets the reader run ahead if it would
            most[0] = connections[0].queued_messages
            go.set()
            wait_for(lambda: len(sizes) == count, 60)
    assert sizes == [MiB] * count
    # Before the fix a 64 KiB read inflated about 60 messages into the queue.
    assert most[0] <= max_queue + DECODE_STEP // MiB + 1, most[0]


def flood_until_stalled(sock: socket.socket, flood: bytes) -> int:
    """Write ``flood`` without reading until 2 s pass without progress; return bytes sent."""
    sock.setblocking(False)
    sent = 0
    stalls = 0
    while sent < len(flood) and stalls < 200:
        try:
            sent += sock.send(flood[sent : sent + 65536])
            stalls = 0
        except BlockingIOError:
            stalls += 1
            time.sleep(0.01)
        except OSError:  # the server dropped the connection
            break
    return sent


def test_a_ping_flood_that_never_reads_blocks_the_reader_not_memory() -> None:
    connections: list[ServerConnection] = []
    most = [0]
    stop = threading.Event()

    def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        while not stop.is_set():
            most[0] = max(most[0], ws.buffered_amount)
            time.sleep(0.001)

    with sync_helpers.running(handler) as server:
        sock = open_websocket(server.port, rcvbuf=4096)
        with sock:
            flood = client_frame(OP_PING, b"p" * 125) * 200_000  # 26 MB
            sent = flood_until_stalled(sock, flood)
            stop.set()
            # The reader thread waits in its write for the peer to read its
            # pongs: it stopped reading, so TCP pushed back on the flood.
            assert sent < len(flood)
    # What the pongs of one 64 KiB read weigh, at most.
    assert most[0] <= 65536, most[0]


def test_a_ping_flood_that_never_reads_is_failed_after_send_timeout() -> None:
    # Before send_timeout the reader thread waited in sendall() for ever: the
    # keepalive runs on the same thread, so nothing ended such a connection
    # and its thread stayed until the peer read or went away.
    connections: list[ServerConnection] = []
    handler_done = threading.Event()
    most = [0]

    def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        with contextlib.suppress(ConnectionClosed):
            for _ in ws:
                pass
        handler_done.set()

    def sample() -> None:
        while not handler_done.is_set():
            for ws in connections:
                most[0] = max(most[0], ws.buffered_amount)
            time.sleep(0.001)

    options: dict[str, Any] = dict(send_timeout=0.5, ping_interval=0.5, ping_timeout=0.5)
    with sync_helpers.running(handler, **options) as server:
        sock = open_websocket(server.port, rcvbuf=4096)
        sampler = threading.Thread(target=sample)
        sampler.start()
        with sock:
            flood = client_frame(OP_PING, b"p" * 125) * 200_000  # 26 MB
            # The server stops reading once its pongs back up: TCP pushes back.
            assert flood_until_stalled(sock, flood) < len(flood)
            # The connection is failed and its thread ends, with the peer
            # still connected and still not reading.
            assert handler_done.wait(30)
            wait_for(lambda: not server.connections)
        sampler.join(5)
        ws = connections[0]
        assert ws.close_code == CloseCode.ABNORMAL_CLOSURE  # no close frame came
        assert ws.protocol.close_sent is not None
        assert ws.protocol.close_sent.code == CloseCode.INTERNAL_ERROR
    # What the pongs of one 64 KiB read weigh, at most.
    assert most[0] <= 65536, most[0]


def test_a_client_whose_server_never_reads_is_failed_after_send_timeout() -> None:
    # A server that completes the handshake, then never reads: the
    # application thread's send() gives up after send_timeout instead of
    # blocking for ever.
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def never_reading_server() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_key(key).encode()
                + b"\r\n\r\n"
            )
            stop.wait(30)

    server = threading.Thread(target=never_reading_server)
    server.start()
    try:
        with listener:
            port = listener.getsockname()[1]
            ws = connect(
                f"ws://127.0.0.1:{port}/",
                send_timeout=0.5,
                ping_interval=None,
                close_timeout=1,
                compression=None,
            )
            with pytest.raises(ConnectionClosedError):
                ws.send(bytes(64 * MiB))  # far more than the kernel's buffers
            assert ws.wait_closed(10)
            assert ws.close_code == CloseCode.ABNORMAL_CLOSURE
            assert ws.buffered_amount == 0
    finally:
        stop.set()
        server.join(10)


def test_a_body_over_the_limit_gets_a_readable_413() -> None:
    with sync_helpers.running(lambda ws: None, max_body=1000) as server:
        body = b"x" * 2 * MiB
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
                head = f"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
                # What matters is reading the answer, even after a reset.
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    sock.sendall(head.encode() + body)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
            assert b"WebSocket" not in answer


def test_a_read_with_more_pings_than_sendmsg_takes_gets_every_pong() -> None:
    # 3,000 empty pings arrive in one read and queue 3,000 one-chunk pongs:
    # more chunks than one sendmsg() takes (IOV_MAX, 1024 on Linux). It failed
    # with EMSGSIZE, which the writer took for a peer gone: it wrote nothing
    # more, silently, while the reader thread read on.
    def handler(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with sync_helpers.running(handler) as server:
        sock = open_websocket(server.port)
        with sock:
            sock.settimeout(10)
            sock.sendall(client_frame(OP_PING, b"") * 3000)
            expected = b"\x8a\x00" * 3000  # section 5.5.3: a pong with the ping's payload
            got = b""
            while len(got) < len(expected):
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                got += chunk
            assert got == expected
            sock.sendall(client_frame(OP_TEXT, b"still open"))
            assert sock.recv(64) == b"\x81\x0astill open"
