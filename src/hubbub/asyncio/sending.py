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
  (its :class:`~hubbub.asyncio.inbox.Inbox`), small frames are held back and
  written together, in one system call, at the next loop iteration or when
  ``recv()`` would wait.
* :meth:`Writer.send_nowait`: the same without waiting, for ``on_message``
  callbacks (callback mode: what a callback sends is written once per read,
  :attr:`Writer.in_callback`). The connection's own ``send_nowait`` calls the
  core directly for a whole ``str`` or ``bytes`` (the per-message path of
  callback mode) and hands everything else to this one.

Frames already encoded once for many connections (``send_frames_nowait``, for
:func:`~hubbub.asyncio.broadcast` and the hub) are the connection's own
business: one check of its flow control, then the core's ``write_shared_frames``.

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
from .inbox import Inbox

__all__ = ["Writer"]

_OPEN = core.State.OPEN

Message = Data | bytearray | memoryview


class Writer:
    """The writing side of a connection; see the module docstring.

    Args:
        protocol: the connection's protocol core, which encodes the frames.
        inbox: the connection's receive queue (small frames are held back
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
        "fragment_lock",
        "in_callback",
        "inbox",
        "loop",
        "paused",
        "protocol",
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
                if kind is str:
                    protocol.send_data_frame(1, message.encode(), True, compress)  # type: ignore[union-attr]
                else:
                    protocol.send_data_frame(2, message, True, compress)  # type: ignore[arg-type]
            except InvalidState:
                raise await self._closing.error() from None
            if self.inbox.items and len(message) < 1024:  # type: ignore[arg-type]
                self.write_sent(len(message))  # type: ignore[arg-type]
            else:
                self._flush()  # write_sent() inline: a large frame, or nothing to read
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
        if self.inbox.items and size < 1024 and self.protocol.pending_chunks < 64:
            # More messages wait to be read: the application is likely to answer
            # them too, so small frames are written together, with one system
            # call (recv() flushes before it waits; a callback covers the rest).
            if not self._flush_soon:
                self._flush_soon = True
                self.loop.call_soon(self._deferred_flush)
            return
        self._flush()

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
