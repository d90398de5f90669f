"""When a :mod:`hubbub.sync` connection's socket has bytes: a selector, a wakeup pair, a guess.

The thread that reads (see :mod:`hubbub.sync.turns`) waits for bytes in a
selector, together with a socket pair that other threads write to when they
change a deadline (``close()`` starts the close timeout), and for at most the
time until the reader's next timer. Not ``select()``: it fails on descriptors
above ``FD_SETSIZE`` (1024), which a busy process reaches; ``poll()`` where
there is one (one C call, where a :mod:`selectors` selector adds a Python
layer around the same system call on every read), else a selector.

Waiting costs a system call (``epoll_wait``) per read, and a read that fills
the whole buffer it was given usually leaves more bytes in the kernel (a
stream of messages, a large one arriving). Then the next read does not wait:
it asks the kernel without blocking (``MSG_DONTWAIT``, the socket itself stays
blocking: see :mod:`hubbub.sync.writing`) and waits in the selector only if
nothing is there. A read that returns less than it asked for drained the
socket: the next one waits first, as a request/response exchange always does.
"""

from __future__ import annotations

import contextlib
import select
import selectors
import socket
import ssl

__all__ = ["Readiness"]

# Not on Windows; there every read waits in the selector first.
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)


class Readiness:
    """Tells the reading thread when to read one connection's socket.

    Args:
        sock: the connection's socket, open and set up for writing (its
            timeout decides whether a read may skip the wait: only a plain
            blocking socket takes ``MSG_DONTWAIT``; a TLS socket takes no
            flags, and a socket with a Python timeout polls before it reads).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.flags = (
            _DONTWAIT if sock.gettimeout() is None and not isinstance(sock, ssl.SSLSocket) else 0
        )
        """Flags of a read made without waiting first (0: never made)."""
        self.likely = False
        """The last read filled its buffer: the next one is made without waiting first."""
        self._wakeup = socket.socketpair()
        self._fd = sock.fileno()
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._selector: selectors.BaseSelector | None = None
        if self._poll is not None:
            self._poll.register(self._fd, select.POLLIN)
            self._poll.register(self._wakeup[0], select.POLLIN)
        else:  # pragma: no cover - Windows
            self._selector = selectors.DefaultSelector()
            self._selector.register(sock, selectors.EVENT_READ)
            self._selector.register(self._wakeup[0], selectors.EVENT_READ)

    def read_size(self, got: int, asked: int) -> None:
        """A read gave ``got`` bytes of the ``asked``: guess whether more are waiting."""
        self.likely = 0 < got == asked and self.flags != 0

    def wait(self, timeout: float | None) -> bool:
        """Wait for bytes, a :meth:`wake` or ``timeout`` seconds; True if readable."""
        pending = getattr(self.socket, "pending", None)
        if pending is not None and pending():
            return True  # TLS already decrypted bytes the selector cannot see
        wakeup = self._wakeup[0]
        if self._poll is not None:
            # Milliseconds, rounded up: a timer is not run before it is due.
            ready = self._poll.poll(None if timeout is None else max(0, -int(-timeout * 1000)))
            fds = {fd for fd, _ in ready}
            readable, woken = self._fd in fds, wakeup.fileno() in fds
        else:  # pragma: no cover - Windows
            assert self._selector is not None
            objs = {key.fileobj for key, _ in self._selector.select(timeout)}
            readable, woken = self.socket in objs, wakeup in objs
        if woken:
            with contextlib.suppress(OSError):
                wakeup.recv(64)
        return readable

    def wake(self) -> None:
        """Wake the reading thread out of :meth:`wait` (from any thread)."""
        with contextlib.suppress(OSError):
            self._wakeup[1].send(b"\0")

    def close(self) -> None:
        """Close the selector and the wakeup pair (not the connection's socket)."""
        if self._selector is not None:  # pragma: no cover - Windows
            self._selector.close()
        for sock in self._wakeup:
            with contextlib.suppress(OSError):
                sock.close()
