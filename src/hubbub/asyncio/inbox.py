"""The receive queue of an asyncio connection: messages parsed and not yet read.

Theory of operation
-------------------

:class:`Inbox` is owned by :class:`hubbub.asyncio.connection.Connection`, which
puts every message (or fragment, for ``recv_streaming()``) the core parses
into it, and takes them out for ``recv()`` and ``async for``. It owns three
things about that queue and nothing else:

* **waiting**: a coroutine that finds it empty waits on one Future
  (:meth:`Inbox.wait`), which :meth:`Inbox.wake` resolves. A message already
  queued is taken with :meth:`Inbox.take`, a plain call: no coroutine and no
  Future on the fast path of ``async for``.
* **flow control**: :attr:`Inbox.full` turns true when ``max_queue`` entries
  wait and false once they are down to a quarter; the connection stops
  reading the transport meanwhile (``on_room`` tells it when to look again).
* **receiving**: :meth:`Inbox.next` waits for the next entry (a failure the
  peer caused fails the connection when the application reaches it, after
  the messages sent before it); :meth:`Inbox.next_whole` joins a message
  queued in fragments and :meth:`Inbox.stream` hands one out fragment by
  fragment (``recv_streaming()``, section 5.4).
* **turns**: a peer can fill the queue faster than the application answers
  (``max_queue`` messages of ``max_size`` inflated from a compressed burst,
  RFC 7692). Taken back to back, with answers compressed in turn, they would
  keep the event loop for one task step per queue; taken one per wake-up,
  the handlers of a few such peers would still each answer (inflate,
  compress) a message in every loop iteration, outside the turns that pace
  the inflation. So once the application took :data:`TURN_BUDGET` bytes of
  messages since the connection's last turn, :meth:`Inbox.take` refuses and
  the caller waits for the connection's turn of :mod:`hubbub.asyncio.turns`
  (:meth:`Inbox.wait_turn`), one per loop iteration for all connections;
  so does a message the caller waited for (each inflation step wakes it):
  large messages are handed out at the pace of the loop's turns, small ones
  cost a turn per ``TURN_BUDGET`` bytes. Measured with
  ``benchmarks/hostile.py --attack deflate-burst`` (docs/security.md).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, cast

from ..adapter import (
    DECODE_STEP,
    Data,
    FailurePending,
    FragmentStream,
    fragment_converter,
    join_fragments,
)
from ..exceptions import ConcurrencyError
from ..protocol import connection as core
from ..protocol.events import Fragment
from ..protocol.frames import CloseCode
from .closing import Closing
from .turns import turns

__all__ = ["TURN_BUDGET", "WAIT", "Inbox"]

Entry = Data | Fragment | FailurePending

TURN_BUDGET = DECODE_STEP
"""Bytes of messages handed out per turn of :mod:`hubbub.asyncio.turns`."""

WAIT: Any = object()
"""What :meth:`Inbox.take` returns when the caller must wait."""

# A deque allocates a 64-slot block at once (760 bytes): an idle connection
# shares this empty tuple until its first message.
_EMPTY: Any = ()


class Inbox:
    """Messages received and not yet read, with the waiting and flow control on them.

    Args:
        protocol: the connection's protocol core.
        loop: the connection's event loop.
        max_queue: entries queued before :attr:`full` turns true.
        on_room: called when the queue went from full down to a quarter.
        flush: writes what the core queued to the transport.
        fail: fails the connection with a close code and reason.
        closing: the end of the connection (:class:`~hubbub.asyncio.closing.Closing`):
            whether it is closed, and the :class:`ConnectionClosed` that says how.
    """

    __slots__ = (
        "_closing",
        "_fail",
        "_flush",
        "_on_room",
        "_taken",
        "callback_mode",
        "full",
        "items",
        "loop",
        "max_queue",
        "protocol",
        "stream_state",
        "waiter",
    )

    def __init__(
        self,
        protocol: core.Connection,
        loop: asyncio.AbstractEventLoop,
        max_queue: int,
        *,
        on_room: Callable[[], None],
        flush: Callable[[], None],
        fail: Callable[[int, str], None],
        closing: Closing,
    ) -> None:
        self.protocol = protocol
        self.loop = loop
        self.max_queue = max(1, max_queue)
        self.items: collections.deque[Entry] = _EMPTY
        """The entries, oldest first."""
        self.waiter: asyncio.Future[None] | None = None
        """What a coroutine waiting for an entry awaits, while one does."""
        self.full = False
        """Whether ``max_queue`` entries waited and not yet down to a quarter."""
        self.callback_mode = False
        """Whether messages go to an ``on_message`` callback instead."""
        self.stream_state: FragmentStream | None = None
        """Made by the first ``recv_streaming()``: fragments are queued from then on."""
        self._on_room = on_room
        self._flush = flush
        self._fail = fail
        self._closing = closing
        # Bytes of messages taken since this connection's last turn (waiting
        # for a message does not count: every attacker's handler would then
        # answer one message per loop iteration, outside the turns).
        self._taken = 0

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def put(self, entry: Entry) -> None:
        """Queue ``entry`` (call :meth:`check_full` and :meth:`wake` after a batch)."""
        self.queue().append(entry)

    def queue(self) -> collections.deque[Entry]:
        """:attr:`items` as a deque to append to, made on first use (idle: none)."""
        items = self.items
        if items is _EMPTY:
            items = self.items = collections.deque()
        return items

    def put_back(self, entries: Iterable[Entry]) -> None:
        """Queue ``entries`` again at the head, in their order (a cancelled receive)."""
        entries = list(entries)
        if self.items is _EMPTY:
            self.items = collections.deque()
        self.items.extendleft(reversed(entries))

    def check_full(self) -> bool:
        """Mark the queue full if it reached ``max_queue``; True if it just became full."""
        if not self.full and len(self.items) >= self.max_queue:
            self.full = True
            return True
        return False

    def unblock(self) -> bool:
        """Forget that the queue is full (nobody will read it); True if it was."""
        was, self.full = self.full, False
        return was

    def take_all(self) -> list[Entry]:
        """Remove and return every entry, in order (handing over to a callback)."""
        taken = list(self.items)
        if self.items is not _EMPTY:
            self.items.clear()
        self.full = False
        return taken

    def take(self) -> Any:
        """The next message if it may be taken without waiting, else :data:`WAIT`.

        Waits are: an empty queue, a failure next (the connection fails it), or
        :data:`TURN_BUDGET` bytes taken since the loop last had a turn, also
        right after the caller waited on the Future of :meth:`waiter_when_empty`
        (as in :meth:`next`: a burst inflated a step per turn wakes the waiting
        coroutine once per step, and its answers must take turns too).
        """
        items = self.items
        if not items or self._taken >= TURN_BUDGET or type(items[0]) is FailurePending:
            return WAIT
        # The per-message path of `async for` on queued messages (next() has
        # the same lines after its wait).
        entry = items.popleft()
        kind = type(entry)
        self._taken += len(entry) if kind is str or kind is bytes else len(entry.data)  # type: ignore[arg-type,union-attr]
        if self.full and len(items) <= self.max_queue // 4:
            self.full = False
            self._on_room()
        return entry

    def waiter_when_empty(self) -> asyncio.Future[None] | None:
        """A Future to await until a message comes, if the queue is simply empty.

        For a caller that waits inline (``async for``: no coroutine of
        :meth:`next` per message), then sets :attr:`waiter` back to None and calls
        ``take()``. None when :meth:`next` must decide instead:
        messages are queued, the connection is closing or closed, another
        coroutine is receiving, or messages go to a callback. Frames held back
        by ``send()`` are written first, as in :meth:`next`.
        """
        if self.items or self.waiter is not None or self.callback_mode:
            return None
        protocol = self.protocol
        if (
            protocol.close_received is not None
            or protocol.close_exc is not None
            or self._closing.closed.done()
        ):
            return None
        if protocol.outgoing:  # frames held back by send(): write them now
            self._flush()
        waiter = self.waiter = self.loop.create_future()
        return waiter

    async def wait_turn(self) -> None:
        """Wait for this connection's turn of the event loop (see :mod:`.turns`)."""
        await turns(self.loop).wait()
        self._taken = 0

    def wake(self) -> None:
        """Wake the coroutine waiting in :meth:`next`, if any."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> Data | Fragment:
        """The next entry, once there is one: a message, or a fragment of one.

        Raises:
            ConnectionClosed: the connection closed (or failed, when the next
                entry is the failure that the peer caused).
            ConcurrencyError: another coroutine is receiving, or messages go
                to an ``on_message`` callback.
        """
        if self.callback_mode:
            raise ConcurrencyError("messages go to on_message: recv() would never return one")
        protocol = self.protocol
        while True:
            while not self.items:
                if (
                    protocol.close_received is not None
                    or self._closing.closed.done()
                    or protocol.close_exc is not None
                ):
                    raise await self._closing.error()
                if self.waiter is not None:
                    raise ConcurrencyError("another coroutine is already receiving")
                if protocol.outgoing:  # frames held back by send(): write them now
                    self._flush()
                # Inline, not a coroutine of its own: this is once per message
                # when messages come one at a time (request/response).
                self.waiter = self.loop.create_future()
                try:
                    await self.waiter
                finally:
                    self.waiter = None
            if self._taken < TURN_BUDGET:
                break
            # TURN_BUDGET bytes were taken since the connection's last turn,
            # whether they waited in the queue or were just parsed. Checked
            # after the wait, not before it: a peer's burst is inflated a step
            # per turn, each step waking this coroutine, which then answered
            # a message per loop iteration beside another connection's turn
            # (asyncio debug: a 1 MiB inflation step and a 1 MiB answer in
            # most iterations under benchmarks/hostile.py --attack
            # deflate-burst). Another receiver may take the entry meanwhile:
            # look again.
            await self.wait_turn()
        items = self.items
        entry = items.popleft()
        kind = type(entry)
        if kind is FailurePending:
            exc = cast(FailurePending, entry).exc
            self._fail(getattr(exc, "code", CloseCode.PROTOCOL_ERROR), str(exc))
            raise await self._closing.error()
        self._taken += len(entry) if kind is str or kind is bytes else len(entry.data)  # type: ignore[arg-type,union-attr]
        if self.full and len(items) <= self.max_queue // 4:
            self.full = False
            self._on_room()
        return entry  # type: ignore[return-value]  # not a FailurePending (see above)

    # --- streaming a message (section 5.4) ---------------------------------------

    async def _next_message(self) -> Data | Fragment:
        """A message or its first fragment, past the rest of an abandoned stream."""
        assert self.stream_state is not None
        self.stream_state.abandon()
        item = await self.next()
        while self.stream_state.skipped(item):
            item = await self.next()
        return item

    async def next_whole(self) -> Data:
        """The next message, joined if it was queued in fragments."""
        message = await self._next_message()
        return await self._assemble(message) if type(message) is Fragment else cast(Data, message)

    async def _assemble(self, first: Fragment) -> Data:
        # A message streamed by the core (recv_streaming() was waiting when its
        # frames came) but read with recv(): join its fragments.
        items = [first]
        try:
            while not items[-1].fin:
                item = await self.next()
                assert type(item) is Fragment  # a message's frames are contiguous
                items.append(item)
        except asyncio.CancelledError:
            # Nothing is lost: the next receive starts from the first fragment.
            self.put_back(items)
            raise
        return join_fragments([item.data for item in items])

    async def stream(self, decode: bool | None, start: Callable[[], None]) -> AsyncIterator[Data]:
        """Yield the next message in fragments (``recv_streaming()``).

        ``start()`` is called first: it makes the core report fragments and
        queues those already parsed.
        """
        stream = self.stream_state
        if stream is None:
            stream = self.stream_state = FragmentStream()
        token = stream.begin()
        protocol = self.protocol
        protocol.stream_fragments = True
        start()
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
            fragment = cast(Fragment, await self.next())  # a message's frames are contiguous
        protocol.stream_fragments = False
        yield stream.hand_out(fragment, convert)
