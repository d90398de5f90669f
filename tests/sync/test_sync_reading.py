"""When the blocking adapter reads: hubbub.sync.reading.Readiness, alone and in a connection."""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
import sync_helpers

from hubbub.sync import reading
from hubbub.sync.client import connect
from hubbub.sync.reading import Readiness
from hubbub.sync.server import ServerConnection

needs_dontwait = pytest.mark.skipif(
    not hasattr(socket, "MSG_DONTWAIT"), reason="no MSG_DONTWAIT: every read waits first"
)


@needs_dontwait
def test_a_read_that_filled_its_buffer_makes_the_next_one_not_wait() -> None:
    a, b = socket.socketpair()
    readiness = Readiness(a)
    try:
        assert readiness.flags == socket.MSG_DONTWAIT
        assert not readiness.likely
        readiness.read_size(4096, 4096)
        assert readiness.likely
        readiness.read_size(100, 4096)  # the socket was drained
        assert not readiness.likely
        readiness.read_size(0, 0)  # the end of the stream, or an error
        assert not readiness.likely
    finally:
        readiness.close()
        a.close()
        b.close()


def test_a_socket_with_a_python_timeout_always_waits_first() -> None:
    # With a timeout CPython polls before it reads: a "non-blocking" read would wait.
    a, b = socket.socketpair()
    a.settimeout(5.0)
    readiness = Readiness(a)
    try:
        assert readiness.flags == 0
        readiness.read_size(4096, 4096)
        assert not readiness.likely
    finally:
        readiness.close()
        a.close()
        b.close()


def test_wait_tells_bytes_from_a_wakeup() -> None:
    a, b = socket.socketpair()
    readiness = Readiness(a)
    try:
        readiness.wake()
        assert readiness.wait(None) is False  # woken up: returns, nothing to read
        assert readiness.wait(0) is False  # the wakeup was consumed
        b.send(b"x")
        assert readiness.wait(None) is True
        assert readiness.wait(0) is True  # still unread
        assert a.recv(1) == b"x"
        assert readiness.wait(0) is False
    finally:
        readiness.close()
        a.close()
        b.close()


@needs_dontwait
def test_a_read_on_that_finds_nothing_waits_for_the_next_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A frame of exactly one read buffer (65,528 bytes of payload, 8 of
    # header with the masking key): the server's read fills its buffer, so
    # its next read does not wait and finds nothing (EAGAIN). That is not the
    # end of the stream: the message sent after it still arrives.
    sizes: list[tuple[int, int]] = []
    record = Readiness.read_size

    def spy(self: Readiness, got: int, asked: int) -> None:
        sizes.append((got, asked))
        record(self, got, asked)

    monkeypatch.setattr(reading.Readiness, "read_size", spy)
    sent = threading.Event()
    received: list[Any] = []

    def handler(ws: ServerConnection) -> None:
        sent.wait(10)  # the whole first frame is in the kernel's buffer
        for message in ws:
            received.append(message)
            ws.send(len(message).to_bytes(4, "big"))

    first = bytes(range(256)) * 255 + bytes(248)
    assert len(first) == 65528
    with (
        sync_helpers.running(handler) as server,
        connect(f"ws://127.0.0.1:{server.port}/", compression=None) as ws,
    ):
        ws.send(first)
        sent.set()
        assert ws.recv() == (65528).to_bytes(4, "big")
        ws.send(b"second")
        assert ws.recv() == (6).to_bytes(4, "big")
    assert received == [first, b"second"]
    assert (65536, 65536) in sizes  # the full read happened, the wait after it too
