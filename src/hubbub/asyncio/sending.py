"""Sending on an asyncio WebSocket connection: messages, fragments, write flow control.

Theory of operation
-------------------

:class:`Writer` is the writing side of a
:class:`hubbub.asyncio.connection.Connection`, an object the connection owns
(its public ``send`` methods hand over to it). It holds every way of putting
a data frame on the wire from the application's side, and the write flow
control:

* :meth:`Writer.send` (coroutine): one message, or a fragmented message from
  an (async) iterable (RFC 6455 section 5.4), with ``asyncio.Lock`` keeping
  other sends out until its last frame. Above the write buffer's high water
  mark (``write_limit``) it waits until the buffer drains below the low one
  (:meth:`Writer.wait_drained`; the connection reports the transport's
  ``pause_writing``/``resume_writing`` with :meth:`Writer.pause` and
  :meth:`Writer.resume`). While more received messages wait to be read
  (its :class:`~hubbub.asyncio.inbox.Inbox`), frames (of up to
  ``TURN_BUDGET`` bytes, 64 at most) are held back and written together, in
  one system call, at the next loop iteration or when ``recv()`` would wait.
* :meth:`Writer.send_nowait`: the same without waiting, for ``on_message``
  callbacks (callback mode: what a callback sends is written once per read,
  :attr:`Writer.in_callback`). The connection's own ``send_nowait`` calls the
  core directly for a whole ``str`` or ``bytes`` (the per-message path of
  callback mode) and hands everything else to this one.
* :meth:`Writer.send_frames_soon`: frames already encoded once for many
  connections (``shares_frames``), queued in the core's output and written at
  the end of the loop iteration (:mod:`hubbub.asyncio.held`: one callback for
  every connection), so that several messages to one connection in one
  iteration leave in one system call. Queued in the core, they keep their
  place: a pong or close frame queued after them goes after them. While
  frames are held, the bytes held count against the write buffer's high water
  mark as if they were written: past it they are written at once, and the
  transport's flow control pauses.

The same frames written at once (``send_frames_nowait``, for
:func:`~hubbub.asyncio.broadcast` and the hub) are the connection's own
business: one check of its flow control and the core's state, then one write.

The writer knows the connection only through what it is given: the protocol
core that encodes frames, the inbox, and three functions of the connection's
(write what the core queued, fail the connection, and wait until it is closed
to get the exception that says how).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import cast

from ..adapter import Data, Fragmenter, closed_exception
from ..exceptions import ConcurrencyError, InvalidState
from ..protocol import connection as core
from ..protocol.frames import CloseCode
from .closing import Closing
from .held import HeldWrites, held_writes
from .inbox import TURN_BUDGET, Inbox

__all__ = ["Writer"]

_OPEN = core.State.OPEN

Message = Data | bytearray | memoryview

# Frames up to this size are held back while received messages wait (see
# write_sent); larger ones are written at once, a system call of their own anyway.
_HOLD_MAX = TURN_BUDGET


class Writer:
    """The writing side of a connection; see the module docstring.

    Args:
        protocol: the connection's protocol core, which encodes the frames.
        inbox: the connection's receive queue (frames are held back
            while it holds messages).
        flush: writes what the core queued to the transport.
        fail: fails the connection with a close code and reason.
        closing: the end of the connection (:class:`~hubbub.asyncio.closing.Closing`):
            whether it is closed, and the :class:`ConnectionClosed` that says how.
    """

    __slots__ = (
        "_closing",
        "_drain_waiter",
        "_fail",
        "_flush",
        "_flush_soon",
        "_held",
        "_held_room",
        "_held_round",
        "_held_writes",
        "_high",
        "fragment_lock",
        "in_callback",
        "inbox",
        "loop",
        "paused",
        "protocol",
        "transport",
    )

    def __init__(
        self,
        protocol: core.Connection,
        inbox: Inbox,
        *,
        flush: Callable[[], None],
        fail: Callable[[int, str], None],
        closing: Closing,
    ) -> None:
        self.protocol = protocol
        self.inbox = inbox
        self.loop = inbox.loop
        self.transport: asyncio.Transport | None = None
        """The connection's transport, once it is made (:meth:`attach`)."""
        self.paused = False
        """Whether the transport paused writing (over ``write_limit``)."""
        self.in_callback = False
        """Whether an ``on_message`` callback runs: its frames leave after it."""
        self._flush = flush
        self._fail = fail
        self._closing = closing
        self._drain_waiter: asyncio.Future[None] | None = None
        self.fragment_lock: asyncio.Lock | None = None
        """Held while a fragmented message is sent (made on first use); read-only.

        The per-message paths read it: None means no fragmented send ever
        started, so a whole message needs no other check here.
        """
        self._flush_soon = False
        # send_frames_soon(): bytes held in the core's output, the room the
        # write buffer had for them, the loop's HeldWrites (looked up once, in
        # attach) and its round when this writer's output was registered.
        self._held = 0
        self._held_room = 0
        self._held_writes: HeldWrites | None = None
        self._held_round = -1
        self._high = 0

    def attach(self, transport: asyncio.Transport) -> None:
        """Write frames shared with other connections to ``transport``.

        Its write buffer limits are set: the high water mark bounds what
        :meth:`send_frames_soon` holds.
        """
        self.transport = transport
        self._high = transport.get_write_buffer_limits()[1]
        self._held_writes = held_writes(self.loop)

    def pause(self) -> None:
        """The transport's write buffer passed its high water mark."""
        self.paused = True

    def resume(self) -> None:
        """The write buffer drained below its low water mark, or the connection closed."""
        self.paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    async def send(
        self,
        message: Message | Iterable[Data] | AsyncIterable[Data],
        *,
        compress: bool = True,
    ) -> None:
        """:meth:`hubbub.asyncio.connection.Connection.send`."""
        protocol = self.protocol
        kind = type(message)
        if (kind is str or kind is bytes) and self.fragment_lock is None:
            # The per-message path of `async for` handlers: a whole str or
            # bytes message, no fragmented send to wait for.
            try:
                # As send_nowait(): a small server frame is one C call.
                protocol.send_message(message, compress)  # type: ignore[arg-type]
            except InvalidState:
                raise await self._closing.error() from None
            if self.inbox.items:
                self.write_sent(len(message))  # type: ignore[arg-type]
            else:
                self._flush()  # write_sent() inline: nothing more to read
            if self.paused:
                await self.wait_drained()
            return
        if self.fragment_lock is not None and self.fragment_lock.locked():
            async with self.fragment_lock:
                pass
        try:
            if isinstance(message, str):
                protocol.send_text(message.encode(), compress=compress)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                protocol.send_binary(message, compress=compress)
            elif isinstance(message, (Iterable, AsyncIterable)) and not isinstance(
                message, Mapping
            ):
                await self._send_fragments(
                    cast("Iterable[Data] | AsyncIterable[Data]", message), compress
                )
                return
            else:
                raise TypeError(f"cannot send {type(message).__name__}: use str or bytes")
        except InvalidState:
            raise await self._closing.error() from None
        self.write_sent(len(message))
        if self.paused:
            await self.wait_drained()

    def write_sent(self, size: int) -> None:
        """Write the frame of ``size`` bytes just queued in the core, or hold it back briefly."""
        if self.inbox.items and size <= _HOLD_MAX and self.protocol.pending_chunks < 64:
            # More messages wait to be read: the application is likely to answer
            # them too, so frames are written together, with one system call
            # (recv() flushes before it waits; a callback covers the rest).
            # Large answers too (a 64 KiB echo wrote two or three times per
            # read, docs/performance.md "Session 6"): what is held is bounded
            # by the turn budget, after which the handler waits for a loop
            # turn, and the callback flushes first.
            if not self._flush_soon:
                self._flush_soon = True
                self.loop.call_soon(self._deferred_flush)
            return
        self._flush()

    def send_frames_soon(self, frames: bytes, *, limit: int | None = None) -> bool:
        """:meth:`hubbub.asyncio.connection.Connection.send_frames_soon`."""
        transport = self.transport
        registry = self._held_writes
        if transport is None or registry is None or transport.is_closing():
            return False
        # Bytes held this round: none if the last flush registered has run.
        first = self._held_round != registry.round
        held = 0 if first else self._held
        if limit is None:
            if self.paused:
                return False
        elif transport.get_write_buffer_size() + held > limit:
            return False
        # The core checks the rest (state, section 5.4, sharing) and queues
        # the frames after what it holds: nothing queued later overtakes them.
        if not self.protocol.queue_shared_frames(frames):
            return False
        if first:
            # The first frames held this round: the connection's flush is due
            # at its end, and the held bytes count against the room left
            # below the high water mark now, as if written (send_frames_nowait
            # refuses past it; so do the calls after the flush below).
            self._held_round = registry.round
            self._held_room = self._high - transport.get_write_buffer_size()
            registry.add(transport, self.protocol.outgoing)
        held += len(frames)
        if held > self._held_room:
            # Over the mark: written now, so that the transport pauses writing
            # (and later calls are refused) as it would have without holding.
            # The flush registered stays due (it then finds nothing to write).
            self._flush()
            held = 0
            self._held_room = self._high - transport.get_write_buffer_size()
        self._held = held
        return True

    def send_nowait(self, message: Data | bytearray | memoryview, *, compress: bool = True) -> None:
        """:meth:`hubbub.asyncio.connection.Connection.send_nowait`."""
        if self.fragment_lock is not None and self.fragment_lock.locked():
            raise ConcurrencyError("a fragmented message is being sent")
        protocol = self.protocol
        try:
            # send_message directly: the per-message path of callback mode.
            if type(message) is str or type(message) is bytes:
                protocol.send_message(message, compress)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                protocol.send_binary(message, compress=compress)
            elif isinstance(message, str):
                protocol.send_text(message, compress=compress)
            else:
                raise TypeError(f"cannot send {type(message).__name__}: use str or bytes")
        except InvalidState:
            raise closed_exception(self.protocol) from None
        if not self.in_callback:
            self._flush()

    def _deferred_flush(self) -> None:
        self._flush_soon = False
        self._flush()

    async def _send_fragments(
        self, message: Iterable[Data] | AsyncIterable[Data], compress: bool = True
    ) -> None:
        if self.fragment_lock is None:
            self.fragment_lock = asyncio.Lock()
        async with self.fragment_lock:
            protocol = self.protocol
            fragmenter = Fragmenter()

            async def emit(frame: tuple[int, bytes, bool] | None) -> None:
                if frame is not None:
                    protocol.send_data_frame(*frame, compress=compress)
                    self._flush()
                    if self.paused:
                        await self.wait_drained()

            try:
                if isinstance(message, AsyncIterable):
                    async for item in message:
                        await emit(fragmenter.push(item))
                else:
                    for item in message:
                        await emit(fragmenter.push(item))
                await emit(fragmenter.finish())
            except BaseException:
                # Half a message went out and cannot be finished (section 5.4
                # allows no other data frame before it ends): the connection is
                # unusable, fail it like an internal error.
                if protocol.sending_fragmented and protocol.state is core.State.OPEN:
                    self._fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                raise

    async def wait_drained(self) -> None:
        """Wait until the write buffer drained below its low water mark.

        Raises:
            ConnectionClosed: the connection closed meanwhile.
        """
        if self._drain_waiter is None or self._drain_waiter.done():
            self._drain_waiter = self.loop.create_future()
        # Shielded: the waiter is shared, and one cancelled sender must not
        # cancel the wait of the others.
        await asyncio.shield(self._drain_waiter)
        if self._closing.closed.done():
            # Woken by connection_lost(): what was still buffered never left.
            raise await self._closing.error()
