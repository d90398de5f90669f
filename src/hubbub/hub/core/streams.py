"""Bounded, ordered streams: the history of a channel and the inbox of a user.

Theory of operation
-------------------

A stream is a sequence of entries numbered by *offsets* 1, 2, 3, ... that never
go back and never repeat, together with an *epoch*: a random string chosen when
the stream is created. The pair (epoch, offset) names one entry for as long as
the hub lives. When a stream is lost and created again (the broker restarted
without persistence, or an idle stream was dropped), its epoch changes, and a
client holding an old epoch knows that its offsets mean nothing any more.

Only the newest entries are kept: at most ``max_len`` of them, none older than
``max_age`` seconds by the injected clock. Removing old entries is *trimming*;
:meth:`Stream.read` reports whether everything after the requested offset is
still there (``complete``), which is how recovery tells "here is exactly what
you missed" from "recovery is impossible".

A stream keeps its entries as plain tuples and builds :class:`Entry` objects
when they are read. A hub keeps up to ``max_len`` entries in every channel and
every user's inbox: millions of objects that live long. Python's cyclic
garbage collector stops tracking a plain tuple of strings and numbers (most
payloads), so these no longer make every full collection longer, nor trigger
one as they accumulate; dataclass instances would stay tracked for ever.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Entry", "ReadResult", "Stream", "StreamLimits", "new_epoch"]


def new_epoch() -> str:
    """A fresh random epoch (64 bits, hexadecimal)."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """How much of a stream is kept.

    Attributes:
        max_len: entries kept at most (0 keeps none: offsets still advance, so
            a client that missed nothing still recovers).
        max_age: seconds an entry is kept at most (``None``: no age limit).
    """

    max_len: int = 100
    max_age: float | None = 300.0


# Not frozen, as the commands built for every request (protocol.Send,
# Publish): a frozen dataclass's __init__ sets each field through
# object.__setattr__, four times the cost of a plain one, and an Entry is
# built for every message. Nothing changes an entry once built.
@dataclass(slots=True)
class Entry:
    """One entry of a stream.

    Attributes:
        offset: position in the stream, from 1.
        epoch: epoch of the stream when the entry was added.
        time: when it was added, in seconds since the epoch of the clock.
        data: the payload, any JSON value.
        sender: user id of the publisher, ``None`` for the server.
    """

    offset: int
    epoch: str
    time: float
    data: Any
    sender: str | None


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What :meth:`Stream.read` found.

    Attributes:
        epoch: the stream's epoch.
        offset: the stream's top offset (the last one assigned, 0 if none).
        entries: entries in increasing offset order.
        complete: ``True`` when no entry after the requested offset was trimmed.
    """

    epoch: str
    offset: int
    entries: list[Entry]
    complete: bool


class Stream:
    """A bounded, ordered stream kept in memory.

    Args:
        limits: how much to keep.
        clock: returns the current time in seconds (injected so tests control age).
        epoch: the epoch; a random one by default.
    """

    def __init__(
        self,
        limits: StreamLimits,
        clock: Callable[[], float],
        epoch: str | None = None,
    ) -> None:
        self.limits = limits
        self.epoch = epoch if epoch is not None else new_epoch()
        self.offset = 0
        self.last_time = clock()
        self._clock = clock
        # (offset, epoch, time, data, sender): the fields of Entry, in order.
        self._entries: deque[tuple[int, str, float, Any, str | None]] = deque()

    def __len__(self) -> int:
        self.trim()
        return len(self._entries)

    @property
    def first_offset(self) -> int:
        """Offset of the oldest entry kept; ``offset + 1`` if none is kept."""
        self.trim()
        return self._entries[0][0] if self._entries else self.offset + 1

    def append(self, data: Any, sender: str | None = None) -> Entry:
        """Add an entry at the next offset and trim; return the entry."""
        now = self._clock()
        self.offset += 1
        self.last_time = now
        self._entries.append((self.offset, self.epoch, now, data, sender))
        self.trim(now)  # one clock read per entry: this runs for every message
        return Entry(self.offset, self.epoch, now, data, sender)

    def trim(self, now: float | None = None) -> None:
        """Drop entries beyond ``max_len`` or older than ``max_age`` (at ``now``, or now)."""
        entries = self._entries
        limits = self.limits
        if len(entries) > limits.max_len:
            for _ in range(len(entries) - limits.max_len):
                entries.popleft()
        if limits.max_age is not None:
            oldest = (self._clock() if now is None else now) - limits.max_age
            while entries and entries[0][2] <= oldest:
                entries.popleft()

    def read(self, after: int | None, limit: int) -> ReadResult:
        """Entries after offset ``after``, oldest first, at most ``limit`` of them.

        With ``after=None``, the newest ``limit`` entries. ``complete`` is
        ``False`` when some entry after ``after`` was trimmed, or when ``after``
        is beyond the top offset (the client's offset is not from this stream's
        history, so what it missed cannot be known).
        """
        self.trim()
        entries = self._entries
        if after is None:
            start = max(len(entries) - limit, 0)
            return ReadResult(self.epoch, self.offset, _slice(entries, start, limit), True)
        if after > self.offset:
            return ReadResult(self.epoch, self.offset, [], False)
        first = entries[0][0] if entries else self.offset + 1
        complete = after + 1 >= first
        # Offsets in the deque are consecutive, so the position is arithmetic.
        start = max(after + 1 - first, 0)
        return ReadResult(self.epoch, self.offset, _slice(entries, start, limit), complete)


def _slice(
    entries: deque[tuple[int, str, float, Any, str | None]], start: int, limit: int
) -> list[Entry]:
    stop = min(start + limit, len(entries))
    return [Entry(*entries[i]) for i in range(start, stop)]
