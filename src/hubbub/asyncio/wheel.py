"""A timer wheel: one event loop timer for the same delay of many connections.

:class:`hubbub.asyncio.server.Server` runs the ``open_timeout`` of its
connections and their keepalive pings (``ping_interval``) on one wheel each,
not on a timer handle per connection: a handle, its context and the event
loop's timer cost a few hundred bytes, and a server holds thousands of idle
connections. A wheel rounds deadlines up to its tick, a sixteenth of the delay.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Wheel"]

logger = logging.getLogger("hubbub.server")

T = TypeVar("T")


class Wheel(Generic[T]):
    """Runs ``callback(item)`` ``delay`` after :meth:`add`, for many items.

    Connections wait in slots, one per tick (``delay / 16``), under a single
    event loop timer armed for the earliest slot; a deadline is rounded up to
    its tick. Every deadline is ``delay`` after the time it was added, so new
    slots come after the existing ones and the timer never needs moving.
    """

    __slots__ = ("_callback", "_delay", "_handle", "_loop", "_slots", "_tick")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        callback: Callable[[T], object],
    ) -> None:
        self._loop = loop
        self._delay = delay
        self._tick = max(delay / 16, 0.001)  # open_timeout=0 is allowed: at once
        self._callback = callback
        self._slots: dict[int, set[T]] = {}
        self._handle: asyncio.TimerHandle | None = None

    def add(self, item: T) -> int:
        """Schedule ``item``; return the key that :meth:`discard` needs."""
        key = math.ceil((self._loop.time() + self._delay) / self._tick)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = set()
        slot.add(item)
        if self._handle is None:  # also while _fire runs: it arms the timer last
            self._handle = self._loop.call_at(key * self._tick, self._fire)
        return key

    def discard(self, item: T, key: int) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            slot.discard(item)  # an empty slot is dropped when it is due

    def _fire(self) -> None:
        # Event loops may round timers (uvloop: to the millisecond): allow that.
        now = self._loop.time() + 0.001
        for key in sorted(k for k in self._slots if k * self._tick <= now):
            for item in self._slots.pop(key):
                try:
                    self._callback(item)
                except Exception:  # one connection must not stop the others' timers
                    logger.exception("error in a connection timer")
        self._handle = None
        if self._slots:
            key = min(self._slots)
            self._handle = self._loop.call_at(key * self._tick, self._fire)
        # With no slot left the timer stops: a closed server leaves none behind.
