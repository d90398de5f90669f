"""A WebSocket connection on asyncio, shared by the server and the client.

Theory of operation
-------------------

:class:`Connection` is the ``asyncio.Protocol`` of its transport (no streams on
the hot path) and drives a sans-I/O :class:`hubbub.protocol.Connection`:
``data_received`` feeds the core, moves complete messages into a bounded
queue and writes what the core queued (pongs, close frames). Application
coroutines call :meth:`Connection.recv` and :meth:`Connection.send`. It owns
four parts, each an object of its own that knows only what it is given:
the receive queue (:class:`~hubbub.asyncio.inbox.Inbox`: waiting,
``max_queue``, turns, fragments), the writer
(:class:`~hubbub.asyncio.sending.Writer`: sending messages and fragments,
holding small frames back, waiting for the write buffer to drain), the
pings (:class:`~hubbub.asyncio.pings.Pings`: keepalive too) and the end of the
connection (:class:`~hubbub.asyncio.closing.Closing`: the close deadline).
A large frame is read by a :class:`~hubbub.asyncio.reader.PayloadReader`, made
on first use. This module has the rest: the transport's callbacks, the flow
control that ties the parts together, callback mode, when closing starts.

Flow control, both ways: the receive queue stops reading at ``max_queue``
messages and gives the loop a turn every ``TURN_BUDGET`` bytes taken
(:mod:`hubbub.asyncio.inbox`); :meth:`send` waits above the write buffer's
high water mark (``write_limit``, :mod:`hubbub.asyncio.sending`);
``buffered_amount`` is what sits in that buffer. Besides:

* pongs: what we write unasked (RFC 6455 section 5.5.2) grows with what the
  peer sends, so a peer that pings and never reads would fill our memory
  with pongs. While the write buffer is above its high mark, pings are not
  answered at once; only the latest one is, once the buffer drained
  (section 5.5.3 allows that; :meth:`hubbub.protocol.Connection.defer_pongs`).
* backed-up writes stop reading, on a server in every mode and on a client
  in callback mode (``_backed_up_stops_reading``): a peer that pings or sends
  and never reads then costs neither memory nor CPU; TCP pushes back on it,
  and the keepalive ping, whose pong it never sends, ends the connection
  after ``ping_interval`` + ``ping_timeout``. Not both ends: two peers that
  both stopped reading while their writes are backed up would wait for each
  other forever, so a client in queue mode reads on (``max_queue`` bounds
  what it holds) and a hubbub client and server can never both stop.
* inflating: the core decodes at most ``DECODE_STEP`` bytes (+ 64 KiB) of
  compressed messages per step, stopping inside a frame that inflates to more
  (:attr:`hubbub.protocol.Connection.parsing_paused`); the
  next step waits for room in the queue, writes not backed up, and its turn
  (:mod:`hubbub.asyncio.turns`: one step of all the loop's connections per
  iteration). A burst of small frames that inflate to many messages (RFC
  7692) holds at most about ``max_queue`` x ``max_size`` + ``DECODE_STEP``
  bytes and keeps the loop for one step at a time, inflating or handing
  queued messages to the application.

Failures the peer causes are deferred (``defer_failure=True`` in the core): the
messages it sent before its mistake are delivered first, and the connection is
failed when the application asks for the next message, or after
``close_timeout``. An echo server therefore answers every valid message before
the close frame, as RFC 6455 allows and Autobahn's "strict" rating wants.

Timers (keepalive ping, ping timeout, close timeout) are ``call_later``
handles, not tasks: an idle connection costs a few hundred bytes for them.

Callback mode: when the application sets :attr:`Connection.on_message`, each
message is handed to that function from ``data_received``, as soon as it is
parsed, instead of going through the queue, a Future and a Task step; what the
callback sends with :meth:`Connection.send_nowait` is written with one system
call per read. This is the request/response fast path (``hubbub echo`` uses
it). Flow control in that mode: reading stops while the write buffer is above
its high water mark, so a peer that sends faster than it reads cannot make an
echo or relay buffer without bound.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable
from typing import Any, cast

from .. import speedups
from ..adapter import (
    DECODE_STEP,
    ConnectionAttributes,
    Data,
    FailurePending,
    LoggerLike,
    closed_exception,
    decoded,
)
from ..exceptions import ConcurrencyError, ConnectionClosedOK, InvalidState
from ..protocol import connection as core
from ..protocol.events import Fragment
from ..protocol.frames import CloseCode
from ..speedups import write_chunks as _write_chunks
from .closing import Closing
from .inbox import WAIT, Inbox
from .pings import Pings
from .reader import PayloadReader
from .sending import Message, Writer
from .turns import turns

__all__ = ["Connection", "Data"]

_OPEN = core.State.OPEN


# Bytes of a large frame still to come above which its payload is read
# directly (see PayloadReader); below, the core gathers the event loop's reads.
_DIRECT_READ = 65536


@functools.lru_cache(maxsize=8)
def _write_limits(high: int) -> tuple[int, int]:
    # One tuple for all the connections of a server: ~70 bytes each otherwise.
    return high, high // 4


class Connection(ConnectionAttributes, asyncio.Protocol):
    """One WebSocket connection; see the module docstring.

    Not created directly: :func:`hubbub.asyncio.serve` passes one to the
    handler and :func:`hubbub.asyncio.connect` returns one.
    """

    def __init__(
        self,
        protocol: core.Connection,
        *,
        max_queue: int = 16,
        write_limit: int | tuple[int, int] = 2**16,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 10.0,
        logger: LoggerLike | None = None,
    ) -> None:
        self.protocol = protocol
        if protocol.decode_limit is None:
            protocol.decode_limit = DECODE_STEP
        self.max_queue = max(1, max_queue)
        if isinstance(write_limit, int):
            write_limit = _write_limits(write_limit)
        self.write_limit = write_limit
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.logger: LoggerLike = logger or logging.getLogger("hubbub")
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = cast(asyncio.Transport, None)
        # The parts (see the module docstring), sharing one bound method of
        # each kind: an idle connection's memory counts.
        closing = self._closing = Closing(protocol, self.loop, close_timeout)
        flush, fail = self._flush, self.fail
        # The receive queue; named for hubbub.adapter's queued_messages.
        self._messages: Inbox = Inbox(
            protocol,
            self.loop,
            max_queue,
            on_room=self._update_reading,
            flush=flush,
            fail=fail,
            closing=closing,
        )
        self._writer = Writer(
            protocol,
            self._messages,
            flush=flush,
            fail=fail,
            closing=closing,
        )
        # The pings part is made on first use (a ping, a pong, the keepalive):
        # most connections of a server without keepalive never need it.
        self._pings_part: Pings | None = None
        self._reading_paused = False
        # Why reading may be paused (see _update_reading): the queue is full
        # (until it is down to a quarter), or the core holds unparsed bytes
        # and their next step is queued (_step_queued) or waits for room.
        self._step_queued = False
        self._transport_closing = False
        self._on_message: Callable[[Data], object] | None = None

    @property
    def _pings(self) -> Pings:
        """The pings part (:mod:`hubbub.asyncio.pings`), made when first needed."""
        pings = self._pings_part
        if pings is None:
            pings = self._pings_part = Pings(
                self.protocol,
                self.loop,
                flush=self._flush,
                fail=self.fail,
                closing=self._closing,
                logger=self.logger,
            )
        return pings

    # --- public attributes ----------------------------------------------------

    @property
    def close_timeout(self) -> float:
        """Seconds to wait for the peer while closing (see :mod:`hubbub.asyncio.closing`)."""
        return self._closing.timeout

    @close_timeout.setter
    def close_timeout(self, timeout: float) -> None:
        self._closing.timeout = timeout

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` but not yet written to the socket."""
        if self.transport is None or self.transport.is_closing():
            return 0
        return self.transport.get_write_buffer_size()

    @property
    def remote_address(self) -> Any:
        return self.transport.get_extra_info("peername") if self.transport else None

    @property
    def local_address(self) -> Any:
        return self.transport.get_extra_info("sockname") if self.transport else None

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        high, low = self.write_limit
        self.transport.set_write_buffer_limits(high, low)
        self._writer.attach(self.transport)
        self._closing.attach(self.transport)

    def data_received(self, data: bytes = b"") -> None:
        # Without data (the default): handle what the core parsed meanwhile,
        # after a large frame's payload or a parsing step. One method, not two:
        # this runs once per read (a call is ~3% of a round trip's instructions).
        protocol = self.protocol
        if data:
            protocol.receive_data(data)
        events = protocol.pending_events
        if events:
            on_message = self._on_message
            if on_message is None:
                self._process_events(protocol.events_received())
            elif len(events) == 1 and (type(events[0]) is str or type(events[0]) is bytes):
                # Request/response's shape, one message per read: taken from
                # the core's list itself (no events_received() call and copy)
                # and without the loop of _dispatch_events and its call.
                writer = self._writer
                writer.in_callback = True
                try:
                    on_message(events.pop())  # type: ignore[arg-type]  # str or bytes: above
                except Exception:
                    self._callback_failed()
                finally:
                    writer.in_callback = False
            else:
                self._dispatch_events(protocol.events_received())
        if self._transport_closing or protocol.eof_sent:
            self._flush()
        else:
            # _flush() for the usual case (nothing closing): the drain itself,
            # one call (C with the accelerator) instead of two per read.
            _write_chunks(protocol.outgoing, self.transport)
        reader = protocol.reader  # its plain attributes: no property call per read
        if self._direct_reads and reader.large_frame is not None:
            self._read_large_frame()
        if reader.paused:
            self._update_reading()

    # A large frame's payload is read straight into the message by a
    # PayloadReader swapped in for the rest of the frame (see reader.py).
    # Class attributes: most connections never need either. Only with the C
    # accelerator: in pure Python the payload cannot be written in place into
    # the final bytes, and gathering the pieces was measured 1.5x faster.
    _reader: PayloadReader | None = None
    _direct_reads = speedups.ACCELERATED
    # See "Flow control" in the module docstring; True on servers.
    _backed_up_stops_reading = False

    def _read_large_frame(self) -> None:
        large = self.protocol.reader.large_frame
        if self._transport_closing or large is None or large.missing <= _DIRECT_READ:
            # A few reads' worth: the core gathers the pieces and joins them
            # once, unmasked, which costs less than swapping protocols twice
            # and two more system calls per frame (measured on 64 KiB echoes,
            # docs/performance.md, "Session 6").
            return
        reader = self._reader
        if reader is None:
            reader = self._reader = PayloadReader(
                self, self.transport, self.protocol, self.data_received
            )
        # A transport that cannot swap protocols: receive_data() copies what
        # arrives into the payload instead.
        self._direct_reads = reader.swap_in()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._process_events(self.protocol.events_received())
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()
        self._process_events(self.protocol.events_received())
        self._transport_closing = True
        self._messages.wake()
        if self._pings_part is not None:
            self._pings_part.closed(self._closing.exception())
        if self._closing.set_closed():
            self.log_closed()
        self._writer.resume()  # senders waiting for the buffer to drain: closed

    def pause_writing(self) -> None:
        # Pongs must not pile up behind a peer that does not read, nor the
        # answers to its messages: see "Flow control" above.
        self._writer.pause()
        self.protocol.defer_pongs(True)
        self._update_reading()

    def resume_writing(self) -> None:
        self._writer.resume()
        self.protocol.defer_pongs(False)
        self._flush()
        self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume reading from the transport, as the reasons say now."""
        if self._transport_closing or self.transport is None:
            return
        blocked = self._blocked()
        hold = blocked
        if self.protocol.parsing_paused:
            # Received bytes wait in the core: read no more until they are
            # parsed, and parse them a step at a time, in later loop
            # iterations, while there is room for what they decode to.
            hold = True
            if not blocked and not self._step_queued:
                self._step_queued = True
                turns(self.loop).add(self._parse_step)
        if hold is not self._reading_paused:
            self._reading_paused = hold
            if hold:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _blocked(self) -> bool:
        """Whether reading (and parsing what was read) must wait for the application."""
        # Callback mode has no send() to wait in: backed-up writes stop reading
        # there, and on a server in every mode (see "Flow control" above).
        return self._messages.full or (
            self._writer.paused and (self._backed_up_stops_reading or self._on_message is not None)
        )

    def _parse_step(self) -> None:
        self._step_queued = False
        if self._transport_closing:
            return
        if self._blocked():
            # Blocked while it waited for its turn: queued again once unblocked.
            return
        self.protocol.resume_parsing()
        self.data_received()
        self._update_reading()

    # --- events and output -------------------------------------------------------

    def _process_events(self, events: list[core.Event]) -> None:
        messages = self._messages
        queue: Any = messages.items  # an empty tuple until the first message
        for event in events:
            # A Fragment (recv_streaming) is queued like a message. The core
            # makes exact str and bytes: no isinstance() with a tuple per message.
            kind = type(event)
            if kind is str or kind is bytes or kind is Fragment:
                if self.protocol.close_sent is not None and len(messages.items) >= self.max_queue:
                    # We are closing and read on only to see the peer's close
                    # frame: what nobody can read before it is dropped, so that
                    # a peer cannot grow the queue without bound meanwhile.
                    continue
                if type(queue) is tuple:
                    queue = messages.queue()
                queue.append(event)
            elif isinstance(event, core.Pong):
                self._pings.pong_received(event.data)
            elif isinstance(event, core.Failure):
                if not messages.items and messages.waiter is not None:
                    self.fail(event.exc.code, str(event.exc))
                else:
                    messages.put(FailurePending(event.exc))
                    self.loop.call_later(
                        self.close_timeout, self.fail, event.exc.code, str(event.exc)
                    )
            elif isinstance(event, core.CloseReceived):
                self._closing.start_deadline()
            else:
                self._other_event(event)
        items = messages.items
        if items:
            if (
                len(items) >= messages.max_queue
                and self.protocol.close_sent is None
                and messages.check_full()
            ):
                self._update_reading()
            waiter = messages.waiter  # wake() inline: once per message in request/response
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif self.protocol.close_received is not None or self.protocol.close_exc is not None:
            messages.wake()

    def _dispatch_events(self, events: list[core.Event]) -> None:
        # Callback mode (see the module docstring): messages go straight to the
        # callback, in order; everything else is handled as in queue mode.
        on_message = self._on_message
        writer = self._writer
        writer.in_callback = True
        try:
            for event in events:
                if on_message is not None and (type(event) is str or type(event) is bytes):
                    try:
                        on_message(event)
                    except Exception:
                        self._callback_failed()
                        return
                    # The callback may have cleared or replaced itself.
                    on_message = self._on_message
                elif on_message is None:
                    self._process_events([event])
                elif isinstance(event, core.Failure):
                    # Every message before the failure has been handled: fail now.
                    self.fail(event.exc.code, str(event.exc))
                else:
                    self._process_events([event])
        finally:
            writer.in_callback = False

    def _callback_failed(self) -> None:
        # Called in the except clause: logs the callback's exception (see on_message).
        self.logger.exception("error in on_message callback")
        self.fail(CloseCode.INTERNAL_ERROR, "")

    def _other_event(self, event: core.Event) -> None:
        """Handshake events, handled by the server and client subclasses."""

    def _flush(self) -> None:
        protocol = self.protocol
        if self._transport_closing:
            protocol.outgoing.clear()  # the transport is closing: dropped
        else:
            # The core's seam (its outgoing list), drained by the one operation.
            _write_chunks(protocol.outgoing, self.transport)
        if protocol.eof_sent and not self._transport_closing:
            self._transport_closing = True
            # close() flushes the buffer first; the deadline covers a peer
            # that stopped reading.
            self._close_transport()
            self._closing.start_deadline()

    def _close_transport(self) -> None:
        """Close TCP once what is buffered was written (the server lingers)."""
        self.transport.close()

    def fail(self, code: int, reason: str = "") -> None:
        """_Fail the WebSocket Connection_ now (RFC 6455 section 7.1.7), without waiting.

        Writes a close frame with ``code`` (unless one was sent) and closes
        TCP after it; the peer's answer is not awaited. Nothing happens once
        the connection is closed.

        Raises:
            LocalProtocolError: ``code`` may not be sent (1005, 1006, ...).
        """
        if self.protocol.state is core.State.CLOSED:
            return
        self.protocol.fail(code, reason)
        self._flush()

    def start_close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Send a close frame now and return: :meth:`close` without the wait.

        The closing handshake (section 7.1.2) then ends on its own; the
        connection is dropped after ``close_timeout`` if the peer never
        answers. Nothing happens unless the connection is OPEN.
        """
        if self.protocol.state is not core.State.OPEN:
            return
        self.protocol.send_close(code, reason)
        self._flush()
        self._closing.start_deadline()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        self._closing.abort()

    # --- receiving ---------------------------------------------------------------

    async def recv(self, decode: bool | None = None) -> Data:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Args:
            decode: ``False`` returns a text message as ``bytes`` (its UTF-8),
                ``True`` a binary message as ``str`` (decoded as UTF-8);
                ``None`` (the default) keeps the frame's type.

        Raises:
            UnicodeDecodeError: ``decode=True`` and a binary message that is
                not UTF-8 (the message is consumed; the connection stays open).
            ConnectionClosedOK: the connection closed normally.
            ConnectionClosedError: it closed with an error or a protocol error.
            ConcurrencyError: another coroutine is already waiting in recv(),
                or :attr:`on_message` is set.
        """
        messages = self._messages
        # Fragments are queued only once recv_streaming() was used.
        if messages.stream_state is None:
            message = messages.take() if messages.items else WAIT
            if message is WAIT:
                waiter = messages.waiter_when_empty()
                if waiter is not None:  # waited for inline, as in __anext__
                    try:
                        await waiter
                    finally:
                        messages.waiter = None
                    message = messages.take()
                if message is WAIT:
                    message = await messages.next()
        else:
            message = await messages.next_whole()
        return message if decode is None else decoded(message, decode)

    def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[Data]:
        """Yield the next message in fragments, each as soon as its frame is in.

        ``async for fragment in ws.recv_streaming(): ...``. A fragmented
        message (section 5.4) yields one item per frame: ``str`` pieces of a
        text message (whole characters) or ``bytes`` pieces of a binary one;
        a message of one frame yields once (a compressed frame that inflates
        past ``DECODE_STEP``, once per parsing step). ``max_size`` still limits the
        whole message. ``decode`` converts as in :meth:`recv` (a binary
        message is decoded across its fragments).

        Stopping before the last fragment discards the rest of that message
        when the connection next receives; the abandoned iterator then raises
        :class:`ConcurrencyError` if resumed.

        Raises:
            ConnectionClosedOK: the connection closed normally.
            ConnectionClosedError: it closed with an error or a protocol error.
            ConcurrencyError: another coroutine is receiving.
        """
        return self._messages.stream(decode, self._start_streaming)

    def _start_streaming(self) -> None:
        protocol = self.protocol
        protocol.report_fragment()  # frames of the next message may be in already
        events = protocol.events_received()
        if events:
            self._process_events(events)

    @property
    def on_message(self) -> Callable[[Data], object] | None:
        """A function called with each message (``str`` or ``bytes``), or None.

        While it is set, messages are not queued for :meth:`recv`: each one is
        passed to the function as soon as it is parsed, which saves a Future
        and a Task step per message. The function runs inside the event loop's
        read callback, so it must not block; it answers with
        :meth:`send_nowait` and may start tasks for longer work. If it raises,
        the error is logged and the connection is closed with 1011. Reading
        pauses while the write buffer is over its high water mark. Messages
        already queued when it is set are passed to it at once, in order. Set
        it back to None to return to :meth:`recv`.

        Raises:
            ConcurrencyError: on setting it while a coroutine waits in recv().
        """
        return self._on_message

    @on_message.setter
    def on_message(self, callback: Callable[[Data], object] | None) -> None:
        if callback is not None and self._messages.waiter is not None:
            raise ConcurrencyError("a coroutine is waiting in recv(): cannot set on_message")
        self._on_message = callback
        self._messages.callback_mode = callback is not None
        if callback is None:
            return
        # Hand over what was queued, in order (a failure that was waiting
        # behind these messages fails the connection after them).
        pending: list[core.Event] = [
            core.Failure(item.exc) if isinstance(item, FailurePending) else item
            for item in self._messages.take_all()  # no queue in callback mode
        ]
        if pending:
            self._dispatch_events(pending)
            self._flush()
        self._update_reading()

    def __aiter__(self) -> AsyncIterator[Data]:
        # The connection is its own iterator (one coroutine per message, no
        # async generator in between): iterating ends quietly on a normal close.
        return self

    async def __anext__(self) -> Data:
        messages = self._messages
        streamed = messages.stream_state is not None
        if not streamed:
            if messages.items:  # else take() would say WAIT: one call less
                message = messages.take()
                if message is not WAIT:
                    return message  # type: ignore[no-any-return]  # no Fragment then
            waiter = messages.waiter_when_empty()
            if waiter is not None:
                # Request/response waits once per message: awaited here, not in
                # a coroutine of the inbox's (one frame less to create, resume
                # and finish per message; docs/performance.md, "Session 6").
                try:
                    await waiter
                finally:
                    messages.waiter = None
                message = messages.take()
                if message is not WAIT:
                    return message  # type: ignore[no-any-return]
        try:
            # Not through recv(): one coroutine less per message.
            if not streamed:
                return await messages.next()  # type: ignore[return-value]  # no Fragment then
            return await messages.next_whole()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    # --- sending (by the writer, see hubbub.asyncio.sending) ------------------------

    def send(
        self, message: Message | Iterable[Data] | AsyncIterable[Data], *, compress: bool = True
    ) -> Coroutine[Any, Any, None]:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable or async iterable of ``str`` or bytes-like is sent as one
        fragmented message, one frame per item (RFC 6455 section 5.4); other
        sends wait until it is complete. Waits while the write buffer is over
        its high water mark.

        ``compress=False`` sends this message uncompressed even when
        permessage-deflate was negotiated (data known not to compress, or
        secrets next to attacker-controlled text: the CRIME/BREACH concern).

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError: the message is of another type, or mixes text and binary.
        """
        # The writer's coroutine itself: no coroutine in between, per message.
        return self._writer.send(message, compress=compress)

    def send_nowait(self, message: Message, *, compress: bool = True) -> None:
        """Send a message without waiting: ``str`` as text, bytes-like as binary.

        For :attr:`on_message` callbacks and other synchronous code. The frame
        is written at once (from a callback: with the other answers to the same
        read, in one system call); nothing waits for the write buffer to drain,
        so check :attr:`buffered_amount` when sending much more than you receive.

        Raises:
            ConnectionClosed: the connection is closing or closed.
            ConcurrencyError: a fragmented message is being sent.
            TypeError: the message is neither ``str`` nor bytes-like.
        """
        kind = type(message)
        writer = self._writer
        if (kind is str or kind is bytes) and writer.fragment_lock is None:
            # The per-message path of callback mode: the core encodes the
            # frame, with no call to the writer in between.
            try:
                self.protocol.send_message(message, compress)  # type: ignore[arg-type]
            except InvalidState:
                raise closed_exception(self.protocol) from None
            if not writer.in_callback:
                self._flush()
            return
        writer.send_nowait(message, compress=compress)

    def send_frames_nowait(self, frames: bytes, *, limit: int | None = None) -> bool:
        """Write already-encoded frames now if the connection can take them.

        ``frames`` are whole data messages (FIN set) encoded for a connection
        that :attr:`shares_frames`. Frames that :meth:`send` held back are
        written first, so the order of messages is kept.

        Args:
            frames: one or more complete frames, as bytes.
            limit: write only while at most this many bytes are buffered; by
                default, while writing is not paused (:attr:`writing_paused`).

        Returns:
            False, having written nothing, when the connection is not OPEN, is
            closing, is sending a fragmented message (section 5.4 forbids
            interleaving) or its write buffer is over the bound; True otherwise.
        """
        transport = self.transport
        if (
            self._transport_closing
            or transport is None
            or transport.is_closing()
            or (self._writer.paused if limit is None else transport.get_write_buffer_size() > limit)
        ):
            return False
        # The core's write_shared_frames inlined (one Python call less per
        # delivery of a broadcast), on its public attributes: OPEN, and frames
        # sent as they are (section 5.1: no mask; no extension; section 5.4:
        # not inside a fragmented message). What it queued goes first.
        protocol = self.protocol
        if protocol.state is not _OPEN or not protocol.writer.takes_shared_frames:
            return False
        out = protocol.outgoing
        if out:
            _write_chunks(out, transport, frames)
        else:
            transport.write(frames)  # the usual case: straight from here
        return True

    def send_frames_soon(self, frames: bytes, *, limit: int | None = None) -> bool:
        """Queue already-encoded frames, written at the end of this loop iteration.

        :meth:`send_frames_nowait` that holds the write: every frame a
        connection gets in one loop iteration (several publications fanned
        out, say) leaves in one system call, from one callback for all the
        loop's connections. The frames keep their place among the others:
        what :meth:`send` held back goes before them, and a pong or close
        frame queued after them goes after them (RFC 6455 sections 5.4, 5.5).
        Held bytes count against the write buffer's bound as if written:
        past the high water mark they are written at once (the transport
        then pauses writing, and later calls return False).

        Args:
            frames: one or more complete frames (FIN set), encoded for a
                connection that :attr:`shares_frames`.
            limit: queue only while at most this many bytes are buffered
                and held; by default, while writing is not paused.

        Returns:
            False, having queued nothing, when the connection is not OPEN, is
            closing, is sending a fragmented message or is over the bound;
            True otherwise.
        """
        return self._writer.send_frames_soon(frames, limit=limit)

    @property
    def writing_paused(self) -> bool:
        """True from when the write buffer passes its high water mark until it
        drains below the low one (``write_limit``)."""
        return self._writer.paused

    @property
    def shares_frames(self) -> bool:
        """Whether one encoded frame serves this connection as it serves others.

        True when the connection neither masks (servers do not, section 5.1)
        nor transforms frames (no extension: RFC 7692 compresses per
        connection). :func:`~hubbub.asyncio.broadcast` and the hub then encode a
        message once and hand the same bytes to :meth:`send_frames_nowait`.
        """
        return self.protocol.shares_frames

    def ping(self, data: str | bytes | None = None) -> Coroutine[Any, Any, float]:
        """Send a ping and wait for its pong; return the round-trip time in seconds.

        Pongs acknowledge every ping sent before them (section 5.5.3 lets a peer
        answer only the latest), so earlier pings are resolved too.

        Raises:
            ConcurrencyError: a ping with this payload waits for its pong.
            ConnectionClosed: the connection is closing or closed.
        """
        return self._pings.ping(data)

    @property
    def latency(self) -> float:
        """Round-trip time of the last ping answered, in seconds."""
        return self._pings.latency

    # --- keepalive (by the pings, see hubbub.asyncio.pings) ------------------------

    def start_keepalive(self) -> None:
        """Ping every ``ping_interval``; fail with 1011 without a pong in ``ping_timeout``."""
        self._pings.start_keepalive(self.ping_interval, self.ping_timeout)

    # --- closing -------------------------------------------------------------------

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake and wait until the connection is closed.

        Waits at most ``close_timeout`` for the peer, then drops the connection.
        A connection still in its opening handshake has no WebSocket to close
        yet: its TCP connection is closed at once. Closing a closed connection
        does nothing.
        """
        state = self.protocol.state
        if state is core.State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
            self._closing.start_deadline()
        elif state is core.State.CLOSED and not self._closing.closed.done():
            # A refused request whose server still reads what the client
            # sends (RFC 9112 section 9.6): nothing more to wait for.
            self.abort()
        elif state is core.State.CONNECTING and not self._transport_closing:
            # Without this a server shutting down would wait for open_timeout
            # on connections that never sent a request (browsers open spare
            # ones ahead of time).
            self._transport_closing = True
            self.transport.close()
        if self._messages.unblock():
            # The peer's close frame may sit behind messages that nobody will
            # read now: read on, or the closing handshake could only time out.
            # (Backed-up writes still pause reading: close_timeout ends that.)
            self._update_reading()
        await self._closing.wait_quietly()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed, however it closes."""
        await asyncio.shield(self._closing.closed)
