"""A WebSocket connection on blocking sockets and threads.

Theory of operation
-------------------

:class:`Connection` drives the same sans-I/O :class:`hubbub.protocol.Connection`
as the asyncio adapter, with one background *reader* thread per connection.
It wires its parts, each its own object:

* reading (here: :meth:`Connection._step`, by the reader thread or a
  receiving thread) waits for bytes (:class:`~hubbub.sync.reading.Readiness`:
  a selector with a deadline, no wait while reads fill their buffer), feeds the core
  and hands what it parsed to the receive side; it also runs the timers
  (:class:`~hubbub.sync.deadlines.Deadlines`: keepalive ping, ping timeout,
  close timeout, a deferred failure) by waking up at the earliest one;
* :class:`~hubbub.sync.writing.SocketWriter` writes what the core queued,
  under the one lock every use of the core takes, and fails the connection
  when the peer reads nothing for ``send_timeout``;
* :class:`~hubbub.sync.receiving.Receiver` holds the receive queue with its
  flow control and serves :meth:`Connection.recv` and
  :meth:`Connection.recv_streaming` to application threads;
* :class:`~hubbub.sync.turns.ReadingTurn` says who reads the socket: a thread
  waiting in ``recv()`` on an empty queue reads it itself (no hand-over from
  the reader thread, which costs two thread wake-ups per message); the
  reader thread reads while no thread receives;
* :class:`~hubbub.sync.sending.Sender` sends messages, fragmented or not,
  from any thread;
* :class:`~hubbub.adapter.PingTracker` matches pongs with pings, as in asyncio.

Flow control: when ``max_queue`` messages wait unread, the reader thread stops
reading from the socket (TCP then pushes back on the peer) until the queue is
down to a quarter. Compressed frames are inflated a step at a time
(``DECODE_STEP``, :attr:`hubbub.protocol.Connection.parsing_paused`), each
step only while the queue has room, so a burst of small frames that inflate
to many large messages (RFC 7692) holds about ``max_queue`` x ``max_size``
at most. A peer that pings and never reads blocks the reader thread in its
write (the kernel's buffer is full), so it is not read either, and after
``send_timeout`` the connection is failed and the thread ends.
``buffered_amount`` counts bytes handed to :meth:`Connection.send` that are
not yet in the kernel.

Failures the peer causes are deferred as in the asyncio adapter: messages that
came before the mistake are delivered first, and the connection is failed when
the application asks for the next one (or after ``close_timeout``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, NoReturn

from .. import speedups
from ..adapter import (
    DECODE_STEP,
    ConnectionAttributes,
    Data,
    FailurePending,
    LoggerLike,
    PingTracker,
    closed_exception,
)
from ..exceptions import ConcurrencyError, InvalidState
from ..protocol import connection as core
from ..protocol.events import Fragment
from ..protocol.frames import CloseCode
from .deadlines import Deadlines
from .reading import Readiness
from .receiving import Entry, Receiver
from .sending import Sender
from .turns import ReadingTurn
from .writing import SocketWriter

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
        send_timeout: float | None = 20.0,
        logger: LoggerLike | None = None,
    ) -> None:
        self.socket = sock
        self.protocol = protocol
        if protocol.decode_limit is None:
            protocol.decode_limit = DECODE_STEP
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.logger: LoggerLike = logger or logging.getLogger("hubbub")
        self._closed = threading.Event()
        self._writer = SocketWriter(
            sock, protocol, send_timeout, self._start_close_deadline, self.logger
        )
        self._lock = self._writer.lock  # core + socket writes
        self._sender = Sender(protocol, self._writer, self._raise_closed)
        self._turn = ReadingTurn()
        # A write waiting for room must not keep the socket unread.
        self._writer.on_blocked = self._turn.hand_over
        self._receiver = Receiver(
            max_queue,
            closed=self._closed,
            end=self._end,
            set_streaming=self._set_streaming,
            fill=self._fill,
            turn=self._turn,
        )
        self._messages = self._receiver.messages  # ConnectionAttributes.queued_messages
        self._pings: PingTracker[_PingWaiter] = PingTracker()
        self._deadlines = Deadlines()
        self._reader: threading.Thread | None = None
        self._finished = False
        # When to read (a selector, a wakeup pair for other threads that
        # change a deadline, whether bytes are likely there); made by start().
        self._readiness: Readiness | None = None
        try:
            self.remote_address: Any = sock.getpeername()
            self.local_address: Any = sock.getsockname()
        except OSError:
            self.remote_address = self.local_address = None

    # --- public attributes ----------------------------------------------------

    @property
    def max_queue(self) -> int:
        """Unread messages at which the reader thread stops reading."""
        return self._receiver.max_queue

    @property
    def send_timeout(self) -> float | None:
        """Seconds a write may wait for the peer to read anything (None: for ever)."""
        return self._writer.send_timeout

    @property
    def buffered_amount(self) -> int:
        """Bytes accepted by :meth:`send` but not yet written to the socket."""
        return self._writer.buffered

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
        # Writes wait at most send_timeout for room (SocketWriter); reads
        # happen once the selector said the socket is readable.
        self._writer.prepare_socket()
        self._readiness = Readiness(self.socket)
        # Frames that came right behind the handshake may have queued answers
        # (a pong, the echo of a close frame) in the core.
        with self._lock:
            self._writer.flush()
        if events:
            self._process_events(events)
        if self.ping_interval is not None and self.ping_interval > 0:
            self._deadlines.keepalive = time.monotonic() + self.ping_interval
        self._reader = threading.Thread(
            target=self._read_loop, name=f"hubbub-reader-{self.remote_address}", daemon=True
        )
        self._reader.start()

    # --- the reader thread ---------------------------------------------------------

    def _wait_readable(self, readiness: Readiness, cap: float | None) -> bool:
        """Wait for bytes, the next deadline or ``cap`` seconds; True if readable."""
        timeout = self._deadlines.timeout()
        if cap is not None and (timeout is None or cap < timeout):
            timeout = cap
        return readiness.wait(timeout)

    def _reading(self) -> bool:
        # Flow control applies while open: the closing handshake needs the
        # peer's frames.
        return self.protocol.state is core.State.OPEN

    def _read_loop(self) -> None:
        """The reader thread: read whenever no application thread receives."""
        turn = self._turn
        try:
            patient = False
            while turn.wait(patient):
                going = True
                try:
                    while going and not turn.wanted:
                        going = self._step(None)
                finally:
                    turn.lock.release()
                    self._receiver.wake()  # a receiver may take the turn now
                if not going:
                    break
                patient = True
        except Exception:  # pragma: no cover - a bug; do not leave waiters hanging
            self.logger.exception("reader thread failed")
        finally:
            self._finish()

    def _fill(self, timeout: float | None) -> bool:
        """Read in the receiving thread, which found the queue empty (see hubbub.sync.turns).

        Returns False if the reader thread has the turn (it is asked to leave
        it): the caller waits for the queue instead.
        """
        turn = self._turn
        if not turn.take():
            self._wake()
            return False
        try:
            self._step(timeout)
        finally:
            turn.lock.release()
        return True

    def _step(self, cap: float | None) -> bool:
        """One round of reading, with the turn held: timers, then bytes; False once closed."""
        if self._closed.is_set():
            return False
        protocol = self.protocol
        self._run_timers()
        if not self._receiver.wait_room(self._reading, self._deadlines.timeout):
            return True  # a timer is due
        if protocol.parsing_paused:
            # The queue has room: inflate the next step of what was received
            # (DECODE_STEP) before reading more.
            with self._lock:
                protocol.resume_parsing()
                events = protocol.events_received()
                self._writer.flush()
            self._process_events(events)
            return True
        readiness = self._readiness
        assert readiness is not None
        # The last read filled its buffer: read on without waiting first (see
        # hubbub.sync.reading).
        flags = readiness.flags if readiness.likely else 0
        if not flags and not self._wait_readable(readiness, cap):
            if protocol.stream_fragments:
                self._report_fragment()  # recv_streaming() woke us up
            return True
        with self._lock:
            # A large frame's payload is read straight into the message
            # (see hubbub.protocol.large_frames: receive_buffer).
            view = protocol.receive_buffer() if _DIRECT_READS else None
        try:
            if view is not None:
                asked = len(view)
                got = self.socket.recv_into(view, 0, flags)
                data: bytes | None = None
            else:
                asked = _READ_SIZE
                data = self.socket.recv(_READ_SIZE, flags)
                got = len(data)
        except BlockingIOError:
            readiness.likely = False  # nothing there after all: wait next time
            return True
        except TimeoutError:
            # TLS: the selector saw part of a record, the rest did not come
            # within send_timeout. Not the end: wait again.
            return True
        except (OSError, ValueError):
            got = asked = 0
        readiness.read_size(got, asked)
        with self._lock:
            if not got:
                protocol.receive_eof()
            elif data is None:
                protocol.receive_buffer_updated(got)
            else:
                protocol.receive_data(data)
            events = protocol.events_received()
            self._writer.flush()
        del view
        self._process_events(events)
        if not got:
            self._finish()  # with the turn held: nobody reads a closed socket
            return False
        return True

    def _finish(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self.protocol.receive_eof()
            self.protocol.events_received()
            self._writer.shut = True
        if self._readiness is not None:
            self._readiness.close()
        with contextlib.suppress(OSError):
            self.socket.close()
        for waiter in self._pings.clear():
            waiter.done.set()
        if not self._closed.is_set():
            self.log_closed()
        self._closed.set()
        self._turn.stop()
        self._receiver.wake()

    def _run_timers(self) -> None:
        deadlines = self._deadlines
        now = time.monotonic()
        if deadlines.close is not None and now >= deadlines.close:
            deadlines.close = None
            self.abort()
        if deadlines.fail is not None and now >= deadlines.fail[0]:
            _, code, reason = deadlines.fail
            deadlines.fail = None
            self.fail(code, reason)
        if deadlines.ping is not None and now >= deadlines.ping:
            deadlines.ping = None
            self.logger.info("no pong within %.1f s: closing the connection", self.ping_timeout)
            self.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        if deadlines.keepalive is not None and now >= deadlines.keepalive:
            self._keepalive_ping(now)

    def _keepalive_ping(self, now: float) -> None:
        assert self.ping_interval is not None
        deadlines = self._deadlines
        deadlines.keepalive = now + self.ping_interval
        with self._lock:
            if self.protocol.state is not core.State.OPEN:
                deadlines.keepalive = None
                return
            data = self._pings.new_payload()
            self.protocol.send_ping(data)
            self._pings.add(data, _PingWaiter(), time.perf_counter())
            self._writer.flush()
        if self.ping_timeout is not None and deadlines.ping is None:
            deadlines.ping = now + self.ping_timeout

    def _report_fragment(self) -> None:
        # In the reader thread, so that the fragment is queued after what the
        # reader parsed before it.
        with self._lock:
            self.protocol.report_fragment()
            events = self.protocol.events_received()
        if events:
            self._process_events(events)

    def _process_events(self, events: list[core.Event]) -> None:
        entries: list[Entry] = []
        for event in events:
            # A Fragment (recv_streaming) is queued like a message.
            if isinstance(event, (str, bytes, Fragment)):
                entries.append(event)
            elif isinstance(event, core.Pong):
                for waiter, rtt in self._pings.pong(event.data, time.perf_counter()):
                    waiter.latency = rtt
                    waiter.done.set()
                    self._deadlines.ping = None
            elif isinstance(event, core.Failure):
                pending = FailurePending(event.exc)
                entries.append(pending)
                # Failed when the application reaches it, or after close_timeout.
                self._deadlines.fail = (
                    time.monotonic() + self.close_timeout,
                    pending.exc.code,
                    str(pending.exc),
                )
            elif isinstance(event, core.CloseReceived):
                self._start_close_deadline()
        protocol = self.protocol
        ended = protocol.close_received is not None or protocol.close_exc is not None
        if not entries and protocol.close_received is None:
            return
        for pending in self._receiver.put(entries, ended):
            # Nothing unread before the mistake: fail at once.
            self._deadlines.fail = None
            self.fail(pending.exc.code, str(pending.exc))

    # --- failing -------------------------------------------------------------------

    def fail(self, code: int, reason: str) -> None:
        """_Fail the WebSocket Connection_ with ``code`` (RFC 6455 section 7.1.7)."""
        with self._lock:
            if self.protocol.state is core.State.CLOSED:
                return
            self.protocol.fail(code, reason)
            self._writer.flush()

    def _start_close_deadline(self) -> None:
        if self._deadlines.close is None and not self._closed.is_set():
            self._deadlines.close = time.monotonic() + self.close_timeout

    def abort(self) -> None:
        """Drop the TCP connection; the reader thread wakes up and finishes."""
        self._writer.abort()

    def _raise_closed(self) -> NoReturn:
        self.wait_closed(self.close_timeout)
        raise closed_exception(self.protocol)

    def _end(self, pending: FailurePending | None) -> NoReturn:
        """No message will come: fail for ``pending`` if given, wait for the close, raise."""
        if pending is not None:
            self._deadlines.fail = None
            self.fail(pending.exc.code, str(pending.exc))
        self._raise_closed()

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
        return self._receiver.recv(timeout, decode)

    def _set_streaming(self, on: bool) -> None:
        with self._lock:
            self.protocol.stream_fragments = on
        if on:
            self._wake()  # the reader reports frames of the next message already in

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
        return self._receiver.recv_streaming(decode)

    def __iter__(self) -> Iterator[Data]:
        """Iterate over messages; ends quietly on a normal close."""
        return iter(self._receiver)

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
        self._sender.send(message, compress)

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
                self._writer.flush()
        except InvalidState:
            self.wait_closed(self.close_timeout)
            raise closed_exception(self.protocol) from None
        self._turn.hand_over()  # not receiving: the reader thread reads the pong
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
            self._writer.flush()
            self._start_close_deadline()
        self._wake()

    def _wake(self) -> None:
        if self._readiness is not None:
            self._readiness.wake()
        self._receiver.wake()  # in case the reader is paused by flow control

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection is closed; return False on timeout."""
        if self._reader is None:
            return self._closed.is_set()
        if threading.current_thread() is self._reader:
            return self._closed.is_set()
        self._turn.hand_over()  # not receiving: the reader thread reads the close
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
