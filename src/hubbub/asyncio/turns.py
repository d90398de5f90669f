"""Callbacks that take turns: one per event loop iteration, round robin.

A connection that received a compressed burst inflates it a step at a time
(see "inflating" in :mod:`hubbub.asyncio.connection`). If each connection
scheduled its next step with ``call_soon`` itself, a loop iteration would run
one step of every such connection: four peers sending bursts would take four
steps (each up to a millisecond or more) from every iteration, and a
well-behaved client, whose handshake and echo need a few iterations, would
wait for all of them each time. :class:`Turns` runs one waiting callback per
iteration instead, in the order they came: measured with
``benchmarks/hostile.py --attack deflate-burst``, the well-behaved client's
p99 went from 126 to 40 ms (``hubbub echo``) and from 250 to 86 ms
(``async for``) on a shared 2-CPU machine (docs/security.md).
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import Callable

__all__ = ["Turns", "turns"]


class Turns:
    """Runs the callbacks handed to :meth:`add` one per loop iteration, in order.

    A coroutine waits for a turn with :meth:`wait`: its turn is the loop
    iteration in which its task resumes, the one after the turn was granted,
    so no other turn runs in that one.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: collections.deque[Callable[[], None]] = collections.deque()
        self.scheduled = False
        self._granted = False

    def add(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, when its turn comes."""
        self.waiting.append(callback)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._run)

    async def wait(self) -> None:
        """Wait for a turn (see the class docstring)."""
        turn: asyncio.Future[None] = self.loop.create_future()
        self.add(lambda: self._grant(turn))
        await turn

    def _grant(self, turn: asyncio.Future[None]) -> None:
        if not turn.done():  # else cancelled while it waited: nothing to run
            turn.set_result(None)
            self._granted = True

    def _run(self) -> None:
        self.scheduled = False
        if self._granted:
            # The task granted the last turn resumes in this iteration.
            self._granted = False
        elif self.waiting:
            self.waiting.popleft()()
        if (self.waiting or self._granted) and not self.scheduled:
            # A turn just granted: run once more, in the iteration the task
            # resumes in, to clear the flag there and not in a later one
            # (which would skip the turn of another connection).
            self.scheduled = True
            self.loop.call_soon(self._run)


_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turns] = weakref.WeakKeyDictionary()


def turns(loop: asyncio.AbstractEventLoop) -> Turns:
    """The :class:`Turns` of ``loop`` (one per event loop)."""
    found = _TURNS.get(loop)
    if found is None:
        found = _TURNS[loop] = Turns(loop)
    return found
