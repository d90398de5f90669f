"""Assembling received frames into messages (RFC 6455 sections 5.4, 5.6, 8.1).

:class:`MessageAssembler` is a mixin of
:class:`hubbub.protocol.connection.Connection`: the connection's parser finds
frames and hands each data frame here, where fragments become one message,
text is validated as UTF-8 as it arrives (so an invalid byte fails the
connection at once, not when the message ends), extensions decode what they
transformed (RFC 7692), and ``max_size`` is enforced. Complete messages are
appended to the connection's events as ``str`` or ``bytes``; with
``stream_fragments`` on, the frames of a fragmented message are appended as
:class:`~hubbub.protocol.events.Fragment` events as each one completes.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, Any

from ..exceptions import PayloadTooBig, RemoteProtocolError
from ..speedups import apply_mask
from .events import Event, Fragment
from .extensions import Extension
from .frames import CloseCode, Frame, Opcode

__all__ = ["MessageAssembler"]

_OP_CONT = Opcode.CONTINUATION
_OP_TEXT = Opcode.TEXT
_OP_BINARY = Opcode.BINARY
_new_decoder = codecs.getincrementaldecoder("utf-8")
# Shared by every connection while no message is being assembled and no large
# frame is held: an idle connection then owns no list for them. A tuple, so
# that code that forgot to make a list of its own fails instead of sharing it.
_NOTHING: Any = ()


def _decode_text(decoder: codecs.IncrementalDecoder, data: bytes | bytearray, final: bool) -> str:
    """Validate and decode the next piece of a text message (section 8.1).

    Raises:
        RemoteProtocolError: with 1007 at the first byte that cannot be part
            of valid UTF-8.
    """
    try:
        text = decoder.decode(data, final)
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(
            f"invalid UTF-8: {exc.reason}", CloseCode.INVALID_FRAME_PAYLOAD_DATA
        ) from None
    if not final:
        # CPython's decoder waits for the third byte of "\xed\xa0".."\xed\xbf"
        # before it rejects the surrogate, but RFC 3629 section 4 already
        # excludes the second: fail fast there too.
        pending = decoder.getstate()[0]
        if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
            # Same words as the codec's, which says this of the third byte:
            # the close reason must not depend on how the bytes were cut.
            raise RemoteProtocolError(
                "invalid UTF-8: invalid continuation byte", CloseCode.INVALID_FRAME_PAYLOAD_DATA
            )
    return text


class MessageAssembler:
    """The message-assembling half of a connection's reading."""

    # The slots are the connection's (see Connection.__slots__): an empty
    # tuple here keeps instances free of a __dict__. Hidden from mypy, which
    # would otherwise refuse every assignment to the connection's slots.
    if not TYPE_CHECKING:
        __slots__ = ()
    extensions: list[Extension]
    max_size: int | None
    pending_events: list[Event]
    _msg_opcode: int
    _msg_parts: list[bytes] | list[str]
    _msg_size: int
    _msg_decoder: codecs.IncrementalDecoder | None
    _msg_transformed: bool
    _msg_streamed: bool
    stream_fragments: bool
    _partial_done: int
    _decoded: int

    def _partial_frame(self, buf: bytearray, pos: int, hlen: int, end: int) -> None:
        """Validate the available part of an incomplete text frame (section 8.1)."""
        b0 = buf[pos]
        masked = buf[pos + 1] & 0x80
        opcode = b0 & 0x0F
        if opcode == _OP_TEXT:
            if self.extensions and self._transformed(b0, opcode):
                return
            if not self._partial_done:
                # The first frame of a text message: its parts start here, but
                # the message is "in progress" only once the frame is complete.
                self._msg_decoder = _new_decoder()
                self._msg_parts = []
                self._msg_size = 0
                self._msg_transformed = False
        elif opcode != _OP_CONT or self._msg_decoder is None or self._msg_transformed:
            # A transformed (compressed) payload is validated once decoded.
            return
        if b0 & 0x70:
            # An extension is negotiated (else _check_first_bytes refused the
            # bits) but none transforms this message: the bits mean nothing
            # (section 5.2), as _extension_frame decides for whole frames.
            raise RemoteProtocolError("reserved bits set without an extension that uses them")
        start = pos + hlen
        done = self._partial_done
        if start + done >= end:
            return
        chunk: bytes | bytearray = buf[start + done : end]
        if masked:
            chunk = apply_mask(chunk, buf[start - 4 : start], done)
            buf[start + done : end] = chunk
        self._partial_done = end - start
        decoder = self._msg_decoder
        assert decoder is not None  # set for a text message, checked above otherwise
        text = _decode_text(decoder, chunk, False)
        parts: list[str] = self._msg_parts  # type: ignore[assignment]
        if text:
            parts.append(text)

    def _data_frame_after_partial(self, data: bytes, done: int, b0: int, opcode: int) -> None:
        """Finish a text frame whose first ``done`` bytes were already validated."""
        decoder = self._msg_decoder
        assert decoder is not None
        fin = b0 & 0x80
        size = self._msg_size + len(data)
        if self.max_size is not None and size > self.max_size:
            raise PayloadTooBig(size, self.max_size)
        text = _decode_text(decoder, data[done:], bool(fin))
        parts: list[str] = self._msg_parts  # type: ignore[assignment]
        if text:
            parts.append(text)
        self._msg_size += len(data)
        if fin:
            if self._msg_streamed or (self.stream_fragments and opcode == _OP_CONT):
                self._fragment(True)
                return
            self.pending_events.append("".join(parts))
            self._end_message()
            return
        if opcode == _OP_TEXT:
            self._msg_opcode = _OP_TEXT
        if self.stream_fragments or self._msg_streamed:
            self._fragment(False)

    def _transformed(self, b0: int, opcode: int) -> bool:
        if opcode == _OP_CONT:
            return self._msg_transformed
        frame = Frame(
            Opcode(opcode), b"", bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10)
        )
        return any(ext.is_transformed(frame) for ext in self.extensions)

    def _extension_frame(self, b0: int, opcode: int, data: bytes) -> None:
        """A data frame when extensions are negotiated: decode it, then assemble it."""
        frame = Frame(
            Opcode(opcode), data, bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10)
        )
        if opcode != _OP_CONT:
            self._msg_transformed = any(ext.is_transformed(frame) for ext in self.extensions)
        if self._msg_transformed:
            budget = None
            if self.max_size is not None:
                budget = self.max_size - self._msg_size
            for ext in reversed(self.extensions):
                frame = ext.decode(frame, max_size=budget)
            # Counted for Connection.decode_limit (the bomb guard).
            self._decoded += len(frame.data)
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            raise RemoteProtocolError("reserved bits set without an extension that uses them")
        self._data_frame(opcode, frame.fin, frame.data)

    def _data_frame(self, opcode: int, fin: int | bool, data: bytes) -> None:
        max_size = self.max_size
        if max_size is not None:
            size = len(data) + (self._msg_size if opcode == _OP_CONT else 0)
            if size > max_size:
                raise PayloadTooBig(size, max_size)
        if opcode == _OP_TEXT:
            if fin:
                try:
                    self.pending_events.append(data.decode())
                except UnicodeDecodeError as exc:
                    raise RemoteProtocolError(
                        f"invalid UTF-8: {exc.reason}", CloseCode.INVALID_FRAME_PAYLOAD_DATA
                    ) from None
                self._msg_transformed = False
                return
            self._msg_decoder = _new_decoder()
            self._msg_opcode = _OP_TEXT
            self._msg_parts = []
            self._msg_size = 0
            self._text_fragment(data, False)
            if self.stream_fragments:
                self._fragment(False)
        elif opcode == _OP_BINARY:
            if fin:
                self.pending_events.append(data)
                self._msg_transformed = False
                return
            self._msg_decoder = None
            self._msg_opcode = _OP_BINARY
            self._msg_parts = [data]
            self._msg_size = len(data)
            if self.stream_fragments:
                self._fragment(False)
        else:  # continuation, checked in _check_header
            if self._msg_opcode == _OP_TEXT:
                self._text_fragment(data, bool(fin))
            else:
                self._msg_size += len(data)
                self._msg_parts.append(data)  # type: ignore[arg-type]
            if self._msg_streamed or self.stream_fragments:
                self._fragment(bool(fin))
            elif fin:
                parts = self._msg_parts
                if self._msg_opcode == _OP_TEXT:
                    self.pending_events.append("".join(parts))  # type: ignore[arg-type]
                else:
                    self.pending_events.append(b"".join(parts))  # type: ignore[arg-type]
                self._end_message()

    def report_fragment(self) -> None:
        """Report what was assembled of a fragmented message in progress, as a Fragment.

        For an adapter that turns ``stream_fragments`` on while frames of a
        message are already in: the application gets them now rather than
        with the next frame, which the peer may send much later. The rest of
        the message is streamed (section 5.4).
        """
        if self._msg_opcode and self._msg_parts:
            self._fragment(False)

    def _fragment(self, fin: bool) -> None:
        """Report what arrived of the message since its last fragment (streaming)."""
        parts = self._msg_parts
        if self._msg_opcode == _OP_TEXT:
            data: str | bytes = "".join(parts)  # type: ignore[arg-type]
        else:
            data = parts[0] if len(parts) == 1 else b"".join(parts)  # type: ignore[arg-type]
        self.pending_events.append(Fragment(data, fin))
        if fin:
            self._end_message()
        else:
            self._msg_streamed = True
            self._msg_parts = []

    def _text_fragment(self, data: bytes, fin: bool) -> None:
        assert self._msg_decoder is not None
        text = _decode_text(self._msg_decoder, data, fin)
        self._msg_size += len(data)
        if text:
            self._msg_parts.append(text)  # type: ignore[arg-type]

    def _end_message(self) -> None:
        self._msg_opcode = 0
        self._msg_streamed = False
        self._msg_parts = _NOTHING
        self._msg_size = 0
        self._msg_decoder = None
        self._msg_transformed = False
