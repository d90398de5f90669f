"""Whose turn it is to read a :mod:`hubbub.sync` connection: the reader thread's or a receiver's.

Handing every message from a reader thread to the thread blocked in ``recv()``
costs two thread wake-ups per message, more than parsing it. So a thread that
calls ``recv()`` on an empty queue reads the socket itself, when it can take
the turn; the reader thread reads only while no application thread does: it
answers pings, runs the keepalive and the closing handshake while the
application is busy elsewhere or never receives.

The reader thread takes the turn back once no application thread took it for
a lease (:data:`LEASE`; while application threads keep taking the turn, or
one holds it without reading anything, an idle connection, the lease doubles
up to :data:`MAX_LEASE` so that the reader threads of busy and of idle
connections do not wake up often), or at once when handed over
(:meth:`ReadingTurn.hand_over`: a thread waits for a pong or for the close).
"""

from __future__ import annotations

import threading

__all__ = ["LEASE", "MAX_LEASE", "ReadingTurn"]

LEASE = 0.05
"""Seconds without a receiving thread after which the reader thread reads again."""

MAX_LEASE = 1.0
"""The longest lease: at most this late, a busy application's connection is read again."""


class ReadingTurn:
    """Who may read the socket and feed the core now: one thread at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        """Held by the thread whose turn it is."""
        self.wanted = False
        """A receiving thread asks the reader thread to leave the turn."""
        self._park = threading.Condition(threading.Lock())
        self._taken = 0  # how often a receiving thread took the turn
        self._handed = False
        self._stopped = False

    # --- a receiving application thread ------------------------------------------------

    def take(self) -> bool:
        """Take the turn for a receiving thread; False if the reader thread has it.

        Then the reader thread is asked to leave it (:attr:`wanted`); the
        caller wakes it up out of its wait for bytes.
        """
        if self.lock.acquire(blocking=False):
            self._taken += 1
            self._handed = False  # receiving again: an earlier hand-over is moot
            return True
        self.wanted = True
        return False

    def held_by_reader(self) -> bool:
        """Whether the turn is taken (by the reader thread, from a receiver's view)."""
        return self.lock.locked()

    def hand_over(self) -> None:
        """Let the reader thread read now, not after a lease: the caller stops receiving."""
        with self._park:
            self._handed = True
            self._park.notify()

    def stop(self) -> None:
        """The connection is closed: the reader thread ends."""
        with self._park:
            self._stopped = True
            self._park.notify()

    # --- the reader thread ---------------------------------------------------------------

    def wait(self, patient: bool) -> bool:
        """Wait for the reader thread's turn; True once taken, False once stopped.

        Args:
            patient: a receiving thread just took the turn: wait a lease before
                taking it back. Otherwise take it as soon as it is free.
        """
        lease = LEASE
        with self._park:
            seen = self._taken
            while not self._stopped:
                if (self._handed or not patient) and self._acquire():
                    return True
                self._park.wait(lease)
                patient = True
                if self._taken == seen and self._acquire():
                    return True  # nobody received for a lease
                # Taken meanwhile (receiving) or still held (a receiver waits
                # for bytes on an idle connection): the application reads for
                # itself, so check less often. Each check wakes this thread
                # up: at a fixed 50 ms, 100 busy connections cost 2,000
                # wake-ups a second.
                lease = min(2 * lease, MAX_LEASE)
                seen = self._taken
        return False

    def _acquire(self) -> bool:
        self.wanted = False
        if self.lock.acquire(blocking=False):
            self._handed = False
            return True
        return False
