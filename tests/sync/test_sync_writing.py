"""SocketWriter (hubbub.sync.writing) with a real core over a real socket pair."""

from __future__ import annotations

import logging
import os
import socket
import threading

from hubbub.protocol.connection import Connection as Core
from hubbub.protocol.connection import Side, State
from hubbub.protocol.frames import CloseCode, Opcode
from hubbub.sync.writing import SocketWriter

MiB = 1 << 20
logger = logging.getLogger("hubbub.test")


def _pair(buffer: int) -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    return a, b


def test_messages_larger_than_the_kernel_buffers_arrive_whole_and_in_order() -> None:
    # send() takes part of a large write at a time; each part must follow the
    # previous one (resending from the start corrupted the stream).
    payloads = [os.urandom(3 * MiB), os.urandom(100), os.urandom(MiB + 1)]
    a, b = _pair(16384)
    peer = Core(Side.CLIENT, max_size=None)
    received: list[object] = []

    def read_all() -> None:
        while chunk := b.recv(65536):
            peer.receive_data(chunk)
            received.extend(peer.events_received())

    reader = threading.Thread(target=read_all)
    reader.start()
    with a, b:
        core = Core(Side.SERVER)
        writer = SocketWriter(a, core, 10, lambda: None, logger)
        writer.prepare_socket()
        for payload in payloads:
            with writer.lock:
                core.send_data_frame(Opcode.BINARY, payload, True)
                writer.flush()
        a.shutdown(socket.SHUT_WR)
        reader.join(10)
    assert received == payloads
    assert not writer.timed_out
    assert writer.buffered == 0


def test_a_peer_that_reads_nothing_fails_the_connection_after_send_timeout() -> None:
    a, b = _pair(4096)
    eof: list[bool] = []
    with a, b:
        core = Core(Side.SERVER)
        writer = SocketWriter(a, core, 0.2, lambda: eof.append(True), logger)
        writer.prepare_socket()
        with writer.lock:
            core.send_data_frame(Opcode.BINARY, bytes(4 * MiB), True)
            writer.flush()
        assert writer.timed_out
        assert writer.shut
        assert writer.buffered == 0
        # The core knows it failed the connection (section 7.1.7) ...
        assert core.state is not State.OPEN
        assert core.close_sent is not None
        assert core.close_sent.code == CloseCode.INTERNAL_ERROR
        # ... and nothing more is written, not even its close frame: the
        # write may have stopped inside a frame.
        assert core.data_to_send() == []
        assert eof == []


def test_a_slow_peer_that_keeps_reading_gets_a_large_message_whole() -> None:
    # send_timeout bounds a stall, not a message: the peer below takes about
    # 0.8 s to read 512 KiB, far past send_timeout, but never stops for long.
    payload = os.urandom(512 * 1024)
    a, b = _pair(8192)
    peer = Core(Side.CLIENT, max_size=None)
    received: list[object] = []

    def read_slowly() -> None:
        while chunk := b.recv(32768):
            peer.receive_data(chunk)
            received.extend(peer.events_received())
            threading.Event().wait(0.05)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    with a, b:
        core = Core(Side.SERVER)
        writer = SocketWriter(a, core, 0.3, lambda: None, logger)
        writer.prepare_socket()
        with writer.lock:
            core.send_data_frame(Opcode.BINARY, payload, True)
            writer.flush()
        assert not writer.timed_out
        a.shutdown(socket.SHUT_WR)
        reader.join(30)
    assert received == [payload]
