"""Large binary messages between the blocking client and the blocking server.

Both read large frames with ``socket.recv_into()`` straight into the message
(``receive_buffer()`` of the sans-I/O core); a spy on the core counts those
reads per side, so that a silent fall-back to ``recv()`` cannot pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sync_helpers

from client_peers import FAST, tls_contexts
from hubbub import speedups
from hubbub.exceptions import ConnectionClosedError
from hubbub.protocol import Side
from hubbub.protocol import connection as core
from hubbub.sync import connection as sync_connection
from hubbub.sync.client import connect
from hubbub.sync.server import Server, ServerConnection

MiB = 2**20
BIG: dict[str, Any] = dict(max_size=4 * MiB, compression=None)
"""Room for 3 MiB, and no extension (which disables direct reads)."""


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


@contextlib.contextmanager
def running(handler: Callable[[ServerConnection], Any] = echo, **options: Any) -> Iterator[Server]:
    with sync_helpers.running(handler, **options) as server:
        yield server


@pytest.fixture(autouse=True)
def _direct_reads_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # The adapter reads into the payload only with the C accelerator (in pure
    # Python it gathers pieces, as fast there); these tests cover the path in
    # both modes, so they turn it on.
    monkeypatch.setattr(sync_connection, "_DIRECT_READS", True)


DEFAULT_DIRECT_READS = sync_connection._DIRECT_READS  # before any test patches it


def test_direct_reads_follow_the_accelerator() -> None:
    assert DEFAULT_DIRECT_READS is speedups.ACCELERATED


@pytest.fixture
def direct_reads(monkeypatch: pytest.MonkeyPatch) -> dict[Side, int]:
    """Count ``receive_buffer_updated()`` calls per side (the reads into the payload)."""
    counts = {Side.SERVER: 0, Side.CLIENT: 0}
    original = core.Connection.receive_buffer_updated
    lock = threading.Lock()

    def spy(self: core.Connection, nbytes: int) -> None:
        with lock:
            counts[self.side] += 1
        original(self, nbytes)

    monkeypatch.setattr(core.Connection, "receive_buffer_updated", spy)
    return counts


@pytest.mark.parametrize("size", [MiB, 2 * MiB + 1, 3 * MiB], ids=["1MiB", "2MiB+1", "3MiB"])
def test_echo_large_binary(size: int, direct_reads: dict[Side, int]) -> None:
    payload = os.urandom(size)
    with (
        running(**BIG) as server,
        connect(f"ws://127.0.0.1:{server.port}", **FAST, **BIG) as ws,
    ):
        ws.send(payload)
        echoed = ws.recv(timeout=10)
        assert type(echoed) is bytes
        assert echoed == payload
        # Small messages after it: the reader is back on the ordinary path.
        ws.send(b"small")
        assert ws.recv(timeout=5) == b"small"
        ws.send("text")
        assert ws.recv(timeout=5) == "text"
    assert ws.close_code == 1000
    assert direct_reads[Side.SERVER] > 0
    assert direct_reads[Side.CLIENT] > 0


def test_many_large_messages_in_a_row(direct_reads: dict[Side, int]) -> None:
    payloads = [os.urandom(n) for n in (70_000, MiB, 100, 3 * MiB, 65_537, 2 * MiB)]
    with (
        running(**BIG) as server,
        connect(f"ws://127.0.0.1:{server.port}", **FAST, **BIG) as ws,
    ):

        def send_all() -> None:
            for payload in payloads:
                ws.send(payload)

        sender = threading.Thread(target=send_all)
        sender.start()
        got = [ws.recv(timeout=10) for _ in payloads]
        sender.join(10)
        assert got == payloads
    assert direct_reads[Side.SERVER] > 0
    assert direct_reads[Side.CLIENT] > 0


def test_fragmented_large_message(direct_reads: dict[Side, int]) -> None:
    parts = [os.urandom(MiB), os.urandom(10), os.urandom(MiB)]
    with (
        running(**BIG) as server,
        connect(f"ws://127.0.0.1:{server.port}", **FAST, **BIG) as ws,
    ):
        ws.send(parts)
        assert ws.recv(timeout=10) == b"".join(parts)
    assert direct_reads[Side.SERVER] > 0


def test_max_size_exceeded_by_a_large_message(direct_reads: dict[Side, int]) -> None:
    with (
        running(max_size=MiB, compression=None) as server,
        connect(f"ws://127.0.0.1:{server.port}", **FAST, **BIG) as ws,
    ):
        ws.send(os.urandom(2 * MiB))
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=5)
    assert info.value.code == 1009
    assert direct_reads[Side.SERVER] == 0  # refused on the header, nothing read into


def first_outcome(outcome: list[object]) -> Callable[[ServerConnection], None]:
    """A handler that records its first message, or the close code if none came."""

    def handler(ws: ServerConnection) -> None:
        try:
            outcome.append(ws.recv(timeout=10))
        except ConnectionClosedError as exc:
            outcome.append(exc.code)

    return handler


def test_peer_vanishes_mid_frame(direct_reads: dict[Side, int]) -> None:
    """Header and half the payload, then TCP closes: the handler sees 1006."""
    outcome: list[object] = []
    handler = first_outcome(outcome)

    size = MiB
    key = os.urandom(4)
    pad = (key * (size // 4 + 1))[:size]
    masked = (int.from_bytes(os.urandom(size), "big") ^ int.from_bytes(pad, "big")).to_bytes(
        size, "big"
    )
    frame = bytes([0x82, 0xFF]) + struct.pack("!Q", size) + key + masked
    with running(handler, **BIG) as server:
        with raw_handshake(server.port) as sock:
            sock.sendall(frame[: 14 + size // 2])
            deadline = threading.Event()
            for _ in range(500):  # until the server reads into the payload
                if direct_reads[Side.SERVER]:
                    break
                deadline.wait(0.01)
        for _ in range(500):
            if outcome:
                break
            deadline.wait(0.01)
    assert outcome == [1006]
    assert direct_reads[Side.SERVER] > 0


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return tls_contexts(tmp_path_factory.mktemp("tls"))


def test_echo_large_binary_over_tls(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], direct_reads: dict[Side, int]
) -> None:
    """recv_into() on an SSLSocket; decrypted bytes select() cannot see are not lost."""
    server_ctx, client_ctx = tls
    payloads = [os.urandom(3 * MiB), b"small", os.urandom(MiB)]
    with (
        running(ssl=server_ctx, **BIG) as server,
        connect(f"wss://127.0.0.1:{server.port}/", ssl=client_ctx, **FAST, **BIG) as ws,
    ):
        for payload in payloads:
            ws.send(payload)
        assert [ws.recv(timeout=10) for _ in payloads] == payloads
    assert ws.close_code == 1000
    assert direct_reads[Side.SERVER] > 0
    assert direct_reads[Side.CLIENT] > 0


def raw_handshake(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "no handshake response"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101")
    return sock


def test_unallocatable_frame_length_is_not_a_reader_crash(caplog: pytest.LogCaptureFixture) -> None:
    outcome: list[object] = []
    handler = first_outcome(outcome)

    with running(handler, max_size=None, compression=None) as server:
        with raw_handshake(server.port) as sock:
            sock.sendall(bytes([0x82, 0xFF]) + struct.pack("!Q", 2**62) + b"abcd" + bytes(1000))
            # More of the payload: the reader asks for the receive buffer now.
            sock.sendall(bytes(1000))
            sock.settimeout(1.0)
            with contextlib.suppress(OSError):
                while sock.recv(65536):
                    pass
        waiter = threading.Event()
        for _ in range(500):
            if outcome:
                break
            waiter.wait(0.01)
    assert outcome
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
