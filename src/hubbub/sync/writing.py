"""Writing to a blocking socket for :mod:`hubbub.sync`: one lock, a send timeout.

Every use of the sans-I/O core and every socket write of a connection happens
under :attr:`SocketWriter.lock`, so frames from several sending threads never
interleave on the wire and the core sees one caller at a time.

A write waits for the peer to read: the kernel's send buffer is full when it
does not. The reader thread writes too (pongs, the echo of a close frame, the
keepalive ping), so a peer that pings and never reads would keep that thread
in its write for ever, and with it the keepalive that should end such a
connection. Hence ``send_timeout``: when no byte could be written for that
long, the connection is failed: nothing more is written (a frame may be cut,
so not even a close frame), the core records a 1011 sent, the TCP connection
is dropped and the reader thread finishes.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Callable

from ..adapter import LoggerLike
from ..protocol import connection as core
from ..protocol.frames import CloseCode

__all__ = ["SocketWriter"]

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0) if hasattr(select, "poll") else 0


class SocketWriter:
    """Writes what the core queued to a connection's socket, one caller at a time.

    Args:
        sock: the connected socket; its timeout is to be :attr:`socket_timeout`
            (reads happen only once a selector said the socket is readable).
        protocol: the sans-I/O connection whose :meth:`data_to_send` is written.
        send_timeout: seconds a write may wait for the peer to read anything;
            ``None`` waits for ever.
        on_eof: called (under :attr:`lock`) once the core asked to end the TCP
            connection and the write side was closed: the close timeout starts.
        logger: where a send timeout is logged.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: core.Connection,
        send_timeout: float | None,
        on_eof: Callable[[], None],
        logger: LoggerLike,
    ) -> None:
        self.socket = sock
        self.protocol = protocol
        self.send_timeout = send_timeout
        self.lock = threading.Lock()
        """Held by every use of the core and every socket write."""
        self.buffered = 0
        """Bytes handed to :meth:`flush` and not yet in the kernel."""
        self.shut = False
        """The write side is closed (EOF sent, the peer gone, or a send timeout)."""
        self.timed_out = False
        """The peer read nothing for ``send_timeout``: the connection was failed."""
        self._on_eof = on_eof
        self._logger = logger
        # A plain socket stays blocking and each write says MSG_DONTWAIT, then
        # waits for room with poll() (send_timeout): a socket with a timeout
        # would poll before every recv() and send(), one more system call
        # each. TLS sockets take no flags: they get the timeout.
        self._flags = _DONTWAIT if not isinstance(sock, ssl.SSLSocket) else 0
        self._poll: select.poll | None = None

    def flush(self) -> None:
        """Write what the core queued; the caller holds :attr:`lock`."""
        protocol = self.protocol
        data = protocol.data_to_send()
        if data and not self.shut:
            payload = b"".join(data) if len(data) > 1 else data[0]
            self.buffered += len(payload)
            try:
                self._write(payload)
            except TimeoutError:
                self._fail_timed_out()
            except OSError:
                # The peer is gone; the reader thread will see it too.
                self.shut = True
            finally:
                self.buffered -= len(payload)
        if protocol.eof_sent and not self.shut:
            self.shut = True
            if isinstance(self.socket, ssl.SSLSocket):
                # SSLSocket.shutdown() drops the TLS layer, so reading on after
                # a half-close is impossible: close both ways.
                self.abort()
            else:
                # Half-close: the peer sees the end of the stream, and we
                # keep reading its last bytes (RFC 6455 section 7.1.1).
                with contextlib.suppress(OSError):
                    self.socket.shutdown(socket.SHUT_WR)
            self._on_eof()

    @property
    def socket_timeout(self) -> float | None:
        """The timeout the socket is to have (``socket.settimeout``) while open."""
        return None if self._flags else self.send_timeout

    def _write(self, payload: bytes) -> None:
        # Not sendall(): with a timeout it bounds the whole write, which would
        # fail a large message to a slow but reading peer. Each wait for room
        # lasts at most send_timeout, so the bound is on the peer not reading
        # at all.
        sock = self.socket
        flags = self._flags
        try:
            sent = sock.send(payload, flags)
        except BlockingIOError:
            sent = 0
        if sent == len(payload):
            return
        view = memoryview(payload)
        with view:
            while sent < len(view):
                if flags:
                    self._wait_writable()
                with contextlib.suppress(BlockingIOError):
                    sent += sock.send(view[sent:], flags)

    def _wait_writable(self) -> None:
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self.socket, select.POLLOUT)
        timeout = self.send_timeout
        if not self._poll.poll(None if timeout is None else timeout * 1000):
            raise TimeoutError

    def _fail_timed_out(self) -> None:
        self.shut = True
        self.timed_out = True
        self._logger.info(
            "the peer read nothing for %.1f s (send_timeout): closing the connection",
            self.send_timeout,
        )
        # What was written may end inside a frame: no close frame can follow.
        # The core records that the connection was failed (1011 sent, section
        # 7.1.7) and the TCP connection is dropped (the reader thread sees it).
        if self.protocol.state is not core.State.CLOSED:
            self.protocol.fail(CloseCode.INTERNAL_ERROR, "send timeout")
        self.protocol.data_to_send()
        self.abort()

    def abort(self) -> None:
        """Drop the TCP connection; the reader thread wakes up and finishes."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
