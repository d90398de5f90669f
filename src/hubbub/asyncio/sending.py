"""Sending on an asyncio WebSocket connection: messages, fragments, pings.

:class:`Sending` is a mixin of :class:`hubbub.asyncio.connection.Connection`,
in a module of its own only to keep ``connection.py`` a readable size; it is
not meant to be used without that class. It holds every way of putting a
frame on the wire from the application's side:

* :meth:`Sending.send` (coroutine): one message, or a fragmented message from
  an (async) iterable (RFC 6455 section 5.4), with ``asyncio.Lock`` keeping
  other sends out until its last frame. Above the write buffer's high water
  mark (``write_limit``) it waits until the buffer drains below the low one.
  While more received messages wait to be read, small frames are held back
  and written together, in one system call, at the next loop iteration or
  when :meth:`~hubbub.asyncio.connection.Connection.recv` would wait.
* :meth:`Sending.send_nowait`: the same without waiting, for ``on_message``
  callbacks (callback mode: what a callback sends is written once per read).
* :meth:`Sending.send_frames_nowait`: frames already encoded once for many
  connections (:attr:`Sending.shares_frames`), for
  :func:`~hubbub.asyncio.broadcast` and the hub.
* :meth:`Sending.ping` and the pong bookkeeping (section 5.5.3); the keepalive
  timer that uses them stays in the connection.

The code is the connection's own: the methods read its attributes directly and
call its ``_flush()``, with nothing in between, since ``send_nowait()`` and
``send()`` are per-message paths.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, cast

from ..adapter import Data, Fragmenter, PingTracker
from ..exceptions import ConcurrencyError, ConnectionClosed, InvalidState
from ..protocol import connection as core
from ..protocol.frames import CloseCode

if TYPE_CHECKING:
    import collections

    from ..adapter import FailurePending

__all__ = ["Sending"]

_OPEN = core.State.OPEN


class Sending:
    """The sending half of :class:`~hubbub.asyncio.connection.Connection`."""

    # Connection has a __dict__ anyway; an empty tuple here only keeps this
    # mixin from adding one. Hidden from mypy, which would otherwise refuse
    # every assignment to the attributes below.
    if not TYPE_CHECKING:
        __slots__ = ()

    # The connection's attributes (set in Connection.__init__).
    protocol: core.Connection
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    latency: float
    _messages: collections.deque[Data | core.Fragment | FailurePending]
    _writing_paused: bool
    _drain_waiter: asyncio.Future[None] | None
    _fragment_lock: asyncio.Lock | None
    _pings: PingTracker[asyncio.Future[float]]
    _ping_deadline: asyncio.TimerHandle | None
    _transport_closing: bool
    _flush_soon: bool
    _in_callback: bool
    _closed: asyncio.Future[None]

    # The connection's methods. Connection defines each of them itself, so
    # these stubs never run: they come after it in the MRO.
    def _flush(self) -> None:
        raise NotImplementedError  # the connection's

    def fail(self, code: int, reason: str) -> None:
        raise NotImplementedError  # the connection's

    async def _wait_closed_quietly(self) -> None:
        raise NotImplementedError  # the connection's

    def _closed_exception(self) -> ConnectionClosed:
        raise NotImplementedError  # the connection's

    async def send(
        self,
        message: Data | bytearray | memoryview | Iterable[Data] | AsyncIterable[Data],
        *,
        compress: bool = True,
    ) -> None:
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
        if self._fragment_lock is not None and self._fragment_lock.locked():
            async with self._fragment_lock:
                pass
        protocol = self.protocol
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
            await self._wait_closed_quietly()
            raise self._closed_exception() from None
        if self._messages and protocol.pending_chunks < 64 and len(message) < 1024:
            # More messages wait to be read: the application is likely to answer
            # them too, so small frames are written together, with one system
            # call (recv() flushes before it waits; a callback covers the rest).
            if not self._flush_soon:
                self._flush_soon = True
                self.loop.call_soon(self._deferred_flush)
            return
        self._flush()
        if self._writing_paused:
            await self._wait_drained()

    @property
    def writing_paused(self) -> bool:
        """True from when the write buffer passes its high water mark until it
        drains below the low one (``write_limit``)."""
        return self._writing_paused

    @property
    def shares_frames(self) -> bool:
        """Whether one encoded frame serves this connection as it serves others.

        True when the connection neither masks (servers do not, section 5.1)
        nor transforms frames (no extension: RFC 7692 compresses per
        connection). :func:`~hubbub.asyncio.broadcast` and the hub then encode a
        message once and hand the same bytes to :meth:`send_frames_nowait`.
        """
        return self.protocol.shares_frames

    def send_frames_nowait(self, frames: bytes, *, limit: int | None = None) -> bool:
        """Write already-encoded frames now if the connection can take them.

        ``frames`` are whole data messages (FIN set) encoded once for every
        connection that :attr:`shares_frames`. Frames that :meth:`send` held
        back are written first, in the same call, so the order of messages is
        kept.

        Args:
            frames: one or more complete frames, as bytes.
            limit: write only while at most this many bytes are buffered; by
                default, while writing is not paused (:attr:`writing_paused`).

        Returns:
            False, having written nothing, when the connection does not
            :attr:`shares_frames`, is not OPEN, is closing, is sending a
            fragmented message (section 5.4 forbids interleaving) or its write
            buffer is over the bound; True otherwise.
        """
        if self._transport_closing or (
            self._writing_paused
            if limit is None
            else self.transport.get_write_buffer_size() > limit
        ):
            return False
        # The core checks the rest (state, section 5.4, sharing) and writes what
        # it queued before the frames: one call per connection of a broadcast.
        return self.protocol.write_shared_frames(self.transport, frames)

    def send_nowait(self, message: Data | bytearray | memoryview, *, compress: bool = True) -> None:
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
            raise self._closed_exception() from None
        if not self._in_callback:
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
                    if self._writing_paused:
                        await self._wait_drained()

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
                    self.fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                raise

    async def _wait_drained(self) -> None:
        if self._drain_waiter is None or self._drain_waiter.done():
            self._drain_waiter = self.loop.create_future()
        # Shielded: the waiter is shared, and one cancelled sender must not
        # cancel the wait of the others.
        await asyncio.shield(self._drain_waiter)
        if self._closed.done():
            # Woken by connection_lost(): what was still buffered never left.
            raise self._closed_exception()

    async def ping(self, data: str | bytes | None = None) -> float:
        """Send a ping and wait for its pong; return the round-trip time in seconds.

        Pongs acknowledge every ping sent before them (section 5.5.3 lets a peer
        answer only the latest), so earlier pings are resolved too.
        """
        if data is None:
            data = self._pings.new_payload()
        elif isinstance(data, str):
            data = data.encode()
        if data in self._pings:
            raise ConcurrencyError("a ping with this payload is already waiting for its pong")
        try:
            self.protocol.send_ping(data)
        except InvalidState:
            await self._wait_closed_quietly()
            raise self._closed_exception() from None
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._pings.add(data, waiter, time.perf_counter())
        self._flush()
        return await waiter

    def _pong_received(self, data: bytes) -> None:
        # perf_counter, not loop.time(): uvloop's clock ticks in milliseconds,
        # which would make a loopback round trip 0.
        answered = self._pings.pong(data, time.perf_counter())
        if not answered:
            return  # unsolicited pong: a heartbeat (section 5.5.3)
        for waiter, rtt in answered:
            if not waiter.done():
                waiter.set_result(rtt)
        self.latency = self._pings.latency
        if self._ping_deadline is not None:
            self._ping_deadline.cancel()
            self._ping_deadline = None
