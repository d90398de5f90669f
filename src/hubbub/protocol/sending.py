"""Writing frames: messages, fragments and control frames (RFC 6455 sections 5.2-5.6).

A :class:`FrameWriter` is one part of a
:class:`~hubbub.protocol.connection.Connection`, owned by it. It turns data
and control payloads into frames, through the negotiated extensions, and
appends them to :attr:`FrameWriter.outgoing`: the list of chunks the adapter
writes to the transport. It enforces what section 5.4 says a sender may not do
(a new message inside a fragmented one, a continuation of nothing); *whether*
the connection may send at all (its state, section 7) is the connection's
business, and the connection asks the writer only when it may.
"""

from __future__ import annotations

import struct

from ..exceptions import LocalProtocolError
from ..speedups import ChunkWriter
from .extensions import Extension
from .frames import Frame, Opcode, encode_frame, serialize_close

__all__ = ["FrameWriter", "Writer"]

# Plain ints: arithmetic on IntEnum members is several times slower, and the
# small-message path below runs once per message.
_OP_CONT = int(Opcode.CONTINUATION)
_OP_TEXT = int(Opcode.TEXT)
_OP_BINARY = int(Opcode.BINARY)
_OP_CLOSE = int(Opcode.CLOSE)
_OP_PONG = int(Opcode.PONG)
_pack_tiny = struct.Struct("!BB").pack
_DATA_OPCODES = (_OP_TEXT, _OP_BINARY, _OP_CONT)


Writer = ChunkWriter
"""Where ``Connection.write_to()`` puts the chunks: an asyncio transport, say."""


class FrameWriter:
    """Frames to send, encoded into the list of chunks for the transport.

    Args:
        mask: mask every frame (a client, section 5.3).
        extensions: the negotiated extensions, in the order of the server's
            answer; the connection's list, whose content may change once, at
            the end of the opening handshake.
    """

    # Slots: a server holds thousands of idle connections (see Connection).
    __slots__ = (
        "_opcode",
        "_plain",
        "_pong_due",
        "_pongs_deferred",
        "extensions",
        "mask",
        "outgoing",
        "takes_shared_frames",
    )

    def __init__(self, mask: bool, extensions: list[Extension]) -> None:
        self.mask = mask
        self.extensions = extensions
        self.outgoing: list[bytes] = []
        """The chunks to write, oldest first; always this same list.

        Whoever writes them to the transport removes them (``clear()``),
        never replaces the list: the connection and its writer share it.
        """
        # The opcode of the message being sent in fragments, or 0.
        self._opcode = 0
        # The message being sent skips the extensions (compress=False).
        self._plain = False
        # See defer_pongs(): the payload of the latest ping unanswered.
        self._pongs_deferred = False
        self._pong_due: bytes | None = None
        self.takes_shared_frames = not mask and not extensions
        """Whether a whole unmasked frame may be appended to :attr:`outgoing` as it is.

        True while this writer neither masks (a server, section 5.1) nor has an
        extension to transform frames, and is not in the middle of a
        fragmented message (section 5.4 allows no other data frame inside
        one): then :func:`hubbub.speedups.message_frame` or
        :func:`~hubbub.protocol.frames.encode_shared_frame` builds exactly the
        frame this writer would. Read-only: an attribute, not a property,
        because the per-message paths read it; kept up to date here and by
        :meth:`extensions_changed`.
        """

    def extensions_changed(self) -> None:
        """The content of the extensions list changed (the opening handshake's answer)."""
        self.takes_shared_frames = not self.mask and not self.extensions and not self._opcode

    @property
    def sending_fragmented(self) -> bool:
        """Whether a fragmented message is being sent (its last frame is not out)."""
        return self._opcode != 0

    @property
    def shares_frames(self) -> bool:
        """Whether the frames written are the same bytes on any unmasked, plain connection."""
        return not self.mask and not self.extensions

    def message(self, message: str | bytes, compress: bool = True) -> None:
        """Write a whole message of one frame: ``str`` as text, ``bytes`` as binary.

        The caller checked that the connection is OPEN; a small message while
        :attr:`takes_shared_frames` is built by the caller itself (the core's
        ``send_message``: one call less per message).

        Raises:
            LocalProtocolError: a fragmented message is being sent.
        """
        if isinstance(message, str):
            self.data_frame(_OP_TEXT, message.encode(), True, compress)
        else:
            self.data_frame(_OP_BINARY, message, True, compress)

    def queue_shared(self, frames: bytes) -> bool:
        """Queue ``frames`` encoded once for many connections, after what is queued.

        Only while :attr:`takes_shared_frames` (no mask, no extension, not
        inside a fragmented message: section 5.4 allows no other data frame
        inside one). Nothing is written: the frames join :attr:`outgoing`, and
        whoever writes that list next writes them, in order with every frame
        queued before or after them (pongs and close frames included). The
        caller checked that the connection is OPEN.

        Returns:
            Whether ``frames`` were queued.
        """
        if not self.takes_shared_frames:
            return False
        self.outgoing.append(frames)
        return True

    def write(self, opcode: int, data: bytes) -> None:
        """Write a whole frame as it is, without extensions: control frames (section 5.5).

        The caller checked the payload (at most 125 bytes).
        """
        self.outgoing.extend(encode_frame(opcode, data, mask=self.mask))

    def pong(self, data: bytes) -> None:
        """Answer a ping (section 5.5.2), or keep ``data`` as the answer due while deferred."""
        if self._pongs_deferred:
            self._pong_due = data  # section 5.5.3: the latest one only
        else:
            self.write(_OP_PONG, data)

    def defer_pongs(self, defer: bool) -> bytes | None:
        """Hold back the answers to pings from now on, or stop holding them back.

        See :meth:`~hubbub.protocol.connection.Connection.defer_pongs`.

        Returns:
            When deferral ends, the payload of the latest ping unanswered (the
            caller writes its pong if the connection may still send); else None.
        """
        self._pongs_deferred = defer
        data = self._pong_due
        if defer or data is None:
            return None
        self._pong_due = None
        return data

    def close(self, code: int | None, reason: str = "", *, cut: bool = False) -> str:
        """Write a close frame (section 5.5.1); ``code`` None sends no status.

        Args:
            cut: cut a reason too long for a control frame (at most 125 bytes,
                section 5.5) rather than refuse it, without splitting a character.

        Returns:
            The reason sent.

        Raises:
            LocalProtocolError: the code may not be sent or the reason is too long.
        """
        if cut:
            reason = reason.encode(errors="replace")[:123].decode(errors="ignore")
        self.write(_OP_CLOSE, serialize_close(code, reason))
        return reason

    def data_frame(self, opcode: int, data: bytes, fin: bool = True, compress: bool = True) -> None:
        """Write a data frame given its opcode: TEXT, BINARY or CONTINUATION.

        ``compress`` only matters on a message's first frame. The caller
        checked that the connection is OPEN.

        Raises:
            LocalProtocolError: not a data opcode, or a frame that section 5.4
                does not allow here (a continuation with no message to
                continue, a new message inside a fragmented one).
        """
        if (
            fin
            and len(data) < 126
            and self.takes_shared_frames
            # TEXT or BINARY: two int compares cost less than a set lookup
            # on this per-message path (and text, the usual case, needs one).
            and (opcode == 1 or opcode == 2)  # noqa: PLR1714
        ):
            # Fast path: a whole small message from a server, one chunk with a
            # 2-byte header (section 5.2: 7-bit length, no masking key).
            self.outgoing.append(_pack_tiny(0x80 | opcode, len(data)) + data)
            return
        check_data_opcode(opcode)
        if opcode == _OP_CONT:
            if not self._opcode:
                raise LocalProtocolError("no fragmented message to continue")
        elif self._opcode:
            raise LocalProtocolError("a fragmented message is being sent; finish it first")
        rsv1 = False
        if self.extensions:
            if opcode != _OP_CONT:
                # RFC 7692 section 6: any message may go untransformed; the
                # first frame's choice holds for its continuation frames.
                self._plain = not compress
            if not self._plain:
                frame = Frame(Opcode(opcode), data, fin)
                for ext in self.extensions:
                    frame = ext.encode(frame)
                data, rsv1 = frame.data, frame.rsv1
        self.outgoing.extend(encode_frame(opcode, data, fin=fin, rsv1=rsv1, mask=self.mask))
        if opcode != _OP_CONT:
            self._opcode = 0 if fin else opcode
        elif fin:
            self._opcode = 0
        self.takes_shared_frames = not self.mask and not self.extensions and not self._opcode


def check_data_opcode(opcode: int) -> None:
    """Refuse an opcode that is not TEXT, BINARY or CONTINUATION.

    Raises:
        LocalProtocolError: it is not.
    """
    if opcode not in _DATA_OPCODES:
        raise LocalProtocolError(f"{opcode:#x} is not a data opcode")
