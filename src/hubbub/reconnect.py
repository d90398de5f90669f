"""Automatic reconnection for both clients, without I/O.

Usage::

    # asyncio: iterate over connect(); each iteration is a new connection.
    async for ws in hubbub.asyncio.connect(url):
        try:
            async for message in ws:
                ...
        except hubbub.ConnectionClosed:
            continue  # reconnect

    # blocking: the same with hubbub.sync.client.reconnect().
    for ws in hubbub.sync.client.reconnect(url):
        ...

Theory of operation
-------------------

The loop opens a connection and yields it. When the application comes back for
the next one (the connection closed, or the body of the loop ended), the
connection is closed if needed and a new one is opened at once: the previous
one worked, so the first attempt is not delayed. When an attempt fails with a
transient error (:func:`hubbub.backoff.is_transient`), the loop waits the next
:class:`~hubbub.backoff.Backoff` delay and tries again; a permanent error (a
403 at the handshake, an invalid URI, ...) or ``max_attempts`` failures in a
row end the loop by raising that error. ``break`` ends it too.

Every retry is observable: it is logged on the ``hubbub.reconnect`` logger
(WARNING) and passed to ``RetryPolicy.on_retry`` if set. The loops take the
open, close and sleep functions as arguments, so this module stays free of
asyncio, sockets and clocks.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from .backoff import Backoff, is_transient

__all__ = ["Retry", "RetryPolicy", "reconnecting", "reconnecting_async"]

logger = logging.getLogger("hubbub.reconnect")

C = TypeVar("C")


@dataclass(frozen=True)
class Retry:
    """One retry about to happen: passed to ``RetryPolicy.on_retry``."""

    attempt: int
    """1 for the first retry after a failure, 2 for the next, ..."""
    delay: float
    """Seconds until the attempt."""
    error: BaseException
    """Why the previous attempt failed."""


@dataclass
class RetryPolicy:
    """When and how often a client retries.

    Args:
        backoff: the delays (exponential, capped, full jitter).
        max_attempts: failures in a row before giving up; ``None`` for no limit.
        is_transient: which errors are worth a retry.
        on_retry: called with a :class:`Retry` before each wait.
    """

    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int | None = None
    is_transient: Callable[[BaseException], bool] = is_transient
    on_retry: Callable[[Retry], object] | None = None

    def next_delay(self, failures: int, exc: BaseException) -> float:
        """The delay after the ``failures``-th failure in a row, which raised ``exc``.

        Raises:
            BaseException: ``exc`` itself, when it is permanent or the attempts
                are exhausted.
        """
        if not self.is_transient(exc):
            logger.warning("not retrying after a permanent error: %s", exc)
            raise exc
        if self.max_attempts is not None and failures >= self.max_attempts:
            logger.warning("giving up after %d failed attempts: %s", failures, exc)
            raise exc
        delay = self.backoff.delay(failures - 1)
        retry = Retry(failures, delay, exc)
        logger.warning("connection failed (%s); retry %d in %.2f s", exc, failures, delay)
        if self.on_retry is not None:
            self.on_retry(retry)
        return delay


def reconnecting(
    open_: Callable[[], C],
    close: Callable[[C], object],
    sleep: Callable[[float], object],
    policy: RetryPolicy,
) -> Iterator[C]:
    """Yield connections from ``open_`` forever, retrying failures per ``policy``."""
    failures = 0
    while True:
        try:
            connection = open_()
        except Exception as exc:
            failures += 1
            sleep(policy.next_delay(failures, exc))
            continue
        if failures:
            logger.warning("reconnected after %d failed attempts", failures)
        failures = 0
        try:
            yield connection
        finally:
            close(connection)


async def reconnecting_async(
    open_: Callable[[], Awaitable[C]],
    close: Callable[[C], Awaitable[object]],
    sleep: Callable[[float], Awaitable[object]],
    policy: RetryPolicy,
) -> AsyncIterator[C]:
    """The asyncio twin of :func:`reconnecting`."""
    failures = 0
    while True:
        try:
            connection = await open_()
        except Exception as exc:
            failures += 1
            await sleep(policy.next_delay(failures, exc))
            continue
        if failures:
            logger.warning("reconnected after %d failed attempts", failures)
        failures = 0
        try:
            yield connection
        finally:
            await close(connection)
