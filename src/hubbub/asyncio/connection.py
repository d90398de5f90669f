"""A WebSocket connection on asyncio, shared by the server and the client.

Theory of operation
-------------------

:class:`Connection` is the ``asyncio.Protocol`` of its transport (no streams on
the hot path) and drives a sans-I/O :class:`hubbub.protocol.Connection`:
``data_received`` feeds the core, moves complete messages into a bounded
queue and writes what the core queued (pongs, close frames). Application
coroutines call :meth:`Connection.recv` and :meth:`Connection.send`. The
sending methods (``send``, ``send_nowait``, ``send_frames_nowait``, ``ping``)
are in :mod:`hubbub.asyncio.sending`, a mixin of :class:`Connection`; this
module has the rest: the transport's callbacks, receiving, timers, closing.

Flow control, both ways:

* receiving: when ``max_queue`` messages wait unread, the transport stops
  reading; TCP then pushes back on the peer. Reading resumes when the queue is
  down to a quarter.
* sending: the transport's write buffer has high and low water marks
  (``write_limit``); above the high mark :meth:`send` waits until the buffer
  drains below the low mark. ``buffered_amount`` is what sits in that buffer.
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
* inflating: the core decodes at most ``DECODE_STEP`` bytes of compressed
  messages per step (:attr:`hubbub.protocol.Connection.parsing_paused`); the
  next step runs in a later loop iteration, and only while the queue has
  room and writes are not backed up. The steps of all the loop's connections
  take turns, one per iteration (:mod:`hubbub.asyncio.turns`), so peers sending
  bursts do not take every iteration from the others. A burst of small frames that
  inflate to many messages (RFC 7692) thus holds at most about
  ``max_queue`` x ``max_size`` + ``DECODE_STEP`` bytes and never keeps the
  event loop for more than one step.

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
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from .. import speedups
from ..adapter import (
    DECODE_STEP,
    ConnectionAttributes,
    Data,
    FailurePending,
    FragmentStream,
    LoggerLike,
    PingTracker,
    closed_exception,
    decoded,
    fragment_converter,
    join_fragments,
)
from ..exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK
from ..protocol import connection as core
from ..protocol.events import Fragment
from ..protocol.frames import CloseCode
from .reader import PayloadReader
from .sending import Sending
from .turns import turns

__all__ = ["Connection", "Data"]


_NO_MESSAGES: Any = ()


class Connection(ConnectionAttributes, Sending, asyncio.Protocol):
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
            write_limit = (write_limit, write_limit // 4)
        self.write_limit = write_limit
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.logger: LoggerLike = logger or logging.getLogger("hubbub")
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = cast(asyncio.Transport, None)
        self.latency = 0.0
        """Round-trip time of the last ping answered, in seconds."""
        # A deque allocates a 64-slot block at once (760 bytes): an idle
        # connection shares this empty tuple until its first message.
        self._messages: collections.deque[Data | Fragment | FailurePending] = _NO_MESSAGES
        self._recv_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        # Why reading may be paused (see _update_reading): the queue is full
        # (until it is down to a quarter), or the core holds unparsed bytes
        # and their next step is queued (_step_queued) or waits for room.
        self._queue_full = False
        self._step_queued = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._fragment_lock: asyncio.Lock | None = None
        # Shared with hubbub.sync (hubbub.adapter): which pings a pong answers.
        self._pings: PingTracker[asyncio.Future[float]] = PingTracker()
        self._keepalive: asyncio.TimerHandle | None = None
        self._ping_deadline: asyncio.TimerHandle | None = None
        self._close_deadline: asyncio.TimerHandle | None = None
        self._transport_closing = False
        self._flush_soon = False
        self._on_message: Callable[[Data], object] | None = None
        self._in_callback = False
        self._closed: asyncio.Future[None] = self.loop.create_future()

    # --- public attributes ----------------------------------------------------

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

    def data_received(self, data: bytes = b"") -> None:
        # Without data (the default): handle what the core parsed meanwhile,
        # after a large frame's payload or a parsing step. One method, not two:
        # this runs once per read (a call is ~3% of a round trip's instructions).
        protocol = self.protocol
        if data:
            protocol.receive_data(data)
        if protocol.pending_events:
            on_message = self._on_message
            events = protocol.events_received()
            if on_message is None:
                self._process_events(events)
            elif len(events) == 1 and (type(events[0]) is str or type(events[0]) is bytes):
                # Request/response's shape, one message per read: the loop of
                # _dispatch_events without its call (~600 of the library's
                # ~9,400 instructions per round trip, benchmarks/instructions.py).
                self._in_callback = True
                try:
                    on_message(events[0])
                except Exception:
                    self._callback_failed()
                finally:
                    self._in_callback = False
            else:
                self._dispatch_events(events)
        # _flush() inlined for the usual case (nothing closing): one call less per read.
        if self._transport_closing or protocol.eof_sent:
            self._flush()
        else:
            protocol.write_to(self.transport)
        if protocol.large_frame is not None and self._direct_reads:
            self._read_large_frame()
        # Only an extension's output counts towards decode_limit, so only then
        # can parsing pause: the property is not read per message otherwise.
        if protocol.extensions and protocol.parsing_paused:
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
        view = None if self._transport_closing else self.protocol.receive_buffer()
        if view is None:
            return
        reader = self._reader
        if reader is None:
            reader = self._reader = PayloadReader(
                self, self.transport, self.protocol, self.data_received
            )
        try:
            self.transport.set_protocol(reader)
        except NotImplementedError:
            # This transport cannot swap protocols: receive_data() copies what
            # arrives into the payload instead.
            self._direct_reads = False
            return
        reader.start(view)

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._process_events(self.protocol.events_received())
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()
        self._process_events(self.protocol.events_received())
        self._transport_closing = True
        for handle in (
            self._keepalive,
            self._ping_deadline,
            self._close_deadline,
        ):
            if handle is not None:
                handle.cancel()
        self._wake_receiver()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        closed = self._closed_exception()
        for waiter in self._pings.clear():
            if not waiter.done():
                waiter.set_exception(closed)
                waiter.exception()  # mark retrieved: nobody may be awaiting it
        if not self._closed.done():
            self._closed.set_result(None)
            self.log_closed()

    def pause_writing(self) -> None:
        # Pongs must not pile up behind a peer that does not read, nor the
        # answers to its messages: see "Flow control" above.
        self._writing_paused = True
        self.protocol.defer_pongs(True)
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.protocol.defer_pongs(False)
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
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
        return self._queue_full or (
            self._writing_paused and (self._backed_up_stops_reading or self._on_message is not None)
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
        for event in events:
            # A Fragment (recv_streaming) is queued like a message.
            if isinstance(event, (str, bytes, Fragment)):
                if self.protocol.close_sent is not None and len(messages) >= self.max_queue:
                    # We are closing and read on only to see the peer's close
                    # frame: what nobody can read before it is dropped, so that
                    # a peer cannot grow the queue without bound meanwhile.
                    continue
                if messages is _NO_MESSAGES:
                    messages = self._messages = collections.deque()
                messages.append(event)
            elif isinstance(event, core.Pong):
                self._pong_received(event.data)
            elif isinstance(event, core.Failure):
                if not messages and self._recv_waiter is not None:
                    self.fail(event.exc.code, str(event.exc))
                else:
                    if messages is _NO_MESSAGES:
                        messages = self._messages = collections.deque()
                    messages.append(FailurePending(event.exc))
                    self.loop.call_later(
                        self.close_timeout, self.fail, event.exc.code, str(event.exc)
                    )
            elif isinstance(event, core.CloseReceived):
                self._start_close_deadline()
            else:
                self._other_event(event)
        if messages:
            if (
                len(messages) >= self.max_queue
                and not self._queue_full
                and self.protocol.close_sent is None
            ):
                self._queue_full = True
                self._update_reading()
            self._wake_receiver()
        elif self.protocol.close_received is not None or self.protocol.close_exc is not None:
            self._wake_receiver()

    def _dispatch_events(self, events: list[core.Event]) -> None:
        # Callback mode (see the module docstring): messages go straight to the
        # callback, in order; everything else is handled as in queue mode.
        on_message = self._on_message
        self._in_callback = True
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
            self._in_callback = False

    def _callback_failed(self) -> None:
        # Called in the except clause: logs the callback's exception (see on_message).
        self.logger.exception("error in on_message callback")
        self.fail(CloseCode.INTERNAL_ERROR, "")

    def _other_event(self, event: core.Event) -> None:
        """Handshake events, handled by the server and client subclasses."""

    def _wake_receiver(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _flush(self) -> None:
        protocol = self.protocol
        if not self._transport_closing:
            protocol.write_to(self.transport)
        elif protocol.pending_chunks:
            protocol.data_to_send()  # the transport is closing: dropped
        if protocol.eof_sent and not self._transport_closing:
            self._transport_closing = True
            # close() flushes the buffer first; the deadline covers a peer
            # that stopped reading.
            self._close_transport()
            self._start_close_deadline()

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
        self._start_close_deadline()

    def _start_close_deadline(self) -> None:
        if self._close_deadline is None and not self._closed.done():
            self._close_deadline = self.loop.call_later(self.close_timeout, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        if self.transport is not None:
            self.transport.abort()

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
        # Fragments are queued only once recv_streaming() was used (_stream).
        message: Any = await (self._next() if self._stream is None else self._next_whole())
        return message if decode is None else decoded(message, decode)

    async def _next(self) -> Data | Fragment:
        """The next entry of the receive queue: a message, or a fragment of one."""
        if self._on_message is not None:
            raise ConcurrencyError("messages go to on_message: recv() would never return one")
        messages = self._messages
        while not messages:
            if (
                self.protocol.close_received is not None
                or self._closed.done()
                or (self.protocol.close_exc is not None)
            ):
                await self._wait_closed_quietly()
                raise self._closed_exception()
            if self._recv_waiter is not None:
                raise ConcurrencyError("another coroutine is already receiving")
            if self.protocol.pending_chunks:  # frames held back by send(): write them now
                self._flush()
            self._recv_waiter = self.loop.create_future()
            try:
                await self._recv_waiter
            finally:
                self._recv_waiter = None
            messages = self._messages  # the first message replaces _NO_MESSAGES
        message = messages.popleft()
        if self._queue_full and len(messages) <= self.max_queue // 4:
            self._queue_full = False
            self._update_reading()
        if isinstance(message, FailurePending):
            self.fail(getattr(message.exc, "code", CloseCode.PROTOCOL_ERROR), str(message.exc))
            await self._wait_closed_quietly()
            raise self._closed_exception()
        return message

    # --- streaming a message (section 5.4) ---------------------------------------

    # Made by the first recv_streaming(); most connections never stream.
    _stream: FragmentStream | None = None

    async def _next_message(self) -> Data | Fragment:
        """A message or its first fragment, past the rest of an abandoned stream."""
        assert self._stream is not None
        self._stream.abandon()
        item = await self._next()
        while self._stream.skipped(item):
            item = await self._next()
        return item

    async def _next_whole(self) -> Data:
        """The next message, joined if it was queued in fragments."""
        message = await self._next_message()
        return await self._assemble(message) if type(message) is Fragment else cast(Data, message)

    async def _assemble(self, first: Fragment) -> Data:
        # A message streamed by the core (recv_streaming() was waiting when its
        # frames came) but read with recv(): join its fragments.
        items = [first]
        try:
            while not items[-1].fin:
                item = await self._next()
                assert type(item) is Fragment  # a message's frames are contiguous
                items.append(item)
        except asyncio.CancelledError:
            # Nothing is lost: the next receive starts from the first fragment.
            self._messages.extendleft(reversed(items))
            raise
        return join_fragments([item.data for item in items])

    async def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[Data]:
        """Yield the next message in fragments, each as soon as its frame is in.

        ``async for fragment in ws.recv_streaming(): ...``. A fragmented
        message (section 5.4) yields one item per frame: ``str`` pieces of a
        text message (whole characters) or ``bytes`` pieces of a binary one;
        a message of one frame yields once. ``max_size`` still limits the
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
        stream = self._stream
        if stream is None:
            stream = self._stream = FragmentStream()
        token = stream.begin()
        protocol = self.protocol
        protocol.stream_fragments = True
        protocol.report_fragment()  # frames of the next message may be in already
        events = protocol.events_received()
        if events:
            self._process_events(events)
        try:
            item = await self._next_message()
        except BaseException:
            protocol.stream_fragments = False
            raise
        convert = fragment_converter(decode)
        # A message that came whole is its own last fragment.
        fragment = item if type(item) is Fragment else Fragment(cast(Data, item), True)
        while not fragment.fin:
            yield stream.hand_out(fragment, convert)
            stream.resume(token)
            fragment = cast(Fragment, await self._next())  # a message's frames are contiguous
        protocol.stream_fragments = False
        yield stream.hand_out(fragment, convert)

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
        if callback is not None and self._recv_waiter is not None:
            raise ConcurrencyError("a coroutine is waiting in recv(): cannot set on_message")
        self._on_message = callback
        if callback is None:
            return
        # Hand over what was queued, in order (a failure that was waiting
        # behind these messages fails the connection after them).
        queued = self._messages
        pending: list[core.Event] = []
        while queued:
            item = queued.popleft()
            pending.append(core.Failure(item.exc) if isinstance(item, FailurePending) else item)
        if pending:
            self._dispatch_events(pending)
            self._flush()
        self._queue_full = False  # no queue in callback mode
        self._update_reading()

    def __aiter__(self) -> AsyncIterator[Data]:
        # The connection is its own iterator (one coroutine per message, no
        # async generator in between): iterating ends quietly on a normal close.
        return self

    async def __anext__(self) -> Data:
        try:
            # Not through recv(): one coroutine less per message.
            if self._stream is None:
                return await self._next()  # type: ignore[return-value]  # no Fragment then
            return await self._next_whole()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    async def _wait_closed_quietly(self) -> None:
        # The close code is final once the closing handshake ends; wait a little
        # for it so that the exception tells the truth.
        if not self._closed.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), self.close_timeout)
            except TimeoutError:
                self.abort()

    def _closed_exception(self) -> ConnectionClosed:
        # Shared with hubbub.sync (hubbub.adapter).
        return closed_exception(self.protocol)

    # --- keepalive ---------------------------------------------------------------

    def start_keepalive(self) -> None:
        """Ping every ``ping_interval``; fail with 1011 without a pong in ``ping_timeout``."""
        if self.ping_interval is not None and self.ping_interval > 0:
            self._keepalive = self.loop.call_later(self.ping_interval, self._keepalive_ping)

    def _keepalive_ping(self) -> None:
        self._keepalive = None
        if self.protocol.state is not core.State.OPEN:
            return
        data = self._pings.new_payload()
        self.protocol.send_ping(data)
        waiter: asyncio.Future[float] = self.loop.create_future()
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pings.add(data, waiter, time.perf_counter())
        self._flush()
        if self.ping_timeout is not None and self._ping_deadline is None:
            self._ping_deadline = self.loop.call_later(self.ping_timeout, self._ping_timed_out)
        self.start_keepalive()

    def _ping_timed_out(self) -> None:
        self._ping_deadline = None
        self.logger.info("no pong within %.1f s: closing the connection", self.ping_timeout)
        self.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

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
            self._start_close_deadline()
        elif state is core.State.CLOSED and not self._closed.done():
            # A refused request whose server still reads what the client
            # sends (RFC 9112 section 9.6): nothing more to wait for.
            self.abort()
        elif state is core.State.CONNECTING and not self._transport_closing:
            # Without this a server shutting down would wait for open_timeout
            # on connections that never sent a request (browsers open spare
            # ones ahead of time).
            self._transport_closing = True
            self.transport.close()
        if self._queue_full:
            # The peer's close frame may sit behind messages that nobody will
            # read now: read on, or the closing handshake could only time out.
            # (Backed-up writes still pause reading: close_timeout ends that.)
            self._queue_full = False
            self._update_reading()
        await self._wait_closed_quietly()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed, however it closes."""
        await asyncio.shield(self._closed)
