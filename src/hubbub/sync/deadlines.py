"""The timers of a :mod:`hubbub.sync` connection, run by its reader thread.

The reader thread waits for bytes with a selector whose timeout is the
earliest deadline here, so it needs no timer thread: it wakes up, runs what is
due and waits again.
"""

from __future__ import annotations

import time

__all__ = ["Deadlines"]


class Deadlines:
    """When each timer of a connection is due (:func:`time.monotonic`; None: not running)."""

    __slots__ = ("close", "fail", "keepalive", "ping")

    def __init__(self) -> None:
        self.keepalive: float | None = None
        """The next keepalive ping (``ping_interval``)."""
        self.ping: float | None = None
        """The pong of the oldest keepalive ping is overdue (``ping_timeout``)."""
        self.close: float | None = None
        """The closing handshake took too long: drop TCP (``close_timeout``)."""
        self.fail: tuple[float, int, str] | None = None
        """A deferred protocol error: fail with (code, reason) if still unread by then."""

    def earliest(self) -> float | None:
        """The first deadline, or None if no timer runs."""
        earliest = None
        for deadline in (
            self.keepalive,
            self.ping,
            self.close,
            None if self.fail is None else self.fail[0],
        ):
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    def timeout(self) -> float | None:
        """Seconds until the first deadline (0 if due), or None if no timer runs."""
        earliest = self.earliest()
        return None if earliest is None else max(0.0, earliest - time.monotonic())
