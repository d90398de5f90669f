"""Assembling received data frames into messages (RFC 6455 sections 5.4, 5.6, 8.1).

A :class:`MessageAssembler` is one part of a
:class:`~hubbub.protocol.connection.Connection`, owned by it and handed each
data frame by the connection's frame reader
(:class:`~hubbub.protocol.reader.FrameReader`). It owns the message in
progress: fragments become one message, text is validated as UTF-8 as it
arrives (so an invalid byte fails the connection at once, not when the message
ends), extensions decode what they transformed (RFC 7692), and the message's
size is judged by the connection's :class:`~hubbub.protocol.limits.Limits`.
Complete messages are appended to the connection's events as ``str`` or
``bytes``; with :attr:`MessageAssembler.stream_fragments` on, the frames of a
fragmented message are appended as :class:`~hubbub.protocol.events.Fragment`
events as each one completes.

It knows nothing of the connection: it is handed the events list, the
negotiated extensions and the limits, and raises
:class:`~hubbub.exceptions.RemoteProtocolError` for the connection to fail on.
"""

from __future__ import annotations

import codecs
from typing import Any

from ..exceptions import RemoteProtocolError
from .events import Event, Fragment
from .extensions import Extension
from .frames import CloseCode, Frame, Opcode
from .limits import Limits

__all__ = ["MessageAssembler"]

_OP_CONT = Opcode.CONTINUATION
_OP_TEXT = Opcode.TEXT
_OP_BINARY = Opcode.BINARY
_new_decoder = codecs.getincrementaldecoder("utf-8")
# Parts of a message kept as they came, at most, since the last join (see _add).
_MAX_PARTS = 1024
# Shared by every connection while no message is being assembled: an idle
# connection then owns no list for it. A tuple, so that code that forgot to
# make a list of its own fails instead of sharing it.
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
    """The message being received, assembled from its data frames.

    Args:
        events: where complete messages (and fragments) are appended: the
            connection's ``pending_events``.
        extensions: the negotiated extensions, in the order of the server's
            answer; the connection's list, whose content may change once, at
            the end of the opening handshake.
        limits: the bounds to enforce (``max_size``); replace with
            :attr:`limits`.
    """

    # Slots: a server holds thousands of idle connections (see Connection).
    __slots__ = (
        "_decoder",
        "_joined",
        "_parts",
        "_streamed",
        "_transformed",
        "events",
        "extensions",
        "limits",
        "opcode",
        "size",
        "stream_fragments",
    )

    def __init__(self, events: list[Event], extensions: list[Extension], limits: Limits) -> None:
        self.events = events
        self.extensions = extensions
        self.limits = limits
        self.opcode = 0
        """TEXT or BINARY while a fragmented message is in progress, else 0 (read-only)."""
        self.size = 0
        """Bytes of the message in progress received so far, decoded (read-only)."""
        self._parts: list[bytes] | list[str] = _NOTHING
        self._joined = 0  # parts at the head of _parts that are joins of others
        self._decoder: codecs.IncrementalDecoder | None = None
        self._transformed = False
        self._streamed = False  # its frames are reported as Fragment events
        self.stream_fragments = False
        """Report the frames of fragmented messages as :class:`Fragment` events.

        Read when a frame of a fragmented message completes: the message's
        frames from then on (with what was assembled before, in the first
        one) become ``Fragment`` events, until its last frame, even if this is
        turned off meanwhile. Single-frame messages stay ``str``/``bytes``.
        ``max_size`` still bounds the whole message.
        """

    @property
    def text_in_progress(self) -> bool:
        """Whether a text message is being validated (its frames must be read as they come)."""
        return self._decoder is not None

    def transformed(self, b0: int, opcode: int) -> bool:
        """Whether an extension transforms the data frame whose first byte is ``b0``."""
        if opcode == _OP_CONT:
            return self._transformed
        frame = Frame(
            Opcode(opcode), b"", bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10)
        )
        return any(ext.is_transformed(frame) for ext in self.extensions)

    # --- text frames that arrive in pieces (section 8.1) -------------------------

    def begin_partial(self, b0: int, opcode: int, first: bool) -> bool:
        """Whether the available part of an incomplete data frame is to be validated now.

        True for the frames of an untransformed text message. ``first``: none
        of this frame's payload was handed over yet.

        Raises:
            RemoteProtocolError: RSV bits that no extension uses (section 5.2).
        """
        if opcode == _OP_TEXT:
            if self.extensions and self.transformed(b0, opcode):
                return False
            if first:
                # The first frame of a text message: its parts start here, but
                # the message is "in progress" only once the frame is complete.
                self._decoder = _new_decoder()
                self._parts = []
                self._joined = 0
                self.size = 0
                self._transformed = False
        elif opcode != _OP_CONT or self._decoder is None or self._transformed:
            # A transformed (compressed) payload is validated once decoded.
            return False
        if b0 & 0x70:
            # An extension is negotiated (else the frame reader refused the
            # bits) but none transforms this message: the bits mean nothing
            # (section 5.2), as extension_frame decides for whole frames.
            raise RemoteProtocolError("reserved bits set without an extension that uses them")
        return True

    def partial_text(self, chunk: bytes | bytearray) -> None:
        """Validate the next unmasked piece of an incomplete text frame."""
        decoder = self._decoder
        assert decoder is not None  # begin_partial() said yes
        text = _decode_text(decoder, chunk, False)
        if text:
            self._add(text)

    def finish_partial(self, data: bytes, done: int, b0: int, opcode: int) -> None:
        """Finish a text frame whose first ``done`` bytes went to :meth:`partial_text`."""
        decoder = self._decoder
        assert decoder is not None
        fin = b0 & 0x80
        self.limits.check_message(self.size + len(data))
        text = _decode_text(decoder, data[done:], bool(fin))
        if text:
            self._add(text)
        parts: list[str] = self._parts  # type: ignore[assignment]
        self.size += len(data)
        if fin:
            if self._streamed or (self.stream_fragments and opcode == _OP_CONT):
                self._fragment(True)
                return
            self.events.append("".join(parts))
            self._end_message()
            return
        if opcode == _OP_TEXT:
            self.opcode = _OP_TEXT
        if self.stream_fragments or self._streamed:
            self._fragment(False)

    # --- whole frames --------------------------------------------------------

    def extension_frame(self, b0: int, opcode: int, data: bytes, limit: int | None = None) -> int:
        """A data frame when extensions are negotiated: decode it, then assemble it.

        With ``limit``, an extension that can (``partial_decoding``, the only
        one negotiated) decodes at most that many bytes of the frame now; the
        part decoded is assembled as a fragment (section 5.4) and
        :attr:`decoding` stays true until :meth:`decode_rest` assembled the
        rest.

        Returns:
            How many bytes extensions decoded (for the connection's decode limit).
        """
        frame = Frame(
            Opcode(opcode), data, bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10)
        )
        extensions = self.extensions
        if opcode != _OP_CONT:
            self._transformed = any(ext.is_transformed(frame) for ext in extensions)
        decoded = 0
        if self._transformed:
            budget = self.limits.inflate_budget(self.size)
            if limit is not None and len(extensions) == 1 and extensions[0].partial_decoding:
                frame = extensions[0].decode(frame, max_size=budget, limit=limit)  # type: ignore[call-arg]
            else:
                for ext in reversed(extensions):
                    frame = ext.decode(frame, max_size=budget)
            decoded = len(frame.data)
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            raise RemoteProtocolError("reserved bits set without an extension that uses them")
        self.data_frame(opcode, frame.fin, frame.data)
        return decoded

    @property
    def decoding(self) -> bool:
        """Whether part of the last frame waits to be decoded (see :meth:`extension_frame`)."""
        extensions = self.extensions
        return bool(extensions) and extensions[0].decode_pending

    def decode_rest(self, limit: int | None) -> int:
        """Decode and assemble the next part (at most ``limit`` bytes) of a pending frame.

        Returns:
            How many bytes were decoded.
        """
        budget = self.limits.inflate_budget(self.size)
        frame = self.extensions[0].decode_rest(max_size=budget, limit=limit)
        self.data_frame(_OP_CONT, frame.fin, frame.data)
        return len(frame.data)

    def data_frame(self, opcode: int, fin: int | bool, data: bytes) -> None:
        """Assemble a data frame, its payload unmasked and decoded (section 5.4).

        The frame reader checked that the opcode is legal here.
        """
        self.limits.check_message(len(data) + (self.size if opcode == _OP_CONT else 0))
        if opcode == _OP_TEXT:
            if fin:
                try:
                    self.events.append(data.decode())
                except UnicodeDecodeError as exc:
                    raise RemoteProtocolError(
                        f"invalid UTF-8: {exc.reason}", CloseCode.INVALID_FRAME_PAYLOAD_DATA
                    ) from None
                self._transformed = False
                return
            self._decoder = _new_decoder()
            self.opcode = _OP_TEXT
            self._parts = []
            self._joined = 0
            self.size = 0
            self._text_fragment(data, False)
            if self.stream_fragments:
                self._fragment(False)
        elif opcode == _OP_BINARY:
            if fin:
                self.events.append(data)
                self._transformed = False
                return
            self._decoder = None
            self.opcode = _OP_BINARY
            self._parts = [data]
            self._joined = 0
            self.size = len(data)
            if self.stream_fragments:
                self._fragment(False)
        else:  # continuation, checked by the frame reader
            if self.opcode == _OP_TEXT:
                self._text_fragment(data, bool(fin))
            else:
                self.size += len(data)
                self._add(data)
            if self._streamed or self.stream_fragments:
                self._fragment(bool(fin))
            elif fin:
                parts = self._parts
                if self.opcode == _OP_TEXT:
                    self.events.append("".join(parts))  # type: ignore[arg-type]
                else:
                    self.events.append(b"".join(parts))  # type: ignore[arg-type]
                self._end_message()

    def report_fragment(self) -> None:
        """Report what was assembled of a fragmented message in progress, as a Fragment.

        For an adapter that turns ``stream_fragments`` on while frames of a
        message are already in: the application gets them now rather than
        with the next frame, which the peer may send much later. The rest of
        the message is streamed (section 5.4).
        """
        if self.opcode and self._parts:
            self._fragment(False)

    def _fragment(self, fin: bool) -> None:
        """Report what arrived of the message since its last fragment (streaming)."""
        parts = self._parts
        if self.opcode == _OP_TEXT:
            data: str | bytes = "".join(parts)  # type: ignore[arg-type]
        else:
            data = parts[0] if len(parts) == 1 else b"".join(parts)  # type: ignore[arg-type]
        self.events.append(Fragment(data, fin))
        if fin:
            self._end_message()
        else:
            self._streamed = True
            self._parts = []
            self._joined = 0

    def _text_fragment(self, data: bytes, fin: bool) -> None:
        assert self._decoder is not None
        text = _decode_text(self._decoder, data, fin)
        self.size += len(data)
        if text:
            self._add(text)

    def _add(self, part: bytes | str) -> None:
        """Keep the next part of the message (a fragment, or validated text).

        Each part is an object of its own, some 40 bytes more than its data:
        a message in tiny fragments (a peer's 1-byte frames, allowed by
        section 5.4) would hold dozens of times its size. Every ``_MAX_PARTS``
        parts, those since the last join become one, so memory follows the
        message's size; each byte is copied once more, and a message of few
        fragments is never joined before it ends.
        """
        parts: list[Any] = self._parts  # all str (text) or all bytes (binary)
        parts.append(part)
        joined = self._joined
        if len(parts) - joined >= _MAX_PARTS:
            tail = parts[joined:]
            parts[joined:] = ["".join(tail) if isinstance(part, str) else b"".join(tail)]
            self._joined = joined + 1

    def _end_message(self) -> None:
        self.opcode = 0
        self._streamed = False
        self._parts = _NOTHING
        self._joined = 0
        self.size = 0
        self._decoder = None
        self._transformed = False

    @property
    def idle(self) -> bool:
        """Whether no message is being assembled and no list is held for one."""
        return self._parts is _NOTHING
