"""Giving freed heap memory back to the system after mass closes (glibc only).

Theory of operation
-------------------

A server that held 10,000 connections and saw them all close has freed their
memory, but glibc's allocator keeps most of it: the pages freed in the middle
of the heap, and the top of the heap while the trim threshold allows it
(``hubbub echo`` raises that threshold on purpose, see ``cli.py``). Measured
on issue 12: RSS 38 MiB -> 97 MiB after one flood of 10,000 connections, still
97 MiB once they were all gone.

Two things hold it. First, reference cycles: a closed connection's objects
(its handler's task, futures, a ConnectionClosed exception and its traceback)
often wait for the cyclic garbage collector, whose full collections are rare
in a server (``hubbub echo`` makes them rarer still); measured: 90 MiB -> 61
MiB after ``gc.collect()``. Then the allocator: ``malloc_trim(0)`` returns the
free pages of every arena to the system (``madvise``): 61 MiB -> 46 MiB.

:class:`HeapTrimmer` decides when: once the number of open connections has
dropped by ``threshold`` or more and to at most half of its peak since the
last trim, one trim (a full ``gc.collect()``, then ``malloc_trim(0)``) is
scheduled ``delay`` seconds later, so that a mass close (which takes a while)
is trimmed once, at its end. A trim costs a few tens of milliseconds for a
heap of a hundred MiB, once per mass close; it never runs more than once per
``delay``. Elsewhere than glibc (musl, macOS, Windows) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import platform
import sys
from collections.abc import Callable

__all__ = ["DEFAULT_TRIM_THRESHOLD", "HeapTrimmer", "malloc_trim"]

DEFAULT_TRIM_THRESHOLD = 1000
"""Connections that must have closed (from the peak) before the heap is trimmed."""


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(Exception):
        if platform.libc_ver()[0] != "glibc":
            return None
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
        return trim
    return None


_MALLOC_TRIM = _load_malloc_trim()


def malloc_trim() -> bool:
    """Return free heap memory to the system now; tell whether anything was returned.

    ``False`` also when the C library is not glibc (nothing to call).
    """
    return _MALLOC_TRIM is not None and bool(_MALLOC_TRIM(0))


class HeapTrimmer:
    """Trims the heap after the number of open connections dropped sharply.

    Args:
        schedule: ``schedule(delay, callback)`` runs ``callback`` later, e.g.
            ``loop.call_later``.
        threshold: closes from the peak before a trim; ``None`` disables it.
        delay: seconds between the sharp drop and the trim.
    """

    def __init__(
        self,
        schedule: Callable[[float, Callable[[], None]], object],
        threshold: int | None = DEFAULT_TRIM_THRESHOLD,
        delay: float = 1.0,
    ) -> None:
        self.schedule = schedule
        self.threshold = threshold if _MALLOC_TRIM is not None else None
        self.delay = delay
        self.trims = 0
        """How many times the heap was trimmed (for tests and metrics)."""
        self._peak = 0
        self._count = 0
        self._scheduled = False

    def opened(self, count: int) -> None:
        """A connection opened; ``count`` are open now."""
        self._count = count
        self._peak = max(self._peak, count)

    def closed(self, count: int) -> None:
        """A connection closed; ``count`` are open now."""
        self._count = count
        threshold = self.threshold
        if (
            threshold is None
            or self._scheduled
            or self._peak - count < threshold
            or count > self._peak // 2
        ):
            return
        self._scheduled = True
        self.schedule(self.delay, self._trim)

    def _trim(self) -> None:
        self._scheduled = False
        self._peak = self._count
        gc.collect()  # the closed connections' cycles first (see the module docstring)
        malloc_trim()
        self.trims += 1
