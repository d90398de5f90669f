"""Sending messages, fragments, pings and pongs (RFC 6455 sections 5.4-5.6).

:class:`Sender` is a mixin of :class:`hubbub.protocol.connection.Connection`:
it turns messages and fragments into frames on the connection's output,
through the negotiated extensions, and enforces what the RFC says a sender
may not do (a new message inside a fragmented one, sending after close).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..exceptions import InvalidState, LocalProtocolError
from ..speedups import message_frame as _message_frame
from .events import State
from .extensions import Extension
from .frames import Frame, Opcode, encode_frame

if TYPE_CHECKING:
    from .connection import Writer

__all__ = ["Sender"]

# Plain ints: arithmetic on IntEnum members is several times slower, and the
# small-message path below runs once per message.
_OP_CONT = int(Opcode.CONTINUATION)
_OP_TEXT = int(Opcode.TEXT)
_OP_BINARY = int(Opcode.BINARY)
_OP_PING = Opcode.PING
_OP_PONG = Opcode.PONG
_pack_tiny = struct.Struct("!BB").pack
_DATA_OPCODES = (_OP_TEXT, _OP_BINARY, _OP_CONT)
# A module global: on CPython 3.11 reading an Enum member as a class attribute
# (State.OPEN) costs ten times a global, ~1,000 instructions, on per-message paths.
_OPEN = State.OPEN


class Sender:
    """The sending half of a connection (closing stays with the connection)."""

    # The slots of the rest are the connection's (see Connection.__slots__).
    __slots__ = ("_send_opcode", "_send_plain")
    state: State
    extensions: list[Extension]
    _out: list[bytes]
    _mask: bool
    _send_opcode: int
    _send_plain: bool

    @property
    def sending_fragmented(self) -> bool:
        """Whether a fragmented message is being sent (its last frame is not out).

        Section 5.4 allows no other data frame until it ends: a fast path that
        writes frames of its own (:meth:`shares_frames`) must wait or skip.
        """
        return self._send_opcode != 0

    @property
    def shares_frames(self) -> bool:
        """Whether the frames this connection sends are the same bytes on any other.

        True for a server without extensions: it does not mask (section 5.1)
        nor transform frames (RFC 7692 compresses per connection), so a
        message encoded once with :func:`~hubbub.protocol.frames.encode_shared_frame`
        may be written to every such connection.
        """
        return not self._mask and not self.extensions

    def write_shared_frames(self, writer: Writer, frames: bytes) -> bool:
        """Write frames encoded once for many connections, after what is queued.

        ``frames`` are whole data messages (FIN set) from
        :func:`~hubbub.protocol.frames.encode_shared_frame`. They are handed to
        ``writer`` only when this connection :attr:`shares_frames`, is OPEN and
        is not sending a fragmented message (section 5.4 allows no other data
        frame inside one); the chunks queued before them go first, in the same
        call. One call instead of three checks and a flush: the per-connection
        step of a broadcast.

        Returns:
            Whether ``frames`` were written.
        """
        if self.state is not _OPEN or self._send_opcode or self._mask or self.extensions:
            return False
        if self._out:
            out = self.data_to_send()
            out.append(frames)
            writer.writelines(out)
        else:
            writer.write(frames)
        return True

    def data_to_send(self) -> list[bytes]:
        raise NotImplementedError  # the connection's

    def _write(self, opcode: int, data: bytes, fin: bool = True, rsv1: bool = False) -> None:
        self._out.extend(encode_frame(opcode, data, fin=fin, rsv1=rsv1, mask=self._mask))

    def _check_open(self) -> None:
        if self.state is not _OPEN:
            raise InvalidState(f"cannot send in state {self.state.name}")

    def send_data_frame(
        self, opcode: int, data: bytes, fin: bool = True, compress: bool = True
    ) -> None:
        """Send a data frame given its opcode: TEXT, BINARY or CONTINUATION.

        The per-message path of the adapters (and how they turn an iterable
        into fragments); ``compress`` only matters on a message's first frame.

        Raises:
            LocalProtocolError: not a data opcode, or a frame that section 5.4
                does not allow here (a continuation with no message to
                continue, a new message inside a fragmented one).
            InvalidState: the connection is not OPEN.
        """
        if (
            fin
            and len(data) < 126
            and self.state is _OPEN
            and not self._send_opcode
            # TEXT or BINARY: two int compares cost less than a set lookup
            # on this per-message path (and text, the usual case, needs one).
            and (opcode == 1 or opcode == 2)  # noqa: PLR1714
            and not self._mask
            and not self.extensions
        ):
            # Fast path: a whole small message from a server, one chunk with a
            # 2-byte header (section 5.2: 7-bit length, no masking key).
            self._out.append(_pack_tiny(0x80 | opcode, len(data)) + data)
            return
        if opcode not in _DATA_OPCODES:
            raise LocalProtocolError(f"{opcode:#x} is not a data opcode")
        self._check_open()
        if opcode == _OP_CONT:
            if not self._send_opcode:
                raise LocalProtocolError("no fragmented message to continue")
        elif self._send_opcode:
            raise LocalProtocolError("a fragmented message is being sent; finish it first")
        if self.extensions:
            if opcode != _OP_CONT:
                # RFC 7692 section 6: any message may go untransformed; the
                # first frame's choice holds for its continuation frames.
                self._send_plain = not compress
            if self._send_plain:
                self._write(opcode, data, fin)
            else:
                frame = Frame(Opcode(opcode), data, fin)
                for ext in self.extensions:
                    frame = ext.encode(frame)
                self._write(opcode, frame.data, fin, frame.rsv1)
        else:
            self._out.extend(encode_frame(opcode, data, fin=fin, mask=self._mask))
        if opcode != _OP_CONT:
            self._send_opcode = 0 if fin else opcode
        elif fin:
            self._send_opcode = 0

    def send_message(self, message: str | bytes, compress: bool = True) -> None:
        """Send a whole message of one frame: ``str`` as text, ``bytes`` as binary.

        The per-message path of callback mode: a small message from a server
        without extensions (section 5.1: no masking) is queued as one frame
        built in one piece by :func:`hubbub.speedups.message_frame`; anything
        else goes through :meth:`send_data_frame`.

        Raises:
            InvalidState: the connection is not OPEN.
            LocalProtocolError: a fragmented message is being sent.
        """
        if (
            len(message) < 1024  # larger payloads are not copied: header and data apart
            and self.state is _OPEN
            and not self._send_opcode
            and not self._mask
            and not self.extensions
        ):
            self._out.append(_message_frame(message))
        elif isinstance(message, str):
            self.send_data_frame(_OP_TEXT, message.encode(), True, compress)
        else:
            self.send_data_frame(_OP_BINARY, message, True, compress)

    def send_text(self, data: str | bytes, fin: bool = True, *, compress: bool = True) -> None:
        """Send a text message, or its first fragment when ``fin`` is false.

        ``bytes`` are sent as they are and must be valid UTF-8. With
        ``compress=False`` the message (continuations included) skips the
        extensions: it is sent uncompressed even if permessage-deflate is on.
        """
        self.send_data_frame(
            _OP_TEXT, data.encode() if isinstance(data, str) else data, fin, compress
        )

    def send_binary(
        self, data: bytes | bytearray | memoryview, fin: bool = True, *, compress: bool = True
    ) -> None:
        """Send a binary message, or its first fragment; ``compress`` as in :meth:`send_text`."""
        self.send_data_frame(_OP_BINARY, bytes(data), fin, compress)

    def send_continuation(self, data: str | bytes, fin: bool) -> None:
        """Send the next fragment of the message being sent (section 5.4)."""
        self.send_data_frame(_OP_CONT, data.encode() if isinstance(data, str) else bytes(data), fin)

    def _send_control(self, opcode: int, data: bytes) -> None:
        self._check_open()
        if len(data) > 125:
            raise LocalProtocolError("control frame payload longer than 125 bytes")
        self._write(opcode, data)

    def send_ping(self, data: bytes = b"") -> None:
        """Send a ping (section 5.5.2); at most 125 bytes of payload."""
        self._send_control(_OP_PING, data)

    def send_pong(self, data: bytes = b"") -> None:
        """Send an unsolicited pong, a heartbeat (section 5.5.3)."""
        self._send_control(_OP_PONG, data)
