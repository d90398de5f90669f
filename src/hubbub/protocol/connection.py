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
* ``send_*()``: the application wants to send; frames are queued in
  :attr:`Connection.outgoing`;
* ``data_to_send()`` (or draining ``outgoing``): chunks for the transport;
  ``eof_sent`` then tells that the transport should be closed after them.

States follow the browser's ``readyState`` numbers (section 4 and the WHATWG
spec): CONNECTING (0) during the opening handshake, handled by the
:class:`~hubbub.protocol.server.ServerConnection` and
:class:`~hubbub.protocol.client.ClientConnection` subclasses; OPEN (1); CLOSING
(2) once a close frame was sent or received; CLOSED (3) once the TCP
connection is gone.

The connection is composed of parts, each an object with its own state, which
it creates and wires (as ``h11`` wires its reader and writer):

* :attr:`Connection.limits`, a frozen :class:`~hubbub.protocol.limits.Limits`:
  ``max_size`` and the decode limit, the one owner of the size checks;
* :attr:`Connection.reader`, a :class:`~hubbub.protocol.reader.FrameReader`:
  the bytes received, frame headers, large frames, the decode-limit pause;
* :attr:`Connection.assembler`, a
  :class:`~hubbub.protocol.messages.MessageAssembler`: fragments, UTF-8,
  extension decoding, the message events;
* :attr:`Connection.writer`, a :class:`~hubbub.protocol.sending.FrameWriter`:
  frames to send, encoded into ``outgoing``.

The connection itself owns the state: whether it may send, what control frames
ask of it (pongs, the close echo: section 5.5), closing (section 7) and failing.
The parts know nothing of it nor of each other, except that the reader hands
data frames to the assembler; the reader returns control frames to the
connection rather than calling back.

When the peer breaks the protocol the connection must be failed (section
7.1.7). By default that happens at once. An adapter may instead ask for
``defer_failure=True``: then a :class:`Failure` event takes the place of the
error in the event stream, nothing more is read, and the adapter calls
:meth:`Connection.fail` once the application has consumed the messages that
came before it. That is how a server echoes every valid message a peer sent
before its mistake, which is what the Autobahn suite calls "strict".
"""

from __future__ import annotations

from collections.abc import Sequence

from ..exceptions import InvalidState, LocalProtocolError, RemoteProtocolError
from ..speedups import message_frame as _message_frame
from ..speedups import write_chunks as _write_chunks
from .events import CloseReceived, Event, Failure, Fragment, Ping, Pong, Side, State
from .extensions import Extension
from .frames import CloseCode, Opcode, is_valid_close_code, parse_close, serialize_close
from .large_frames import LargeFrameReader
from .limits import DEFAULT_MAX_SIZE, Limits, shared_limits
from .messages import MessageAssembler
from .reader import FrameReader
from .sending import FrameWriter, Writer, check_data_opcode

# The states and event classes live in .events; they are re-exported here.
__all__ = [
    "DEFAULT_MAX_SIZE",
    "CloseReceived",
    "Connection",
    "Event",
    "Failure",
    "Fragment",
    "Limits",
    "Ping",
    "Pong",
    "Side",
    "State",
    "Writer",
]

_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_OP_TEXT = int(Opcode.TEXT)
_OP_BINARY = int(Opcode.BINARY)
_OP_CONT = int(Opcode.CONTINUATION)
_OP_CLOSE = Opcode.CLOSE
_OP_PING = Opcode.PING
_OP_PONG = Opcode.PONG


class Connection:
    """A WebSocket connection in the OPEN state and after (sections 5-7).

    Args:
        side: which end of the connection this is; a client masks what it sends
            and a server requires masked frames (section 5.1).
        max_size: largest message accepted (:class:`Limits`); over it: 1009.
        extensions: the negotiated extensions, in the order of the server's
            answer.
        defer_failure: see the module's theory of operation.
        decode_limit: bytes extensions may decode (inflate) per call to
            :meth:`receive_data` or :meth:`resume_parsing` (:class:`Limits`).
        limits: all the bounds at once, instead of ``max_size`` and
            ``decode_limit`` (a server may share one object between its
            connections).
    """

    # Slots: a server holds thousands of idle connections, and an instance
    # dictionary would be their largest per-connection cost.
    __slots__ = (
        "_extensions",
        "_limits",
        "assembler",
        "close_exc",
        "close_received",
        "close_sent",
        "defer_failure",
        "eof_received",
        "eof_sent",
        "outgoing",
        "pending_events",
        "reader",
        "side",
        "state",
        "writer",
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
        limits: Limits | None = None,
    ) -> None:
        self.side = side
        self.state = state
        self.defer_failure = defer_failure
        if limits is None:
            limits = shared_limits(max_size, decode_limit)
        self._limits = limits
        # One list, shared by the parts; its content changes once, when the
        # opening handshake negotiates extensions (see the setter).
        self._extensions: list[Extension] = list(extensions)
        self.pending_events: list[Event] = []
        """The events received that :meth:`events_received` has not returned yet.

        Always this same list (the parts append to it): an adapter tests it
        (``if conn.pending_events:``) to skip that call on its per-read path,
        where a property would cost more than the rest of the check. It may
        take the events from it itself, oldest first (``pop(0)``, ``pop()``
        of the only one, ``clear()``), instead of calling
        :meth:`events_received`; it never adds to it nor replaces it.
        """
        self.assembler = MessageAssembler(self.pending_events, self._extensions, limits)
        """The message being received (:class:`~hubbub.protocol.messages.MessageAssembler`)."""
        self.reader = FrameReader(side is Side.SERVER, self.assembler, self._extensions, limits)
        """The frame reader (:class:`~hubbub.protocol.reader.FrameReader`)."""
        self.writer = FrameWriter(side is Side.CLIENT, self._extensions)
        """The frame writer (:class:`~hubbub.protocol.sending.FrameWriter`)."""
        self.outgoing: list[bytes] = self.writer.outgoing
        """The chunks to write to the transport, oldest first.

        The per-message seam of the adapters: write them (``writelines``, or
        ``write`` for a single chunk), then empty the list with ``clear()``.
        Always this same list (the writer appends to it): never replace it.
        :meth:`data_to_send` and :meth:`write_to` do the same in one call.
        """
        # Closing (section 7).
        self.close_sent: CloseReceived | None = None
        self.close_received: CloseReceived | None = None
        self.close_exc: RemoteProtocolError | None = None
        self.eof_sent = False
        self.eof_received = False

    # --- the parts' settings -------------------------------------------------------

    @property
    def limits(self) -> Limits:
        """The bounds enforced on what is received, handed to the reader and the assembler."""
        return self._limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        self._limits = self.reader.limits = self.assembler.limits = limits

    @property
    def max_size(self) -> int | None:
        """Largest message accepted (``limits.max_size``)."""
        return self._limits.max_size

    @max_size.setter
    def max_size(self, max_size: int | None) -> None:
        self.limits = shared_limits(max_size, self._limits.decode_limit)

    @property
    def decode_limit(self) -> int | None:
        """Bytes extensions may decode per parsing step (``limits.decode_limit``)."""
        return self._limits.decode_limit

    @decode_limit.setter
    def decode_limit(self, decode_limit: int | None) -> None:
        self.limits = shared_limits(self._limits.max_size, decode_limit)

    @property
    def extensions(self) -> list[Extension]:
        """The negotiated extensions, in the order of the server's answer."""
        return self._extensions

    @extensions.setter
    def extensions(self, extensions: Sequence[Extension]) -> None:
        # The parts hold this list: change its content, not the list.
        self._extensions[:] = extensions
        self.writer.extensions_changed()

    @property
    def stream_fragments(self) -> bool:
        """Report the frames of fragmented messages as :class:`Fragment` events.

        See :attr:`~hubbub.protocol.messages.MessageAssembler.stream_fragments`.
        Adapters turn it on while the application streams a message
        (``recv_streaming()``).
        """
        return self.assembler.stream_fragments

    @stream_fragments.setter
    def stream_fragments(self, on: bool) -> None:
        self.assembler.stream_fragments = on

    def report_fragment(self) -> None:
        """Report at once what was assembled of a fragmented message, as a Fragment.

        See :meth:`~hubbub.protocol.messages.MessageAssembler.report_fragment`.
        """
        self.assembler.report_fragment()

    @property
    def large_frame(self) -> LargeFrameReader | None:
        """The large binary frame arriving, or None (see :mod:`.large_frames`).

        Read-only. When not None, an adapter that can read into memory asks
        :meth:`receive_buffer` where to put the rest of it; its ``missing``
        attribute counts the bytes still to come.
        """
        return self.reader.large_frame

    # --- what the adapter reads -------------------------------------------------

    def events_received(self) -> list[Event]:
        """Return the events received since the last call, oldest first."""
        events = self.pending_events
        received = events[:]  # a new list: the parts keep appending to this one
        events.clear()
        return received

    def data_to_send(self) -> list[bytes]:
        """Return the chunks to write since the last call."""
        out = self.outgoing
        chunks = out[:]  # a new list: the writer keeps appending to this one
        out.clear()
        return chunks

    @property
    def pending_chunks(self) -> int:
        """How many chunks :meth:`data_to_send` would return now."""
        return len(self.outgoing)

    def write_to(self, writer: Writer) -> None:
        """Hand the chunks to write to ``writer`` in one call, and forget them.

        The same as ``writer.writelines(data_to_send())``, without the empty
        list when nothing is queued, and with ``write`` for a single chunk
        (an asyncio transport then skips joining the chunks). ``writer`` must
        not keep the list it is given: it is emptied afterwards. That is
        :func:`hubbub.speedups.write_chunks` on :attr:`outgoing`, which an
        adapter's per-read path may call itself (one call less).
        """
        _write_chunks(self.outgoing, writer)

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
        reader = self.reader
        try:
            if reader.feed(data):
                self._parse(reader)
        except RemoteProtocolError as exc:
            self._remote_error(exc)

    def _parse(self, reader: FrameReader) -> None:
        """Parse what the reader holds, answering control frames as they come."""
        while True:
            control = reader.parse()
            if control is None:
                return
            self._control_frame(*control)
            if not reader.reading:
                return

    def receive_buffer(self) -> memoryview | None:
        """Where the next bytes received may be written directly, if anywhere.

        While a large binary frame is arriving without extensions, this is a
        writable view of the part of its payload still missing: an adapter that
        can read into memory reads into it, then calls
        :meth:`receive_buffer_updated`. Otherwise ``None``: use
        :meth:`receive_data`. Both may be mixed; the view is only valid until
        the next call to either.
        """
        return self.reader.buffer()

    def receive_buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the last :meth:`receive_buffer`.

        May be called for each read, or once for several reads made one after
        the other into the same view.
        """
        try:
            self.reader.buffer_updated(nbytes)
        except RemoteProtocolError as exc:
            self._remote_error(exc)

    @property
    def parsing_paused(self) -> bool:
        """Whether received bytes (or a frame's rest) wait because ``decode_limit`` was reached.

        A peer can pack a thousand messages of 1 MiB of zeros into 1 MB of
        compressed frames (RFC 7692); inflating them all at once would take
        seconds and as much memory as they decode to. With ``decode_limit``
        set, the adapter consumes the events, then calls
        :meth:`resume_parsing` once the application has room for more;
        :meth:`receive_data` meanwhile only stores what arrives.
        """
        return self.reader.paused

    def resume_parsing(self) -> None:
        """Parse the next ``decode_limit`` bytes' worth of what was received."""
        reader = self.reader
        if reader.resume():
            try:
                self._parse(reader)
            except RemoteProtocolError as exc:
                self._remote_error(exc)

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        """Handle bytes received in the CONNECTING state (section 4)."""
        raise InvalidState("a bare Connection has no opening handshake: it must start OPEN")

    def receive_eof(self) -> None:
        """The peer closed its end of the TCP connection (or it was lost)."""
        if self.eof_received:
            return
        self.eof_received = True
        self.reader.stop()
        self.state = State.CLOSED
        for ext in self._extensions:
            ext.release()

    def _remote_error(self, exc: RemoteProtocolError) -> None:
        self.reader.stop()
        self.close_exc = exc
        if self.defer_failure:
            self.pending_events.append(Failure(exc))
        else:
            self.fail(exc.code, str(exc))

    def _control_frame(self, opcode: int, data: bytes) -> None:
        """Answer a control frame the reader found (section 5.5)."""
        if opcode == _OP_PING:
            self.pending_events.append(Ping(data))
            # Section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send
            # a Pong frame in response, unless it already received a Close frame."
            # Having sent one is no excuse: control frames may follow our close.
            if self.close_received is None and (
                self.state is State.OPEN or self.state is State.CLOSING
            ):
                self.writer.pong(data)  # or later: see defer_pongs()
        elif opcode == _OP_PONG:
            self.pending_events.append(Pong(data))
        else:
            self._close_frame(data)

    def _close_frame(self, data: bytes) -> None:
        code, reason = parse_close(data)
        self.close_received = CloseReceived(code, reason)
        self.reader.stop()  # section 5.5.1: nothing may follow a close frame
        self.pending_events.append(self.close_received)
        if self.state is State.OPEN:
            # Section 5.5.1: "the endpoint MUST send a Close frame in response
            # ... typically echoing the status code it received." A close frame
            # in the middle of a fragmented message is legal (control frames
            # may be interleaved, section 5.4), so it is answered normally.
            echo = code if code != CloseCode.NO_STATUS_RCVD else None
            self.writer.close(echo)
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
        data = self.writer.defer_pongs(defer)
        if data is None:
            return
        if self.close_received is None and self.close_sent is None and self.state is State.OPEN:
            self.writer.write(_OP_PONG, data)

    # --- sending ---------------------------------------------------------------------

    @property
    def sending_fragmented(self) -> bool:
        """Whether a fragmented message is being sent (its last frame is not out).

        Section 5.4 allows no other data frame until it ends: a fast path that
        writes frames of its own (:attr:`shares_frames`) must wait or skip.
        """
        return self.writer.sending_fragmented

    @property
    def shares_frames(self) -> bool:
        """Whether the frames this connection sends are the same bytes on any other.

        True for a server without extensions: it does not mask (section 5.1)
        nor transform frames (RFC 7692 compresses per connection), so a
        message encoded once with :func:`~hubbub.protocol.frames.encode_shared_frame`
        may be written to every such connection.
        """
        return self.writer.shares_frames

    def _not_open(self) -> InvalidState:
        return InvalidState(f"cannot send in state {self.state.name}")

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
        if self.state is not _OPEN:
            check_data_opcode(opcode)  # the caller's mistake is told first
            raise self._not_open()
        self.writer.data_frame(opcode, data, fin, compress)

    def send_message(self, message: str | bytes, compress: bool = True) -> None:
        """Send a whole message in one frame: ``str`` as text, ``bytes`` as binary.

        The per-message path of callback mode (see :meth:`FrameWriter.message`).

        Raises:
            InvalidState: the connection is not OPEN.
            LocalProtocolError: a fragmented message is being sent.
        """
        if self.state is not _OPEN:
            raise self._not_open()
        writer = self.writer
        if writer.takes_shared_frames and len(message) < 1024:
            # A small message from a server without extensions (section 5.1:
            # no masking): one chunk built in one piece, with no call to the
            # writer in between (this runs once per message of callback mode).
            # Larger payloads are not copied: the writer sends header and data apart.
            self.outgoing.append(_message_frame(message))
        else:
            writer.message(message, compress)

    def write_shared_frames(self, writer: Writer, frames: bytes) -> bool:
        """Hand frames encoded once for many connections to ``writer``, after what is queued.

        ``frames`` are whole data messages (FIN set) from
        :func:`~hubbub.protocol.frames.encode_shared_frame`: the per-connection
        step of a broadcast, one call instead of three checks and a flush.
        The chunks queued before go first, in the same call. (The asyncio
        adapter's ``send_frames_nowait`` makes the same checks on
        :attr:`state` and ``writer.takes_shared_frames`` itself: one call less
        per delivery.)

        Returns:
            Whether they were written: False when the connection is not OPEN,
            does not :attr:`shares_frames`, or is sending a fragmented message
            (section 5.4 allows no other data frame inside one).
        """
        if self.state is not _OPEN or not self.writer.takes_shared_frames:
            return False
        _write_chunks(self.outgoing, writer, frames)
        return True

    def queue_shared_frames(self, frames: bytes) -> bool:
        """Queue frames encoded once for many connections in :attr:`outgoing`, after what is there.

        What :meth:`write_shared_frames` does, without writing: an adapter that
        holds writes until the end of its loop iteration (several messages to
        one connection, then one system call) queues them here, so that a pong
        or a close frame queued later can never overtake them (RFC 6455 section
        5.4 and 5.5: they go out in the order queued).

        Returns:
            Whether they were queued: False when the connection is not OPEN,
            does not :attr:`shares_frames`, or is sending a fragmented message.
        """
        return self.state is _OPEN and self.writer.queue_shared(frames)

    def send_text(self, data: str | bytes, fin: bool = True, *, compress: bool = True) -> None:
        """Send a text message, or its first fragment when ``fin`` is false.

        ``bytes`` are sent as they are and must be valid UTF-8. With
        ``compress=False`` the message (continuations included) skips the
        extensions: it is sent uncompressed even if permessage-deflate is on.
        """
        if self.state is not _OPEN:
            raise self._not_open()
        self.writer.data_frame(
            _OP_TEXT, data.encode() if isinstance(data, str) else data, fin, compress
        )

    def send_binary(
        self, data: bytes | bytearray | memoryview, fin: bool = True, *, compress: bool = True
    ) -> None:
        """Send a binary message, or its first fragment; ``compress`` as in :meth:`send_text`."""
        if self.state is not _OPEN:
            raise self._not_open()
        self.writer.data_frame(_OP_BINARY, bytes(data), fin, compress)

    def send_continuation(self, data: str | bytes, fin: bool) -> None:
        """Send the next fragment of the message being sent (section 5.4)."""
        if self.state is not _OPEN:
            raise self._not_open()
        self.writer.data_frame(
            _OP_CONT, data.encode() if isinstance(data, str) else bytes(data), fin
        )

    def _send_control(self, opcode: int, data: bytes) -> None:
        if self.state is not _OPEN:
            raise self._not_open()
        if len(data) > 125:
            raise LocalProtocolError("control frame payload longer than 125 bytes")
        self.writer.write(opcode, data)

    def send_ping(self, data: bytes = b"") -> None:
        """Send a ping (section 5.5.2); at most 125 bytes of payload."""
        self._send_control(_OP_PING, data)

    def send_pong(self, data: bytes = b"") -> None:
        """Send an unsolicited pong, a heartbeat (section 5.5.3)."""
        self._send_control(_OP_PONG, data)

    # --- closing -------------------------------------------------------------------

    def send_close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (section 7.1.2).

        Raises:
            LocalProtocolError: the code may not be sent or the reason is too long.
            InvalidState: a close frame was already sent or received.
        """
        if self.state is not _OPEN:
            serialize_close(code, reason)  # the caller's mistake is told first
            raise self._not_open()
        self.writer.close(code, reason)
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
        self.reader.stop()
        if self.state is State.OPEN:
            # Cut a reason too long rather than lose it (section 5.5).
            reason = self.writer.close(code, reason, cut=True)
            self.close_sent = CloseReceived(code, reason)
            self.state = State.CLOSING
        self.send_eof()

    def send_eof(self) -> None:
        """Ask the adapter to close the TCP connection after the queued data."""
        self.eof_sent = True
