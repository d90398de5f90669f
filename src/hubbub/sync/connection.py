"""A WebSocket connection on blocking sockets and threads.

Theory of operation
-------------------

:class:`Connection` drives the same sans-I/O :class:`hubbub.protocol.Connection`
as the asyncio adapter, with one background *reader* thread per connection:

* the reader thread waits for bytes (a :mod:`selectors` selector with a
  deadline; ``select()`` fails on descriptors above 1024), feeds the
  core, writes what the core queued (pongs, close frames) and puts complete
  messages into a queue; it also runs the timers (keepalive ping, ping
  timeout, close timeout) by waking up at the earliest deadline;
* application threads call :meth:`Connection.recv` (which waits on that queue)
  and :meth:`Connection.send`, :meth:`Connection.ping`, :meth:`Connection.close`.

Thread safety: every use of the core and every socket write happens under one
lock, so frames from several sending threads never interleave on the wire and
the core sees one caller at a time. A fragmented message holds a second lock
for its whole duration, so other senders wait until it is complete (RFC 6455
section 5.4 forbids interleaving data frames of two messages).

Flow control: when ``max_queue`` messages wait unread, the reader thread stops
reading from the socket (TCP then pushes back on the peer) until the queue is
down to a quarter. Compressed frames are inflated a step at a time
(``DECODE_STEP``, :attr:`hubbub.protocol.Connection.parsing_paused`), each
step only while the queue has room, so a burst of small frames that inflate
to many large messages (RFC 7692) holds about ``max_queue`` x ``max_size``
at most. A peer that pings and never reads blocks the reader thread in
``sendall`` (the kernel's buffer is full): it is not read either. Writes
block in ``sendall``; ``buffered_amount`` counts bytes handed to
:meth:`Connection.send` that are not yet in the kernel.

Failures the peer causes are deferred as in the asyncio adapter: messages that
came before the mistake are delivered first, and the connection is failed when
the application asks for the next one (or after ``close_timeout``).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, cast

from .. import speedups
from ..adapter import (
    DECODE_STEP,
    ConnectionAttributes,
    Data,
    FailurePending,
    Fragmenter,
    FragmentStream,
    LoggerLike,
    PingTracker,
    closed_exception,
    decoded,
    fragment_converter,
    join_fragments,
)
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosedOK,
    InvalidState,
)
from ..protocol import connection as core
from ..protocol.events import Fragment
from ..protocol.frames import CloseCode, Opcode

__all__ = ["Connection", "Data"]


_READ_SIZE = 65536
# Large frames are read into the message with recv_into() only with the C
# accelerator (see hubbub.asyncio.connection: the same choice, the same reason).
_DIRECT_READS = speedups.ACCELERATED


class _PingWaiter:
    """What a thread calling :meth:`Connection.ping` waits on."""

    __slots__ = ("done", "latency")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.latency: float | None = None


class Connection(ConnectionAttributes):
    """One WebSocket connection over a connected (possibly TLS) socket.

    Not created directly: :func:`hubbub.sync.client.connect` returns one and
    :func:`hubbub.sync.server.serve` passes one to the handler.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: core.Connection,
        *,
        max_queue: int = 16,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 10.0,
        logger: LoggerLike | None = None,
    ) -> None:
        self.socket = sock
        self.protocol = protocol
        if protocol.decode_limit is None:
            protocol.decode_limit = DECODE_STEP
        self.max_queue = max(1, max_queue)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.logger: LoggerLike = logger or logging.getLogger("hubbub")
        self._lock = threading.Lock()  # core + socket writes
        self._send_mutex = threading.RLock()  # held for a whole fragmented message
        self._cond = threading.Condition(threading.Lock())  # the receive queue
        self._messages: collections.deque[Data | Fragment | FailurePending] = collections.deque()
        # Set under _cond once the reader queued the last message (a close frame
        # or a protocol error came): the core's own state changes earlier, in
        # the reader thread, before the messages parsed with it are queued.
        self._end_of_messages = False
        self._receiving = False
        self._pings: PingTracker[_PingWaiter] = PingTracker()
        self._keepalive_at: float | None = None
        self._ping_deadline: float | None = None
        self._close_deadline: float | None = None
        self._fail_deadline: tuple[float, int, str] | None = None
        self._buffered = 0
        self._write_shut = False
        self._closed = threading.Event()
        self._reader: threading.Thread | None = None
        # Wakes the reader thread out of its selector when another thread
        # changes a deadline (close() starts the close timeout); made by start().
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        # Watches the socket and the wakeup pair; made by start(). Not select():
        # it raises ValueError for descriptors above FD_SETSIZE (1024), which a
        # busy process reaches.
        self._selector: selectors.BaseSelector | None = None
        try:
            self.remote_address: Any = sock.getpeername()
            self.local_address: Any = sock.getsockname()
        except OSError:
            self.remote_address = self.local_address = None

    # --- public attributes ----------------------------------------------------

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` but not yet written to the socket."""
        return self._buffered

    @property
    def latency(self) -> float:
        """Round-trip time of the last ping answered, in seconds."""
        return self._pings.latency

    # --- starting ---------------------------------------------------------------

    def start(self, events: list[core.Event] | None = None) -> None:
        """Start the reader thread once the handshake is done.

        Args:
            events: events the core produced during the handshake (messages
                the peer sent right behind it).
        """
        self.socket.settimeout(None)
        self._wakeup = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._selector.register(self._wakeup[0], selectors.EVENT_READ)
        # Frames that came right behind the handshake may have queued answers
        # (a pong, the echo of a close frame) in the core.
        with self._lock:
            self._flush_locked()
        if events:
            self._process_events(events)
        if self.ping_interval is not None and self.ping_interval > 0:
            self._keepalive_at = time.monotonic() + self.ping_interval
        self._reader = threading.Thread(
            target=self._read_loop, name=f"hubbub-reader-{self.remote_address}", daemon=True
        )
        self._reader.start()

    # --- the reader thread ---------------------------------------------------------

    def _next_deadline(self) -> float | None:
        deadlines = [
            d
            for d in (self._keepalive_at, self._ping_deadline, self._close_deadline)
            if d is not None
        ]
        if self._fail_deadline is not None:
            deadlines.append(self._fail_deadline[0])
        return min(deadlines) if deadlines else None

    def _wait_readable(self) -> bool:
        """Wait until the socket is readable or a deadline is due; True if readable."""
        pending = getattr(self.socket, "pending", None)
        if pending is not None and pending():
            return True  # TLS already decrypted bytes the selector cannot see
        deadline = self._next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        assert self._wakeup is not None
        assert self._selector is not None
        wakeup = self._wakeup[0]
        readable = {key.fileobj for key, _ in self._selector.select(timeout)}
        if wakeup in readable:
            with contextlib.suppress(OSError):
                wakeup.recv(64)
        return self.socket in readable

    def _read_loop(self) -> None:
        try:
            while True:
                self._run_timers()
                with self._cond:
                    while (
                        len(self._messages) >= self.max_queue
                        and self.protocol.state is core.State.OPEN
                    ):
                        # Flow control: stop reading until the application
                        # catches up, but keep the timers running. Not while
                        # closing: the closing handshake needs the peer's frames.
                        deadline = self._next_deadline()
                        timeout = None if deadline is None else deadline - time.monotonic()
                        if timeout is not None and timeout <= 0:
                            break
                        self._cond.wait(timeout)
                    paused = (
                        len(self._messages) >= self.max_queue
                        and self.protocol.state is core.State.OPEN
                    )
                if paused:
                    continue  # a timer is due
                if self.protocol.parsing_paused:
                    # The queue has room: inflate the next step of what was
                    # received (DECODE_STEP) before reading more.
                    with self._lock:
                        self.protocol.resume_parsing()
                        events = self.protocol.events_received()
                        self._flush_locked()
                    self._process_events(events)
                    continue
                if not self._wait_readable():
                    if self.protocol.stream_fragments:
                        self._report_fragment()  # recv_streaming() woke us up
                    continue
                with self._lock:
                    # A large frame's payload is read straight into the message
                    # (see hubbub.protocol.large_frames: receive_buffer).
                    view = self.protocol.receive_buffer() if _DIRECT_READS else None
                try:
                    if view is not None:
                        got = self.socket.recv_into(view)
                        data: bytes | None = None
                    else:
                        data = self.socket.recv(_READ_SIZE)
                        got = len(data)
                except (OSError, ValueError):
                    got = 0
                with self._lock:
                    if not got:
                        self.protocol.receive_eof()
                    elif data is None:
                        self.protocol.receive_buffer_updated(got)
                    else:
                        self.protocol.receive_data(data)
                    events = self.protocol.events_received()
                    self._flush_locked()
                del view
                self._process_events(events)
                if not got:
                    break
        except Exception:  # pragma: no cover - a bug; do not leave waiters hanging
            self.logger.exception("reader thread failed")
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            self.protocol.receive_eof()
            self.protocol.events_received()
            self._write_shut = True
        if self._selector is not None:
            self._selector.close()
        for sock in (self.socket, *(self._wakeup or ())):
            with contextlib.suppress(OSError):
                sock.close()
        for waiter in self._pings.clear():
            waiter.done.set()
        if not self._closed.is_set():
            self.log_closed()
        self._closed.set()
        with self._cond:
            self._cond.notify_all()

    def _run_timers(self) -> None:
        now = time.monotonic()
        if self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            self.abort()
        if self._fail_deadline is not None and now >= self._fail_deadline[0]:
            _, code, reason = self._fail_deadline
            self._fail_deadline = None
            self.fail(code, reason)
        if self._ping_deadline is not None and now >= self._ping_deadline:
            self._ping_deadline = None
            self.logger.info("no pong within %.1f s: closing the connection", self.ping_timeout)
            self.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        if self._keepalive_at is not None and now >= self._keepalive_at:
            self._keepalive_ping(now)

    def _keepalive_ping(self, now: float) -> None:
        assert self.ping_interval is not None
        self._keepalive_at = now + self.ping_interval
        with self._lock:
            if self.protocol.state is not core.State.OPEN:
                self._keepalive_at = None
                return
            data = self._pings.new_payload()
            self.protocol.send_ping(data)
            self._pings.add(data, _PingWaiter(), time.perf_counter())
            self._flush_locked()
        if self.ping_timeout is not None and self._ping_deadline is None:
            self._ping_deadline = now + self.ping_timeout

    def _report_fragment(self) -> None:
        # In the reader thread, so that the fragment is queued after what the
        # reader parsed before it.
        with self._lock:
            self.protocol.report_fragment()
            events = self.protocol.events_received()
        if events:
            self._process_events(events)

    def _process_events(self, events: list[core.Event]) -> None:
        messages: list[Data | Fragment | FailurePending] = []
        for event in events:
            # A Fragment (recv_streaming) is queued like a message.
            if isinstance(event, (str, bytes, Fragment)):
                messages.append(event)
            elif isinstance(event, core.Pong):
                for waiter, rtt in self._pings.pong(event.data, time.perf_counter()):
                    waiter.latency = rtt
                    waiter.done.set()
                    self._ping_deadline = None
            elif isinstance(event, core.Failure):
                messages.append(FailurePending(event.exc))
            elif isinstance(event, core.CloseReceived):
                self._start_close_deadline()
        if not messages and self.protocol.close_received is None:
            return
        with self._cond:
            for message in messages:
                if isinstance(message, FailurePending) and not self._messages:
                    # Nothing unread before the mistake: fail at once.
                    self.fail(message.exc.code, str(message.exc))
                    continue
                if isinstance(message, FailurePending):
                    self._fail_deadline = (
                        time.monotonic() + self.close_timeout,
                        message.exc.code,
                        str(message.exc),
                    )
                self._messages.append(message)
            if self.protocol.close_received is not None or self.protocol.close_exc is not None:
                self._end_of_messages = True
            self._cond.notify_all()

    # --- writing -------------------------------------------------------------------

    def _flush_locked(self) -> None:
        """Write what the core queued; the caller holds ``_lock``."""
        protocol = self.protocol
        data = protocol.data_to_send()
        if data and not self._write_shut:
            payload = b"".join(data)
            self._buffered += len(payload)
            try:
                self.socket.sendall(payload)
            except OSError:
                # The peer is gone; the reader thread will see it too.
                self._write_shut = True
            finally:
                self._buffered -= len(payload)
        if protocol.eof_sent and not self._write_shut:
            self._write_shut = True
            if isinstance(self.socket, ssl.SSLSocket):
                # SSLSocket.shutdown() drops the TLS layer, so reading on after
                # a half-close is impossible: close both ways.
                self.abort()
            else:
                # Half-close: the peer sees the end of the stream, and we
                # keep reading its last bytes (section 7.1.1).
                with contextlib.suppress(OSError):
                    self.socket.shutdown(socket.SHUT_WR)
            self._start_close_deadline()

    def fail(self, code: int, reason: str) -> None:
        with self._lock:
            if self.protocol.state is core.State.CLOSED:
                return
            self.protocol.fail(code, reason)
            self._flush_locked()

    def _start_close_deadline(self) -> None:
        if self._close_deadline is None and not self._closed.is_set():
            self._close_deadline = time.monotonic() + self.close_timeout

    def abort(self) -> None:
        """Drop the TCP connection; the reader thread wakes up and finishes."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)

    # --- receiving ---------------------------------------------------------------

    def recv(self, timeout: float | None = None, decode: bool | None = None) -> Data:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Args:
            timeout: seconds to wait; ``None`` waits as long as it takes.
            decode: ``False`` returns a text message as ``bytes`` (its UTF-8),
                ``True`` a binary message as ``str`` (decoded as UTF-8);
                ``None`` (the default) keeps the frame's type.

        Raises:
            UnicodeDecodeError: ``decode=True`` and a binary message that is
                not UTF-8 (the message is consumed; the connection stays open).
            TimeoutError: no message within ``timeout``.
            ConnectionClosedOK: the connection closed normally.
            ConnectionClosedError: it closed with an error or a protocol error.
            ConcurrencyError: another thread is already waiting in recv().
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        # Fragments are queued only once recv_streaming() was used (_stream).
        message: Any = self._next(deadline) if self._stream is None else self._next_whole(deadline)
        return message if decode is None else decoded(message, decode)

    def _next(self, deadline: float | None) -> Data | Fragment:
        """The next entry of the receive queue: a message, or a fragment of one."""
        with self._cond:
            if self._receiving:
                raise ConcurrencyError("another thread is already receiving")
            self._receiving = True
            try:
                while not self._messages:
                    if self._end_of_messages or self._closed.is_set():
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError("no message received in time")
                    self._cond.wait(remaining)
                message = self._messages.popleft() if self._messages else None
                if len(self._messages) <= self.max_queue // 4:
                    self._cond.notify_all()  # the reader may resume reading
            finally:
                self._receiving = False
        if message is None:
            self.wait_closed(self.close_timeout)
            raise closed_exception(self.protocol)
        if isinstance(message, FailurePending):
            self._fail_deadline = None
            self.fail(message.exc.code, str(message.exc))
            self.wait_closed(self.close_timeout)
            raise closed_exception(self.protocol)
        return message

    # --- streaming a message (section 5.4) ---------------------------------------

    # Made by the first recv_streaming(); most connections never stream.
    _stream: FragmentStream | None = None

    def _next_message(self, deadline: float | None) -> Data | Fragment:
        """A message or its first fragment, past the rest of an abandoned stream."""
        assert self._stream is not None
        with self._cond:
            self._stream.abandon()
        item = self._next(deadline)
        while self._stream.skipped(item):
            item = self._next(deadline)
        return item

    def _next_whole(self, deadline: float | None) -> Data:
        """The next message, joined if it was queued in fragments."""
        message = self._next_message(deadline)
        if type(message) is not Fragment:
            return message  # type: ignore[return-value]  # Data: FailurePending raised
        items = [message]
        try:
            while not items[-1].fin:
                item = self._next(deadline)
                assert type(item) is Fragment  # a message's frames are contiguous
                items.append(item)
        except TimeoutError:
            # Nothing is lost: the next receive starts from the first fragment.
            with self._cond:
                self._messages.extendleft(reversed(items))
            raise
        return join_fragments([item.data for item in items])

    def _set_streaming(self, on: bool) -> None:
        with self._lock:
            self.protocol.stream_fragments = on

    def recv_streaming(self, decode: bool | None = None) -> Iterator[Data]:
        """Yield the next message in fragments, each as soon as its frame is in.

        ``for fragment in ws.recv_streaming(): ...``; the same as
        :meth:`hubbub.asyncio.Connection.recv_streaming`. One thread receives
        at a time.

        Raises:
            ConnectionClosedOK: the connection closed normally.
            ConnectionClosedError: it closed with an error or a protocol error.
            ConcurrencyError: another thread is receiving.
        """
        stream = self._stream
        if stream is None:
            stream = self._stream = FragmentStream()
        with self._cond:
            token = stream.begin()
        self._set_streaming(True)
        self._wake()  # the reader reports frames of the next message already in
        try:
            item = self._next_message(None)
        except BaseException:
            self._set_streaming(False)
            raise
        convert = fragment_converter(decode)
        # A message that came whole is its own last fragment.
        fragment = item if type(item) is Fragment else Fragment(cast(Data, item), True)
        while not fragment.fin:
            yield stream.hand_out(fragment, convert)
            stream.resume(token)
            fragment = cast(Fragment, self._next(None))  # a message's frames are contiguous
        self._set_streaming(False)
        yield stream.hand_out(fragment, convert)

    def __iter__(self) -> Iterator[Data]:
        """Iterate over messages; ends quietly on a normal close."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    # --- sending -------------------------------------------------------------------

    def send(
        self, message: Data | bytearray | memoryview | Iterable[Data], *, compress: bool = True
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary. Thread-safe.

        An iterable of ``str`` or bytes-like is sent as one fragmented message,
        one frame per item (section 5.4); sends from other threads wait until it
        is complete. Returns once the frames are written to the socket.
        ``compress=False`` sends this message uncompressed even when
        permessage-deflate was negotiated.

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError: the message is of another type, or mixes text and binary.
        """
        with self._send_mutex:
            if isinstance(message, str):
                self._send_frame(Opcode.TEXT, message.encode(), True, compress)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                self._send_frame(Opcode.BINARY, bytes(message), True, compress)
            elif isinstance(message, Iterable):
                self._send_fragments(message, compress)
            else:
                raise TypeError(f"cannot send {type(message).__name__}: use str or bytes")

    def _send_frame(self, opcode: int, data: bytes, fin: bool, compress: bool = True) -> None:
        try:
            with self._lock:
                self.protocol.send_data_frame(opcode, data, fin, compress=compress)
                self._flush_locked()
        except InvalidState:
            self.wait_closed(self.close_timeout)
            raise closed_exception(self.protocol) from None

    def _send_fragments(self, message: Iterable[Data], compress: bool = True) -> None:
        fragmenter = Fragmenter()
        try:
            for item in message:
                frame = fragmenter.push(item)
                if frame is not None:
                    self._send_frame(*frame, compress)
            frame = fragmenter.finish()
            if frame is not None:
                self._send_frame(*frame, compress)
        except BaseException:
            # Half a message went out and cannot be finished (section 5.4 allows
            # no other data frame before it ends): fail the connection.
            if self.protocol.sending_fragmented and self.protocol.state is core.State.OPEN:
                with self._lock:
                    self.protocol.fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                    self._flush_locked()
            raise

    def ping(self, data: str | bytes | None = None, timeout: float | None = None) -> float:
        """Send a ping and wait for its pong; return the round-trip time in seconds.

        Raises:
            TimeoutError: no pong within ``timeout``.
            ConnectionClosed: the connection closed before the pong.
        """
        waiter = _PingWaiter()
        try:
            with self._lock:
                if data is None:
                    payload = self._pings.new_payload()
                else:
                    payload = data.encode() if isinstance(data, str) else bytes(data)
                if payload in self._pings:
                    raise ConcurrencyError("a ping with this payload is already waiting")
                self.protocol.send_ping(payload)
                self._pings.add(payload, waiter, time.perf_counter())
                self._flush_locked()
        except InvalidState:
            self.wait_closed(self.close_timeout)
            raise closed_exception(self.protocol) from None
        if not waiter.done.wait(timeout):
            raise TimeoutError("no pong received in time")
        if waiter.latency is None:
            raise closed_exception(self.protocol)
        return waiter.latency

    # --- closing -------------------------------------------------------------------

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake and wait until the connection is closed.

        Waits at most ``close_timeout`` for the peer, then drops the connection.
        Closing a closed connection does nothing.
        """
        self.start_close(code, reason)
        if self._reader is None:
            self._finish()
        elif not self.wait_closed(self.close_timeout + 1.0):
            self.abort()
            self.wait_closed(1.0)

    def start_close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake without waiting (``None``: a close frame without code)."""
        with self._lock:
            if self.protocol.state is not core.State.OPEN:
                return
            self.protocol.send_close(code, reason)
            self._flush_locked()
            self._start_close_deadline()
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None:
            with contextlib.suppress(OSError):
                self._wakeup[1].send(b"\0")
        with self._cond:  # in case the reader is paused by flow control
            self._cond.notify_all()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection is closed; return False on timeout."""
        if self._reader is None:
            return self._closed.is_set()
        if threading.current_thread() is self._reader:
            return self._closed.is_set()
        return self._closed.wait(timeout)

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
