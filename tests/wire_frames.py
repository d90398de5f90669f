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


class _RecordingChunks(list[bytes]):
    """The core's ``outgoing`` list, recording the chunks as they are taken."""

    def __init__(self, chunks: list[bytes], log: FrameLog) -> None:
        super().__init__(chunks)
        self.log = log

    def clear(self) -> None:
        for chunk in self:
            self.log.feed(chunk)
        super().clear()


def tap(core: Any, sent: FrameLog, received: FrameLog) -> None:
    """Record what a sans-I/O connection writes to and reads from the socket.

    What is written is recorded when the adapter takes the queued chunks,
    which it does by emptying the core's ``outgoing`` list (``clear()``,
    directly or through ``data_to_send()``): that list becomes one that
    records the chunks it lets go (the core and its frame writer share it).
    The cores have ``__slots__``, so their methods cannot be replaced on the
    instance: ``core`` becomes an instance of a subclass of its class, with the
    same layout, whose ``receive_data`` records what is read. Install it while
    no frame is in flight (right after the handshake), so both streams start
    at a frame boundary.
    """
    base = type(core)
    core.outgoing = core.writer.outgoing = _RecordingChunks(core.outgoing, sent)

    def receive_data(self: Any, data: bytes | bytearray | memoryview) -> None:
        received.feed(data)
        base.receive_data(self, data)

    namespace = {"__slots__": (), "receive_data": receive_data}
    core.__class__ = type(f"Tapped{base.__name__}", (base,), namespace)
