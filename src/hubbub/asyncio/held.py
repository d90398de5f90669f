"""Writes held until the end of the loop iteration: one flush for every connection.

A server that fans each message out to many connections writes each frame
with a system call of its own (``send(2)``, about 8 to 11 µs on loopback,
more than the rest of a delivery). When several messages for the same
connections arrive in one loop iteration (a batch of publications, several
publishers), :meth:`hubbub.asyncio.Connection.send_frames_soon` queues each
frame in the connection's own output and registers the connection here once;
:class:`HeldWrites` then writes every registered connection's output in one
callback, after the callbacks of this iteration: each connection gets one
write with all of its frames.

One callback per loop for all connections, not one per connection: a
``call_soon`` per connection and message would cost more than the system
calls saved.
"""

from __future__ import annotations

import asyncio
import weakref

from ..speedups import write_chunks as _write_chunks

__all__ = ["HeldWrites", "held_writes"]


class HeldWrites:
    """The connections whose held frames are due at the end of this loop iteration.

    Each is registered once per round as its transport and the core's output
    list (``outgoing``, the adapters' seam: write its chunks, then empty it),
    and written in one callback: the loop over connections runs inline, with
    no Python call per connection but the transport's own ``write``.
    """

    __slots__ = ("due", "loop", "round")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: list[tuple[asyncio.WriteTransport, list[bytes]]] = []
        self.round = 0
        """Counts the flushes run: a writer that registered in an earlier
        round knows, by comparing, that its output was written (no call to tell it)."""

    def add(self, transport: asyncio.WriteTransport, outgoing: list[bytes]) -> None:
        """Write ``outgoing`` to ``transport`` after the callbacks of this iteration."""
        due = self.due
        if not due:
            self.loop.call_soon(self._run)
        due.append((transport, outgoing))

    def _run(self) -> None:
        # A new list and round first: a write may make a protocol hold frames
        # again (they are then due in the next round).
        due, self.due = self.due, []
        self.round += 1
        for transport, out in due:
            # Empty when something wrote it meanwhile: a send(), a pong, a
            # close frame (queued after the held frames, and written with
            # them, by the connection that closes).
            if not out:
                continue
            try:
                if transport.is_closing():
                    out.clear()  # dropped, as the connection's own flush drops them
                else:
                    _write_chunks(out, transport)  # the one drain (empties the list)
            except Exception as exc:  # one connection's failure stays its own
                out.clear()  # the drain keeps what it could not write: dropped here
                self.loop.call_exception_handler(
                    {"message": "writing held frames failed", "exception": exc}
                )


_HELD: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HeldWrites] = (
    weakref.WeakKeyDictionary()
)


def held_writes(loop: asyncio.AbstractEventLoop) -> HeldWrites:
    """The :class:`HeldWrites` of ``loop`` (one per event loop)."""
    found = _HELD.get(loop)
    if found is None:
        found = _HELD[loop] = HeldWrites(loop)
    return found
