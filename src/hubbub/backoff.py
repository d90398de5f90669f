"""Exponential backoff with full jitter, and which failures deserve a retry.

Both clients (:mod:`hubbub.asyncio` and :mod:`hubbub.sync`) reconnect with the
same policy; this module holds its arithmetic and needs no I/O.

Full jitter (the "Exponential Backoff And Jitter" analysis from AWS): the n-th
retry waits a uniformly random time in ``[0, min(max_delay, initial * factor**n)]``.
Randomising the whole interval spreads the clients that a server restart
disconnected all at once, so they do not come back in synchronized waves.

A failure is retried only when trying again may succeed (:func:`is_transient`):
a refused or reset TCP connection, a timeout, a 5xx / 408 / 429 answer, a
connection lost. A 4xx answer to the handshake (403 Forbidden, 404, 401, ...),
an invalid URI, a server that is not a WebSocket server, a failed certificate
check or too many redirects will fail the same way next time: retrying would
only hammer the server, so they are final.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field

from .exceptions import (
    ConnectionClosed,
    HandshakeTimeout,
    InvalidHeader,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)

__all__ = ["TRANSIENT_STATUSES", "Backoff", "is_transient"]

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: timeouts, rate limits, a server or gateway in trouble."""


@dataclass
class Backoff:
    """Delays between attempts: exponential growth, capped, fully jittered.

    Args:
        initial_delay: the cap of the first delay, in seconds.
        factor: growth of the cap from one attempt to the next.
        max_delay: the largest cap, in seconds.
        rng: the random source (a seeded ``random.Random`` makes tests
            reproducible).
    """

    initial_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")

    def cap(self, attempt: int) -> float:
        """The largest delay before retry number ``attempt`` (0 for the first retry)."""
        # Clamp the exponent so that a long outage does not overflow the float.
        exponent = min(attempt, 64)
        return min(self.max_delay, self.initial_delay * self.factor**exponent)

    def delay(self, attempt: int) -> float:
        """A random delay in ``[0, cap(attempt)]`` (full jitter)."""
        return self.rng.uniform(0.0, self.cap(attempt))

    def delays(self) -> Iterator[float]:
        """Endless delays for attempts 0, 1, 2, ..."""
        attempt = 0
        while True:
            yield self.delay(attempt)
            attempt += 1


def is_transient(exc: BaseException) -> bool:
    """Tell whether a connection attempt that failed with ``exc`` may succeed later."""
    if isinstance(exc, InvalidStatus):
        return exc.response.status in TRANSIENT_STATUSES
    if isinstance(exc, (InvalidURI, NegotiationError, InvalidHeader)):
        # Not a WebSocket server, or one that does not speak our subprotocols.
        return False
    transient = getattr(exc, "transient", None)
    if isinstance(transient, bool):
        # Proxy and redirect errors know whether they may go away.
        return transient
    if isinstance(exc, (HandshakeTimeout, InvalidMessage, ConnectionClosed)):
        # A timeout, or a server that closed the TCP connection during the
        # handshake (for example while it restarts), or a lost connection.
        return True
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    return isinstance(exc, (OSError, TimeoutError))
