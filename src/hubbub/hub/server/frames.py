"""The frame of a push, encoded once for every connection, and the pace of channel publications.

See :class:`FrameCache`; the hub's server (:mod:`hubbub.hub.server`) keeps one
per encoding (JSON text, MessagePack binary) and its outboxes write the frame
to every connection that shares frames (RFC 6455 section 5.1: a server does
not mask, so the bytes are the same on each).
"""

from __future__ import annotations

import asyncio

from ...protocol.frames import Opcode, encode_shared_frame

__all__ = ["LONE_WINDOW", "FrameCache"]

#: See :class:`FrameCache`: how recent a lone publication must be for the
#: next one to be written at once rather than held (seconds).
LONE_WINDOW = 0.005


class FrameCache:
    """The unmasked frame of the last push, shared by every connection of one encoding.

    The node encodes a fan-out push once and hands the same ``str`` object to
    each local recipient in a row, so an identity check finds it (for msgpack
    sessions, the same ``bytes`` object :class:`MsgpackEncoder` packed from it).

    It also paces channel publications (:meth:`published`, :attr:`hold`):
    holding each subscriber's frames to the end of the loop iteration
    (``send_frames_soon``) merges the publications of one iteration into one
    write per subscriber, but costs more per delivery than writing at once
    when there is nothing to merge (about 4,000 instructions more,
    ``benchmarks/hub_callgrind.py``). So a publication is written at once
    only while the hub is busy with lone ones: when the iteration that fanned
    out the last publications had exactly one and ended less than
    :data:`LONE_WINDOW` ago (a single publisher at full speed). Every other
    publication is held: the second and later ones of an iteration, and the
    first one after a batch, after several publishers, or after a pause
    (where the cost of holding does not matter).
    """

    __slots__ = ("_count", "_ended", "_last", "_marked", "frame", "hold", "text")

    def __init__(self) -> None:
        self.text: str | bytes | None = None
        self.frame = b""
        self.hold = False
        """Whether the publication being fanned out is held (see the class docstring)."""
        self._count = 0  # publications fanned out in this loop iteration
        self._last = 0  # ... and in the last iteration that had any,
        self._ended = 0.0  # ... which ended then (the loop's clock)
        self._marked = False  # _end_iteration is scheduled

    def encode(self, text: str | bytes) -> bytes:
        if text is not self.text:
            # A str is a JSON text frame, bytes a MessagePack binary one (5.6).
            if isinstance(text, str):
                opcode, payload = Opcode.TEXT, text.encode()
            else:
                opcode, payload = Opcode.BINARY, text
            # One bytes object (FIN set, no RSV bit, unmasked: sections 5.1,
            # 5.2): the outbox writes it to every connection that shares frames.
            self.frame = encode_shared_frame(opcode, payload)
            self.text = text
        return self.frame

    def published(self, text: str | bytes) -> bytes:
        """The frame of a new channel publication; sets :attr:`hold` for its fan-out."""
        if self._marked:
            self.hold = True  # another one in this iteration: merge them
        else:
            self._marked = True
            loop = asyncio.get_running_loop()
            loop.call_soon(self._end_iteration, loop)
            self.hold = self._last != 1 or loop.time() - self._ended > LONE_WINDOW
        self._count += 1
        return self.encode(text)

    def _end_iteration(self, loop: asyncio.AbstractEventLoop) -> None:
        self._marked = False
        self._last, self._count = self._count, 0
        self._ended = loop.time()
