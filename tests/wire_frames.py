"""Frames as they are on the wire, for tests that check what was really sent.

An independent, minimal reader of the RFC 6455 section 5.2 framing (not the
library's own parser), so a test can assert RSV1 bits, opcodes and compressed
sizes of what crossed the socket.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class WireFrame(NamedTuple):
    fin: bool
    rsv1: bool
    opcode: int
    length: int  # payload length on the wire (compressed, if RSV1)


class FrameLog:
    """Data frames parsed from a byte stream that starts at a frame boundary."""

    def __init__(self) -> None:
        self.frames: list[WireFrame] = []
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data
        buf = self._buffer
        while len(buf) >= 2:
            length, offset = buf[1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(buf[2:4]), 4
            elif length == 127:
                length, offset = int.from_bytes(buf[2:10]), 10
            offset += 4 if buf[1] & 0x80 else 0  # masking key
            if len(buf) < offset + length:
                return  # incomplete: wait for more
            if buf[0] & 0xF < 8:  # control frames are never compressed: skip them
                frame = WireFrame(bool(buf[0] & 0x80), bool(buf[0] & 0x40), buf[0] & 0xF, length)
                self.frames.append(frame)
            del buf[: offset + length]

    def take(self) -> list[WireFrame]:
        """The data frames parsed since the last call."""
        frames, self.frames = self.frames, []
        return frames

    def messages(self) -> list[list[WireFrame]]:
        """The data frames grouped by message (a message ends with FIN)."""
        grouped: list[list[WireFrame]] = [[]]
        for frame in self.frames:
            grouped[-1].append(frame)
            if frame.fin:
                grouped.append([])
        return grouped[:-1]


def tap(core: Any, sent: FrameLog, received: FrameLog) -> None:
    """Record what a sans-I/O connection writes to and reads from the socket.

    It wraps the core's ``data_to_send`` and ``receive_data``: every byte the
    adapter writes or reads goes through them. Install it while no frame is in
    flight (right after the handshake), so both streams start at a frame boundary.
    """
    data_to_send, receive_data = core.data_to_send, core.receive_data

    def tapped_data_to_send() -> list[bytes]:
        chunks: list[bytes] = data_to_send()
        for chunk in chunks:
            sent.feed(chunk)
        return chunks

    def tapped_receive_data(data: bytes | bytearray | memoryview) -> None:
        received.feed(data)
        receive_data(data)

    core.data_to_send = tapped_data_to_send
    core.receive_data = tapped_receive_data
