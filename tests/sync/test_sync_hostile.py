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

import sync_helpers

from hubbub.adapter import DECODE_STEP
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
            sock.setblocking(False)
            flood = client_frame(OP_PING, b"p" * 125) * 200_000  # 26 MB
            sent = 0
            stalls = 0
            while sent < len(flood) and stalls < 200:
                try:
                    sent += sock.send(flood[sent : sent + 65536])
                    stalls = 0
                except BlockingIOError:
                    stalls += 1
                    time.sleep(0.01)
            stop.set()
            # The reader thread waits in sendall for the peer to read its
            # pongs: it stopped reading, so TCP pushed back on the flood.
            assert sent < len(flood)
    # What the pongs of one 64 KiB read weigh, at most.
    assert most[0] <= 65536, most[0]


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
