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
  :attr:`Writer.in_callback`).
* :meth:`Writer.send_frames_nowait`: frames already encoded once for many
  connections (``shares_frames``), for :func:`~hubbub.asyncio.broadcast` and
  the hub.

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
        "_fragment_lock",
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
        self._fragment_lock: asyncio.Lock | None = None
        self._flush_soon = False

    def attach(self, transport: asyncio.Transport) -> None:
        """Write frames shared with other connections to ``transport``."""
        self.transport = transport

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
        if (kind is str or kind is bytes) and self._fragment_lock is None:
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
        if self._fragment_lock is not None and self._fragment_lock.locked():
            async with self._fragment_lock:
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

    def send_frames_nowait(self, frames: bytes, *, limit: int | None = None) -> bool:
        """:meth:`hubbub.asyncio.connection.Connection.send_frames_nowait`."""
        transport = self.transport
        if (
            transport is None
            or transport.is_closing()
            or (self.paused if limit is None else transport.get_write_buffer_size() > limit)
        ):
            return False
        # The core checks the rest (state, section 5.4, sharing) and writes what
        # it queued before the frames: one call per connection of a broadcast.
        return self.protocol.write_shared_frames(transport, frames)

    def send_nowait(self, message: Data | bytearray | memoryview, *, compress: bool = True) -> None:
        """:meth:`hubbub.asyncio.connection.Connection.send_nowait`."""
        if self._fragment_lock is not None and self._fragment_lock.locked():
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
        if self._fragment_lock is None:
            self._fragment_lock = asyncio.Lock()
        async with self._fragment_lock:
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
