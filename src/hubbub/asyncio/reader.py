"""Reading a large frame's payload straight into the message.

Theory of operation
-------------------

A :class:`~hubbub.asyncio.connection.Connection` is an :class:`asyncio.Protocol`:
the event loop reads into its own buffer and hands each piece over as a new
``bytes`` object. For small frames that is the cheapest way. For a large
binary frame it costs a copy of the whole payload, and the pieces must then
be joined (and unmasked) into the message: a second pass.

So when the protocol core says that a large frame is arriving
(:meth:`~hubbub.protocol.connection.Connection.receive_buffer` returns a
view), the connection's :class:`PayloadReader` (made on first use, kept for the
next large frame), an :class:`asyncio.BufferedProtocol`, swaps itself in with
``transport.set_protocol()`` (:meth:`PayloadReader.swap_in`). The event
loop then reads the socket straight into the missing part of the payload,
which is the final ``bytes`` of the message (:class:`hubbub.speedups.Payload`),
and never past its end, so the next frame stays in the socket. When the
payload is complete the connection handles the message like any other; the
reader stays for one short read (see :attr:`PayloadReader.PEEK`), then the
connection is swapped back. Both the default event loop and uvloop support swapping
protocols on a live transport (they restart reading with the new kind).

Everything else the transport reports meanwhile (end of stream, lost
connection, write flow control) is passed on to the connection unchanged.

The reader knows the connection only through a small interface: the
``asyncio.Protocol`` it stands in for (its ``owner``), the transport, the
protocol core it reports reads to, and a function to call once the payload is
complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..protocol.connection import Connection as Core

__all__ = ["PayloadReader"]


class PayloadReader(asyncio.BufferedProtocol):
    """Reads the rest of one large frame into its payload, for a connection.

    Each read is reported to the protocol core at once, which unmasks it in
    place while it is still in the CPU cache. Once the payload is complete the
    reader stays for one more, short read (at most :data:`PEEK` bytes) before it
    hands the transport back: when large frames come back to back, the next
    frame's header arrives with a few bytes of its payload rather than with
    a whole event-loop buffer of it, which would then be copied twice.
    """

    __slots__ = ("_core", "_on_complete", "_owner", "_pos", "_scratch", "_transport", "_view")

    PEEK = 4096

    def __init__(
        self,
        owner: asyncio.Protocol,
        transport: asyncio.Transport,
        core: Core,
        on_complete: Callable[[], None],
    ) -> None:
        """Stand in for ``owner`` on ``transport`` while a payload of ``core`` is read.

        Args:
            owner: the protocol the transport is handed back to; it also gets
                what the transport reports meanwhile.
            transport: the owner's transport.
            core: told of each read (``receive_buffer_updated``).
            on_complete: called once the payload is complete, to handle the
                message and the events behind it.
        """
        self._owner = owner
        self._transport = transport
        self._core = core
        self._on_complete = on_complete
        self._view: memoryview | None = None
        self._pos = 0
        self._scratch: bytearray | None = None

    def swap_in(self) -> bool:
        """Stand in for the owner if the core has a payload to read into.

        Returns:
            False if the transport cannot swap protocols (the owner then stops
            asking: the core copies what arrives into the payload itself); True
            otherwise, also when the core had nothing to read into.
        """
        view = self._core.receive_buffer()
        if view is None:
            return True
        try:
            self._transport.set_protocol(self)
        except NotImplementedError:
            return False
        self._view = view
        self._pos = 0
        return True

    def get_buffer(self, sizehint: int) -> memoryview | bytearray:
        view = self._view
        if view is not None:
            return view[self._pos :]
        scratch = self._scratch
        if scratch is None:
            scratch = self._scratch = bytearray(self.PEEK)
        return scratch

    def buffer_updated(self, nbytes: int) -> None:
        view = self._view
        if view is None:
            # The short read after a payload: the connection takes over again.
            scratch, self._scratch = self._scratch, None
            assert scratch is not None
            owner = self._owner
            self._transport.set_protocol(owner)
            owner.data_received(bytes(scratch[:nbytes]))
            return
        self._pos += nbytes
        self._core.receive_buffer_updated(nbytes)
        if self._pos == len(view):
            self._view = None
            view.release()
            self._on_complete()

    def stop(self) -> None:
        """Hand the transport back to the connection, if it is not back yet."""
        if self._view is not None:
            self._view.release()
            self._view = None
        self._scratch = None
        transport = self._transport
        if transport.get_protocol() is self:
            transport.set_protocol(self._owner)

    def eof_received(self) -> bool | None:
        self.stop()
        return self._owner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop()
        self._owner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._owner.pause_writing()

    def resume_writing(self) -> None:
        self._owner.resume_writing()
