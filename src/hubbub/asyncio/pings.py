"""Pings an asyncio connection sends and the pongs that answer them (RFC 6455 5.5.2-5.5.3).

:class:`Pings` is owned by :class:`hubbub.asyncio.connection.Connection`. It
sends the application's pings (:meth:`Pings.ping`) and the keepalive's
(:meth:`Pings.keepalive`), resolves them when their pong comes (a pong
acknowledges every ping sent before the one it answers: section 5.5.3 lets a
peer answer only the latest) and fails the connection with 1011 when a
keepalive ping gets no pong within ``ping_timeout``. Keepalive pings are sent
every ``ping_interval`` on a timer of their own (:meth:`Pings.start_keepalive`),
or when a server's timer wheel says (:meth:`Pings.keepalive`); which
ping a pong answers is :class:`hubbub.adapter.PingTracker`, shared with
:mod:`hubbub.sync`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..adapter import LoggerLike, PingTracker
from ..exceptions import ConcurrencyError, ConnectionClosed, InvalidState
from ..protocol import connection as core
from ..protocol.frames import CloseCode
from .closing import Closing

__all__ = ["Pings"]


class Pings:
    """The pings of one connection, waiting for their pongs; see the module docstring.

    Args:
        protocol: the connection's protocol core, which encodes the pings.
        loop: the connection's event loop.
        flush: writes what the core queued to the transport.
        fail: fails the connection with a close code and reason.
        closing: the end of the connection (:class:`~hubbub.asyncio.closing.Closing`):
            whether it is closed, and the :class:`ConnectionClosed` that says how.
        logger: where a ping timeout is logged.
    """

    __slots__ = (
        "_closing",
        "_deadline",
        "_fail",
        "_flush",
        "_timer",
        "_waiting",
        "logger",
        "loop",
        "protocol",
    )

    def __init__(
        self,
        protocol: core.Connection,
        loop: asyncio.AbstractEventLoop,
        *,
        flush: Callable[[], None],
        fail: Callable[[int, str], None],
        closing: Closing,
        logger: LoggerLike,
    ) -> None:
        self.protocol = protocol
        self.loop = loop
        self.logger = logger
        self._flush = flush
        self._fail = fail
        self._closing = closing
        self._waiting: PingTracker[asyncio.Future[float]] = PingTracker()
        self._deadline: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None  # the next keepalive ping

    @property
    def latency(self) -> float:
        """Round-trip time of the last ping answered, in seconds (0.0 before)."""
        return self._waiting.latency

    async def ping(self, data: str | bytes | None) -> float:
        """Send a ping and wait for its pong; return the round trip in seconds.

        Raises:
            ConcurrencyError: a ping with this payload waits for its pong.
            ConnectionClosed: the connection is closing or closed.
        """
        if data is None:
            data = self._waiting.new_payload()
        elif isinstance(data, str):
            data = data.encode()
        if data in self._waiting:
            raise ConcurrencyError("a ping with this payload is already waiting for its pong")
        try:
            self.protocol.send_ping(data)
        except InvalidState:
            raise await self._closing.error() from None
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._waiting.add(data, waiter, time.perf_counter())
        self._flush()
        return await waiter

    def start_keepalive(self, interval: float | None, timeout: float | None) -> None:
        """Ping every ``interval`` while open; fail with 1011 without a pong in ``timeout``."""
        if interval is not None and interval > 0:
            self._timer = self.loop.call_later(interval, self._keepalive_due, interval, timeout)

    def _keepalive_due(self, interval: float, timeout: float | None) -> None:
        self._timer = None
        if self.keepalive(timeout):
            self.start_keepalive(interval, timeout)

    def keepalive(self, timeout: float | None) -> bool:
        """Send a keepalive ping; fail with 1011 without a pong within ``timeout``.

        Returns:
            False, having sent nothing, when the connection is not OPEN.
        """
        if self.protocol.state is not core.State.OPEN:
            return False
        data = self._waiting.new_payload()
        self.protocol.send_ping(data)
        waiter: asyncio.Future[float] = self.loop.create_future()
        waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.add(data, waiter, time.perf_counter())
        self._flush()
        if timeout is not None and self._deadline is None:
            self._deadline = self.loop.call_later(timeout, self._timed_out, timeout)
        return True

    def _timed_out(self, timeout: float) -> None:
        self._deadline = None
        self.logger.info("no pong within %.1f s: closing the connection", timeout)
        self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    def pong_received(self, data: bytes) -> None:
        """Resolve the pings that a pong with ``data`` acknowledges."""
        # perf_counter, not loop.time(): uvloop's clock ticks in milliseconds,
        # which would make a loopback round trip 0.
        answered = self._waiting.pong(data, time.perf_counter())
        if not answered:
            return  # unsolicited pong: a heartbeat (section 5.5.3)
        for waiter, rtt in answered:
            if not waiter.done():
                waiter.set_result(rtt)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def closed(self, exc: ConnectionClosed) -> None:
        """The connection closed: stop the keepalive, fail the pings waiting with ``exc``."""
        for handle in (self._deadline, self._timer):
            if handle is not None:
                handle.cancel()
        self._deadline = self._timer = None
        for waiter in self._waiting.clear():
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()  # mark retrieved: nobody may be awaiting it
