"""The WebSocket connection state machine, without I/O (RFC 6455 sections 5-7).

Theory of operation
-------------------

A :class:`Connection` is fed what arrives from the network and says what to
send back; it never touches a socket, a clock or a thread, so the asyncio and
blocking adapters (and tests) drive the same code:

* ``receive_data(bytes)`` / ``receive_eof()``: bytes or end of stream arrived;
* ``events_received()``: what the application should see, in order. A complete
  data message is the ``str`` (text) or ``bytes`` (binary) itself, so the hot
  path allocates no wrapper; control frames and the rest are small classes:
  :class:`Ping`, :class:`Pong`, :class:`CloseReceived`, :class:`Failure`;
* ``send_*()``: the application wants to send; frames are queued;
* ``data_to_send()``: chunks for the transport (``writelines``);
  ``eof_sent`` then tells that the transport should be closed after them.

States follow the browser's ``readyState`` numbers (section 4 and the WHATWG
spec): CONNECTING (0) during the opening handshake, handled by the
:class:`~hubbub.protocol.server.ServerConnection` and
:class:`~hubbub.protocol.client.ClientConnection` subclasses; OPEN (1); CLOSING
(2) once a close frame was sent or received; CLOSED (3) once the TCP
connection is gone.

Reading is incremental. Frame headers are checked as soon as their two first
bytes are in, so a reserved opcode or a bad RSV bit fails at once. A text
message is validated as UTF-8 while it arrives, even inside a frame that is not
complete yet (its payload is unmasked in place, piece by piece), so invalid
UTF-8 fails with 1007 at the first bad byte (section 8.1). This module finds
frames and handles control frames and closing; data frames become messages in
the :class:`~hubbub.protocol.messages.MessageAssembler` mixin, and sending is
the :class:`~hubbub.protocol.sending.Sender` mixin.

Large binary frames (over 64 KiB still missing once the header is in) are not
parsed piece by piece: nothing reads them before they are whole. A
:class:`~hubbub.protocol.large_frames.LargeFrameReader`, held in
:attr:`Connection.large_frame` only while such a frame arrives, gathers its
pieces or lets an adapter read straight into the message (``receive_buffer()``).

When the peer breaks the protocol the connection must be failed (section
7.1.7). By default that happens at once. An adapter may instead ask for
``defer_failure=True``: then a :class:`Failure` event takes the place of the
error in the event stream, nothing more is read, and the adapter calls
:meth:`Connection.fail` once the application has consumed the messages that
came before it. That is how a server echoes every valid message a peer sent
before its mistake, which is what the Autobahn suite calls "strict".
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Protocol

from ..exceptions import (
    InvalidState,
    LocalProtocolError,
    PayloadTooBig,
    RemoteProtocolError,
)
from ..speedups import parse_messages as _parse_messages
from ..speedups import unmask_join as _unmask_join
from .events import CloseReceived, Event, Failure, Fragment, Ping, Pong, Side, State
from .extensions import Extension
from .frames import (
    CloseCode,
    Opcode,
    apply_mask,
    is_valid_close_code,
    parse_close,
    serialize_close,
)
from .large_frames import LargeFrameReader
from .messages import _NOTHING, MessageAssembler
from .sending import Sender

__all__ = [
    "DEFAULT_MAX_SIZE",
    "CloseReceived",
    "Connection",
    "Event",
    "Failure",
    "Fragment",
    "Ping",
    "Pong",
    "Side",
    "State",
    "Writer",
]


class Writer(Protocol):
    """Where :meth:`Connection.write_to` puts the chunks: an asyncio transport, say."""

    def write(self, data: bytes, /) -> None: ...

    def writelines(self, list_of_data: list[bytes], /) -> None: ...


DEFAULT_MAX_SIZE = 2**20
"""Default limit on the size of a received message: 1 MiB."""


# The states and event classes live in .events; they are re-exported here.

_CONNECTING = State.CONNECTING
_OP_CONT = Opcode.CONTINUATION
_OP_TEXT = Opcode.TEXT
_OP_BINARY = Opcode.BINARY
_OP_CLOSE = Opcode.CLOSE
_OP_PING = Opcode.PING
_OP_PONG = Opcode.PONG
_KNOWN_OPCODES = frozenset(int(op) for op in Opcode)


class Connection(Sender, MessageAssembler):
    """A WebSocket connection in the OPEN state and after (sections 5-7).

    Args:
        side: which end of the connection this is; a client masks what it sends
            and a server requires masked frames (section 5.1).
        max_size: largest message accepted, in bytes (after extensions decode
            it); ``None`` for no limit. Over it: 1009.
        extensions: the negotiated extensions, in the order of the server's
            answer.
        defer_failure: see the module's theory of operation.
        decode_limit: bytes that extensions may decode (inflate) in one call
            to :meth:`receive_data` or :meth:`resume_parsing`; ``None`` (the
            default) for no limit. Once reached, parsing stops at the next
            frame boundary and :attr:`parsing_paused` tells that bytes wait.
    """

    # Slots: a server holds thousands of idle connections, and an instance
    # dictionary would be their largest per-connection cost.
    __slots__ = (
        "_buf",
        "_decoded",
        "_mask",
        "_msg_decoder",
        "_msg_opcode",
        "_msg_parts",
        "_msg_size",
        "_msg_streamed",
        "_msg_transformed",
        "_out",
        "_parse_paused",
        "_partial_done",
        "_pong_due",
        "_pongs_deferred",
        "_reading",
        "close_exc",
        "close_received",
        "close_sent",
        "decode_limit",
        "defer_failure",
        "eof_received",
        "eof_sent",
        "extensions",
        "large_frame",
        "max_size",
        "pending_events",
        "side",
        "state",
        "stream_fragments",
    )

    def __init__(
        self,
        side: Side,
        *,
        state: State = State.OPEN,
        max_size: int | None = DEFAULT_MAX_SIZE,
        extensions: Sequence[Extension] = (),
        defer_failure: bool = False,
        decode_limit: int | None = None,
    ) -> None:
        self.side = side
        self.state = state
        self.max_size = max_size
        self.extensions: list[Extension] = list(extensions)
        self.defer_failure = defer_failure
        self._mask = side is Side.CLIENT
        self._buf = bytearray()
        self.pending_events: list[Event] = []
        """The events received that :meth:`events_received` has not returned yet.

        Read-only: an adapter tests it (``if conn.pending_events:``) to skip
        that call on its per-read path, where a property would cost more
        than the rest of the check.
        """
        self._out: list[bytes] = []
        # Reading: the message being assembled (section 5.4).
        self._msg_opcode = 0  # 0 when no fragmented message is in progress
        self._msg_parts: list[bytes] | list[str] = _NOTHING
        self._msg_size = 0
        self._msg_decoder: codecs.IncrementalDecoder | None = None
        self._msg_transformed = False
        self._msg_streamed = False  # its frames are reported as Fragment events
        self.stream_fragments = False
        """Report the frames of fragmented messages as :class:`Fragment` events.

        Read when a frame of a fragmented message completes: the message's
        frames from then on (with what was assembled before, in the first
        one) become ``Fragment`` events, until its last frame, even if this is
        turned off meanwhile. Single-frame messages stay ``str``/``bytes``.
        ``max_size`` still bounds the whole message. Adapters turn it on while
        the application streams a message (``recv_streaming()``).
        """
        # Reading: how much of the payload of an incomplete frame at the head of
        # the buffer was already unmasked in place and validated.
        self._partial_done = 0
        self.large_frame: LargeFrameReader | None = None
        """The large binary frame arriving, or None (see :mod:`.large_frames`).

        Read-only. When not None, an adapter that can read into memory asks
        :meth:`receive_buffer` where to put the rest of it; its ``missing``
        attribute counts the bytes still to come.
        """
        self._reading = True
        # Reading: decompression bomb guard (see parsing_paused). Bytes decoded
        # by extensions in this parsing step; parsing stopped at the limit.
        self.decode_limit = decode_limit
        self._decoded = 0
        self._parse_paused = False
        # Writing: see defer_pongs(); the payload of the latest ping unanswered.
        self._pongs_deferred = False
        self._pong_due: bytes | None = None
        # Writing: the opcode of the message being sent in fragments, or 0.
        self._send_opcode = 0
        # Writing: the message being sent skips the extensions (compress=False).
        self._send_plain = False
        # Closing (section 7).
        self.close_sent: CloseReceived | None = None
        self.close_received: CloseReceived | None = None
        self.close_exc: RemoteProtocolError | None = None
        self.eof_sent = False
        self.eof_received = False

    # --- what the adapter reads -------------------------------------------------

    def events_received(self) -> list[Event]:
        """Return the events received since the last call, oldest first."""
        events, self.pending_events = self.pending_events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """Return the chunks to write since the last call."""
        out, self._out = self._out, []
        return out

    @property
    def pending_chunks(self) -> int:
        """How many chunks :meth:`data_to_send` would return now."""
        return len(self._out)

    def write_to(self, writer: Writer) -> None:
        """Hand the chunks to write to ``writer`` in one call, and forget them.

        The same as ``writer.writelines(data_to_send())``, without the empty
        list when nothing is queued, and with ``write`` for a single chunk
        (an asyncio transport then skips joining the chunks).
        """
        out = self._out
        if out:
            self._out = []
            if len(out) == 1:
                writer.write(out[0])
            else:
                writer.writelines(out)

    @property
    def close_code(self) -> int | None:
        """The close code received (section 7.1.5), or 1006 if closed without one.

        ``None`` while the connection is not closed and no close frame arrived.
        """
        if self.close_received is not None:
            return self.close_received.code
        if self.state is State.CLOSED:
            return CloseCode.ABNORMAL_CLOSURE
        return None

    @property
    def close_reason(self) -> str:
        return self.close_received.reason if self.close_received is not None else ""

    def close_expected(self) -> bool:
        """Tell whether the transport should close soon (a close frame was exchanged).

        A client waits for the server to close TCP first (section 7.1.1) but not
        forever: adapters start ``close_timeout`` when this becomes true.
        """
        return self.state is State.CLOSING or self.eof_sent

    # --- receiving ---------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the network."""
        if self.state is _CONNECTING:
            # The opening handshake (section 4) is the subclasses' business;
            # checking here, not in an override, saves them a call per read.
            self._receive_handshake(data)
            return
        if not self._reading or not data:
            return
        if self._parse_paused:
            # Parsing waits for resume_parsing(): keep the bytes, inflate nothing.
            self._buf += data
            return
        large = self.large_frame
        if large is not None:
            data = self._receive_large(large, data)
            if not data or not self._reading:
                return
        buf = self._buf
        if not buf and not self._msg_opcode and not self._partial_done and not self.extensions:
            # Fast path (hubbub.speedups): the whole single-frame messages at the
            # head of the data become events in one call, and what they take is
            # never copied into the buffer.
            max_size = -1 if self.max_size is None else self.max_size
            pos = _parse_messages(data, 0, not self._mask, max_size, self.pending_events)
            if pos == len(data):
                return
            if pos:
                data = memoryview(data)[pos:]
        buf += data
        self._parse_buffer(buf)

    def _receive_large(
        self, large: LargeFrameReader, data: bytes | bytearray | memoryview
    ) -> bytes | bytearray | memoryview:
        """Feed ``data`` to the large frame arriving; return what follows it."""
        if large.reading_directly:
            # An adapter reads into the payload but got these bytes otherwise.
            take = large.copy_in(data)
            self.receive_buffer_updated(take)
            if take == len(data):
                return b""
            data = memoryview(data)[take:]
            if self.large_frame is None:
                return data
        if not large.hold(data if isinstance(data, bytes) else bytes(data)):
            return b""
        self.large_frame = None
        if self.extensions:
            return large.join_held()
        # The frame is whole: its payload is copied (and unmasked) once,
        # straight from the pieces; what follows it is parsed as usual.
        b0, payload, rest = large.finish_held()
        self._deliver_large(b0, payload)
        return rest

    def _deliver_large(self, b0: int, payload: bytes) -> None:
        try:
            self._data_frame(b0 & 0x0F, b0 & 0x80, payload)
        except RemoteProtocolError as exc:
            self._remote_error(exc)

    def receive_buffer(self) -> memoryview | None:
        """Where the next bytes received may be written directly, if anywhere.

        While a large binary frame is arriving without extensions, this is a
        writable view of the part of its payload still missing: an adapter that
        can read into memory reads into it, then calls
        :meth:`receive_buffer_updated`. Otherwise ``None``: use
        :meth:`receive_data`. Both may be mixed; the view is only valid until
        the next call to either.
        """
        large = self.large_frame
        if large is None or self.extensions or not self._reading:
            return None
        return large.buffer()

    def receive_buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the last :meth:`receive_buffer`.

        May be called for each read, or once for several reads made one after
        the other into the same view.
        """
        large = self.large_frame
        if large is None:
            if self.eof_received:
                return  # the connection was lost meanwhile: nothing to account for
            raise ValueError(f"{nbytes} bytes do not fit the receive buffer")
        frame = large.updated(nbytes)
        if frame is None:
            return
        self.large_frame = None
        if self._reading:
            self._deliver_large(*frame)

    @property
    def parsing_paused(self) -> bool:
        """Whether received bytes wait unparsed because ``decode_limit`` was reached.

        A peer can pack a thousand messages of 1 MiB of zeros into 1 MB of
        compressed frames (RFC 7692); inflating them all at once would take
        seconds and as much memory as they decode to. With ``decode_limit``
        set, the adapter consumes the events, then calls
        :meth:`resume_parsing` once the application has room for more;
        :meth:`receive_data` meanwhile only stores what arrives.
        """
        return self._parse_paused

    def resume_parsing(self) -> None:
        """Parse the next ``decode_limit`` bytes' worth of what was received."""
        if not self._parse_paused:
            return
        self._parse_paused = False
        if self._reading:
            self._parse_buffer(self._buf)

    def _parse_buffer(self, buf: bytearray) -> None:
        self._decoded = 0
        try:
            self._parse_frames(buf)
        except RemoteProtocolError as exc:
            self._remote_error(exc)
        if self.large_frame is not None and buf:
            # The head of that large frame is held too: once complete, the frame
            # is joined once and parsed straight from the joined bytes. Nothing
            # is held yet: no large frame was arriving when this call started.
            self.large_frame.hold_head(bytes(buf))
            buf.clear()

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        """Handle bytes received in the CONNECTING state (section 4)."""
        raise InvalidState("a bare Connection has no opening handshake: it must start OPEN")

    def receive_eof(self) -> None:
        """The peer closed its end of the TCP connection (or it was lost)."""
        if self.eof_received:
            return
        self.eof_received = True
        self._reading = False
        self._buf = bytearray()
        if self.large_frame is not None:
            self.large_frame.release()
            self.large_frame = None
        self._parse_paused = False
        self.state = State.CLOSED
        for ext in self.extensions:
            ext.release()

    def _remote_error(self, exc: RemoteProtocolError) -> None:
        self._reading = False
        self._parse_paused = False
        self._buf = bytearray()
        self.close_exc = exc
        if self.defer_failure:
            self.pending_events.append(Failure(exc))
        else:
            self.fail(exc.code, str(exc))

    def _parse_frames(self, buf: bytearray) -> None:
        pos = 0
        end = len(buf)
        masked_expected = self._mask is False  # servers receive masked frames
        extensions = self.extensions
        if not self._msg_opcode and not self._partial_done and not extensions:
            # Same fast path as in receive_data; the loop below takes the rest.
            max_size = -1 if self.max_size is None else self.max_size
            pos = _parse_messages(buf, 0, masked_expected, max_size, self.pending_events)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            hlen = 2
            if length == 126:
                if end - pos < 4:
                    # The theory of operation promises that the first two bytes
                    # are judged as soon as they are in.
                    self._check_first_bytes(b0, b1, opcode, masked_expected)
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                hlen = 4
            elif length == 127:
                if end - pos < 10:
                    self._check_first_bytes(b0, b1, opcode, masked_expected)
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hlen = 10
            self._check_header(b0, b1, opcode, length, masked_expected)
            masked = b1 & 0x80
            if masked:
                hlen += 4
            if end - pos < hlen + length:
                if end - pos >= hlen and opcode < 8:
                    self._partial_frame(buf, pos, hlen, end)
                    missing = hlen + length - (end - pos)
                    if missing > 65536 and (
                        opcode == _OP_BINARY or (opcode == _OP_CONT and self._msg_decoder is None)
                    ):
                        # Nothing reads a binary frame before it is whole (text
                        # is validated as it arrives): receive_data holds the rest.
                        self.large_frame = LargeFrameReader(missing)
                break
            start = pos + hlen
            pos = start + length
            if masked and not self._partial_done:
                # Copied and unmasked in one pass (hubbub.speedups).
                data = _unmask_join([buf], start, length, buf[start - 4 : start])
            else:
                data = bytes(buf[start:pos])
            if masked:
                done = self._partial_done
                if done:
                    # The head of this payload was unmasked in place already.
                    self._partial_done = 0
                    if done < length:
                        data = data[:done] + apply_mask(data[done:], buf[start - 4 : start], done)
                    self._data_frame_after_partial(data, done, b0, opcode)
                    continue
            elif self._partial_done:
                done, self._partial_done = self._partial_done, 0
                self._data_frame_after_partial(data, done, b0, opcode)
                continue
            if extensions:
                if opcode < 8:
                    self._extension_frame(b0, opcode, data)
                elif b0 & 0x70:
                    # RFC 7692 section 6: extensions act on data frames only.
                    raise RemoteProtocolError("reserved bits set on a control frame")
                else:
                    self._control_frame(opcode, data)
                limit = self.decode_limit
                if limit is not None and self._decoded >= limit and pos < end and self._reading:
                    # Stop at this frame boundary: what follows stays in the
                    # buffer until resume_parsing() (see parsing_paused).
                    self._parse_paused = True
                    break
            elif opcode >= 8:
                self._control_frame(opcode, data)
            else:
                self._data_frame(opcode, b0 & 0x80, data)
            if not self._reading:
                pos = end
                break
        if pos:
            del buf[:pos]

    def _check_header(
        self, b0: int, b1: int, opcode: int, length: int, masked_expected: bool
    ) -> None:
        self._check_first_bytes(b0, b1, opcode, masked_expected)
        if opcode >= 8:
            # Section 5.5: control frames have payloads of at most 125 bytes.
            if length > 125:
                raise RemoteProtocolError("control frame payload longer than 125 bytes")
            return
        if length >> 63:
            raise RemoteProtocolError("most significant bit of the payload length is set")
        max_size = self.max_size
        if max_size is not None:
            limit = max_size
            if self.extensions and self._transformed(b0, opcode):
                # Compressed data may exceed its inflated size by a few bytes
                # per block; allow that slack so only the inflated size really
                # counts. An untransformed message gets none, so that it fails
                # with 1009 here whether its frames arrive whole or in pieces.
                limit += (max_size >> 6) + 64
            size = length + (self._msg_size if opcode == _OP_CONT else 0)
            if size > limit:
                raise PayloadTooBig(size, max_size)

    def _check_first_bytes(self, b0: int, b1: int, opcode: int, masked_expected: bool) -> None:
        """Check what the first two bytes of a frame tell, whatever its length."""
        # Section 5.2: "RSV1, RSV2, RSV3: MUST be 0 unless an extension is
        # negotiated that defines meanings for non-zero values."
        if b0 & 0x70 and not self.extensions:
            raise RemoteProtocolError("reserved bits must be 0")
        if opcode not in _KNOWN_OPCODES:
            raise RemoteProtocolError(f"reserved opcode {opcode:#x}")
        # Section 5.1: a server MUST close on an unmasked frame; a client MUST
        # close on a masked one.
        if bool(b1 & 0x80) is not masked_expected:
            raise RemoteProtocolError(
                "incorrect masking: client frames must be masked, server frames must not"
            )
        if opcode >= 8:
            # Section 5.5: control frames MUST NOT be fragmented.
            if not b0 & 0x80:
                raise RemoteProtocolError("fragmented control frame")
            return
        # Section 5.4: a fragmented message is a first frame, then continuation
        # frames; a new message cannot start before the last one ended.
        if opcode == _OP_CONT:
            if not self._msg_opcode:
                raise RemoteProtocolError("continuation frame without a message to continue")
        elif self._msg_opcode:
            raise RemoteProtocolError("new data frame inside a fragmented message")

    def _control_frame(self, opcode: int, data: bytes) -> None:
        if opcode == _OP_PING:
            self.pending_events.append(Ping(data))
            # Section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send
            # a Pong frame in response, unless it already received a Close frame."
            # Having sent one is no excuse: control frames may follow our close.
            if self.close_received is None and (
                self.state is State.OPEN or self.state is State.CLOSING
            ):
                if self._pongs_deferred:
                    self._pong_due = data  # section 5.5.3: the latest one only
                else:
                    self._write(_OP_PONG, data)
        elif opcode == _OP_PONG:
            self.pending_events.append(Pong(data))
        else:
            self._close_frame(data)

    def _close_frame(self, data: bytes) -> None:
        code, reason = parse_close(data)
        self.close_received = CloseReceived(code, reason)
        self._reading = False  # section 5.5.1: nothing may follow a close frame
        self.pending_events.append(self.close_received)
        if self.state is State.OPEN:
            # Section 5.5.1: "the endpoint MUST send a Close frame in response
            # ... typically echoing the status code it received." A close frame
            # in the middle of a fragmented message is legal (control frames
            # may be interleaved, section 5.4), so it is answered normally.
            echo = code if code != CloseCode.NO_STATUS_RCVD else None
            self._write(_OP_CLOSE, serialize_close(echo))
            self.close_sent = CloseReceived(echo or CloseCode.NO_STATUS_RCVD, "")
            self.state = State.CLOSING
        # Section 7.1.1: the server closes the TCP connection first, once the
        # close frames were exchanged; the client waits for it.
        if self.side is Side.SERVER:
            self.send_eof()

    def defer_pongs(self, defer: bool) -> None:
        """Hold back the answers to pings, or send the one that is due.

        Pongs are written unasked, as fast as the peer pings: while the
        adapter's writes are backed up (the peer does not read), each one would
        add to memory. Section 5.5.3 lets an endpoint that has not answered
        earlier pings answer "only the most recently processed Ping frame":
        while deferred, only the latest ping's payload is kept, and it is
        answered when deferral ends.
        """
        self._pongs_deferred = defer
        data = self._pong_due
        if defer or data is None:
            return
        self._pong_due = None
        if self.close_received is None and self.close_sent is None and self.state is State.OPEN:
            self._write(_OP_PONG, data)

    # --- closing (sending messages, pings and pongs: .sending.Sender) -----------------

    def send_close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (section 7.1.2).

        Raises:
            LocalProtocolError: the code may not be sent or the reason is too long.
            InvalidState: a close frame was already sent or received.
        """
        payload = serialize_close(code, reason)
        self._check_open()
        self._write(_OP_CLOSE, payload)
        self.close_sent = CloseReceived(code or CloseCode.NO_STATUS_RCVD, reason)
        self.state = State.CLOSING

    def fail(self, code: int = CloseCode.PROTOCOL_ERROR, reason: str = "") -> None:
        """_Fail the WebSocket Connection_ (section 7.1.7).

        Sends a close frame with ``code`` unless one was sent, stops reading
        (the peer's answer is not awaited) and asks for the TCP connection to be
        closed.

        Raises:
            LocalProtocolError: ``code`` may not be sent (1005, 1006, 1015, ...);
                nothing changed. A reason too long for a close frame is cut.
        """
        if not is_valid_close_code(code):
            # Section 7.4.1: refuse before changing anything, so that the
            # caller can still fail the connection with a code that is allowed.
            raise LocalProtocolError(f"close code {code} may not be sent")
        self._reading = False
        if self.state is State.OPEN:
            # Section 5.5: at most 125 bytes; cut the reason rather than lose
            # it, without splitting a character.
            reason = reason.encode(errors="replace")[:123].decode(errors="ignore")
            payload = serialize_close(code, reason)
            self._write(_OP_CLOSE, payload)
            self.close_sent = CloseReceived(code, reason)
            self.state = State.CLOSING
        self.send_eof()

    def send_eof(self) -> None:
        """Ask the adapter to close the TCP connection after the queued data."""
        self.eof_sent = True
