"""The receive side of a :mod:`hubbub.sync` connection: its queue, ``recv()``, streaming.

The thread that reads (the reader thread, or a receiving thread itself: see
:mod:`hubbub.sync.turns`) puts what the core parsed into a :class:`Receiver`
(messages, fragments of a streamed message, a deferred protocol error);
application threads take it out with :meth:`Receiver.recv` and
:meth:`Receiver.recv_streaming`. Flow control lives here too: with
``max_queue`` entries unread the reader thread waits (:meth:`Receiver.wait_room`)
until the queue is down to a quarter, so TCP pushes back on the peer.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from typing import NoReturn, cast

from ..adapter import (
    Data,
    FailurePending,
    FragmentStream,
    decoded,
    fragment_converter,
    join_fragments,
)
from ..exceptions import ConcurrencyError, ConnectionClosedOK
from ..protocol.events import Fragment
from .turns import ReadingTurn

__all__ = ["Entry", "Receiver"]

Entry = Data | Fragment | FailurePending
"""What the receive queue holds."""


class Receiver:
    """The receive queue of one connection and the calls that read it.

    Args:
        max_queue: unread entries at which the reader thread stops reading.
        closed: set once the connection is closed (the reader thread ended).
        end: called when no message will come any more, with the deferred
            protocol error reached, if that is why; it fails the connection
            if needed, waits for the close and raises the
            :class:`~hubbub.exceptions.ConnectionClosed` that tells how.
        set_streaming: turns the core's fragment reports on or off (and wakes
            the reader thread up to report frames already in).
        fill: called without the queue's lock when the queue is empty: reads
            in the receiving thread for at most the given seconds, if it can
            take the turn (see :mod:`hubbub.sync.turns`); False if not.
        turn: whose turn it is to read.
    """

    def __init__(
        self,
        max_queue: int,
        *,
        closed: threading.Event,
        end: Callable[[FailurePending | None], NoReturn],
        set_streaming: Callable[[bool], None],
        fill: Callable[[float | None], bool],
        turn: ReadingTurn,
    ) -> None:
        self.max_queue = max(1, max_queue)
        # The condition's lock, taken directly where nothing waits (a Lock's
        # context manager is C, a Condition's is Python).
        self._mutex = threading.Lock()
        self.cond = threading.Condition(self._mutex)
        """Guards the queue; waited on by receivers and by a paused reader thread."""
        self.messages: collections.deque[Entry] = collections.deque()
        # Set under cond once the reader queued the last entry (a close frame
        # or a protocol error came): the core's own state changes earlier, in
        # the reader thread, before the messages parsed with it are queued.
        self._ended = False
        self._receiving = False
        # Threads waiting on cond: with none (the usual case, a thread that
        # reads for itself), notifying is skipped, a Python call chain saved
        # per message.
        self._sleepers = 0
        self._closed = closed
        self._end = end
        self._set_streaming = set_streaming
        self._fill = fill
        self._turn = turn
        # Made by the first recv_streaming(); most connections never stream.
        self._stream: FragmentStream | None = None

    # --- the reader thread's side ---------------------------------------------------

    def wait_room(self, reading: Callable[[], bool], timeout: Callable[[], float | None]) -> bool:
        """Wait while the queue is full; False if a timer came due meanwhile.

        Args:
            reading: whether flow control applies (the connection is open:
                while closing, the closing handshake needs the peer's frames).
            timeout: seconds until the next timer of the reader thread.
        """
        if len(self.messages) < self.max_queue:
            # Without the lock: only the reading thread (the caller) queues,
            # so the queue can only get shorter meanwhile.
            return True
        with self.cond:
            while len(self.messages) >= self.max_queue and reading():
                wait = timeout()
                if wait is not None and wait <= 0:
                    return False
                self._sleep(wait)
        return True

    def _sleep(self, timeout: float | None) -> None:
        """Wait on :attr:`cond` (held) until notified or ``timeout`` seconds."""
        self._sleepers += 1
        try:
            self.cond.wait(timeout)
        finally:
            self._sleepers -= 1

    def put(self, entries: list[Entry], ended: bool) -> list[FailurePending]:
        """Queue ``entries``; ``ended``: nothing will follow them.

        Returns the protocol errors not queued because nothing unread comes
        before them: the connection is to be failed at once.
        """
        now: list[FailurePending] = []
        with self._mutex:
            for entry in entries:
                if isinstance(entry, FailurePending) and not self.messages:
                    now.append(entry)
                    continue
                self.messages.append(entry)
            if ended:
                self._ended = True
            if self._sleepers:
                self.cond.notify_all()
        return now

    def wake(self) -> None:
        """Wake up whoever waits on the queue (a paused reader thread, receivers)."""
        with self.cond:
            self.cond.notify_all()

    # --- the application's side -----------------------------------------------------

    def recv(self, timeout: float | None, decode: bool | None) -> Data:
        """:meth:`hubbub.sync.connection.Connection.recv` (see there)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # Fragments are queued only once recv_streaming() was used (_stream).
        message = (
            cast(Data, self._next(deadline)) if self._stream is None else self._next_whole(deadline)
        )
        return message if decode is None else decoded(message, decode)

    def _next(self, deadline: float | None) -> Data | Fragment:
        """The next entry of the queue: a message, or a fragment of one."""
        with self._mutex:
            if self._receiving:
                raise ConcurrencyError("another thread is already receiving")
            self._receiving = True
            try:
                while not self.messages:
                    if self._ended or self._closed.is_set():
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError("no message received in time")
                    # Read in this thread rather than wait to be handed the
                    # message by the reader thread (two wake-ups per message).
                    self._mutex.release()
                    try:
                        filled = self._fill(remaining)
                    finally:
                        self._mutex.acquire()
                    if not filled and not self.messages and self._turn.held_by_reader():
                        # The reader thread leaves the turn (or queues
                        # something) and notifies under cond: not missed.
                        self._sleep(remaining)
                message = self.messages.popleft() if self.messages else None
                if self._sleepers and len(self.messages) <= self.max_queue // 4:
                    self.cond.notify_all()  # the reader may resume reading
            finally:
                self._receiving = False
        if message is None or isinstance(message, FailurePending):
            self._end(message)
        return message

    def _next_message(self, deadline: float | None) -> Data | Fragment:
        """A message or its first fragment, past the rest of an abandoned stream."""
        assert self._stream is not None
        with self.cond:
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
            with self.cond:
                self.messages.extendleft(reversed(items))
            raise
        return join_fragments([item.data for item in items])

    def recv_streaming(self, decode: bool | None) -> Iterator[Data]:
        """:meth:`hubbub.sync.connection.Connection.recv_streaming` (see there)."""
        stream = self._stream
        if stream is None:
            stream = self._stream = FragmentStream()
        with self.cond:
            token = stream.begin()
        self._set_streaming(True)
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
        """Messages until a normal close."""
        try:
            while True:
                yield self.recv(None, None)
        except ConnectionClosedOK:
            return
