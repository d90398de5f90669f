"""How an asyncio connection ends: the closed future, the close deadline, the error.

:class:`Closing` is owned by :class:`hubbub.asyncio.connection.Connection` and
handed to its other parts (the receive queue, the writer, the pings), which
wait on it and raise what it says. It knows the connection only through the
protocol core (whose state tells how it closed, RFC 6455 section 7.1.5) and
the transport, which it drops when the deadline passes.

``close_timeout`` bounds each wait for the peer: the closing handshake
(section 7.1.2) once a close frame was sent, and the end of TCP after it
(section 7.1.1: the server closes first; the client waits for it, but not
forever). The deadline is a ``call_later`` handle made only when closing
starts, so an idle connection pays nothing for it.
"""

from __future__ import annotations

import asyncio

from ..adapter import closed_exception
from ..exceptions import ConnectionClosed
from ..protocol import connection as core

__all__ = ["Closing"]


class Closing:
    """The end of one connection; see the module docstring.

    Args:
        protocol: the connection's protocol core.
        loop: the connection's event loop.
        timeout: ``close_timeout``, in seconds.
    """

    __slots__ = ("_deadline", "closed", "protocol", "timeout", "transport")

    def __init__(
        self,
        protocol: core.Connection,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
    ) -> None:
        self.protocol = protocol
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        """The connection's transport, once it is made (:meth:`attach`)."""
        self.closed: asyncio.Future[None] = loop.create_future()
        """Done once the TCP connection is gone."""
        self._deadline: asyncio.TimerHandle | None = None

    def attach(self, transport: asyncio.Transport) -> None:
        """Drop ``transport`` when the deadline passes."""
        self.transport = transport

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        # Not a bound method of the connection kept by every connection: the
        # timer that calls this one is made only when closing starts.
        if self.transport is not None:
            self.transport.abort()

    def start_deadline(self) -> None:
        """Drop the connection if it is not closed within ``timeout`` from now."""
        if self._deadline is None and not self.closed.done():
            self._deadline = self.closed.get_loop().call_later(self.timeout, self.abort)

    def set_closed(self) -> bool:
        """The TCP connection is gone: stop the deadline; return whether that is news."""
        if self._deadline is not None:
            self._deadline.cancel()
        if self.closed.done():
            return False
        self.closed.set_result(None)
        return True

    async def wait_quietly(self) -> None:
        """Wait until closed, at most ``timeout``; then drop the connection."""
        # The close code is final once the closing handshake ends; wait a little
        # for it so that the exception tells the truth.
        if not self.closed.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.closed), self.timeout)
            except TimeoutError:
                self.abort()

    def exception(self) -> ConnectionClosed:
        """The :class:`ConnectionClosed` that says how the connection closed, as of now."""
        return closed_exception(self.protocol)  # shared with hubbub.sync (hubbub.adapter)

    async def error(self) -> ConnectionClosed:
        """Wait (quietly) until closed; the exception that says how it closed."""
        await self.wait_quietly()
        return self.exception()
