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
import os
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Callable

from ..adapter import LoggerLike
from ..protocol import connection as core
from ..protocol.frames import CloseCode

__all__ = ["SocketWriter"]

# The kernel's send timeout, where struct timeval is two longs (Linux, BSD,
# macOS); elsewhere the socket gets a Python timeout.
_KERNEL_TIMEOUT = hasattr(socket, "MSG_DONTWAIT") and sys.platform != "win32"


def _iov_max() -> int:
    try:
        return max(16, os.sysconf("SC_IOV_MAX"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 16  # the POSIX minimum (_XOPEN_IOV_MAX)


_IOV_MAX = _iov_max()
"""The most buffers one sendmsg() takes (1024 on Linux); EMSGSIZE past them."""


class SocketWriter:
    """Writes what the core queued to a connection's socket, one caller at a time.

    Args:
        sock: the connected socket; :meth:`prepare_socket` sets its timeouts
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
        self.on_blocked: Callable[[], None] = lambda: None
        """Called when a write has to wait for room (see hubbub.sync.turns)."""
        # A plain socket stays blocking, with the kernel's send timeout
        # (SO_SNDTIMEO): a socket with a Python timeout would poll() before
        # every recv() and send(), one more system call each, and sendall()
        # with it would bound the whole write. TLS sockets (their records
        # cannot be cut where the kernel stops) get the Python timeout.
        self._kernel_timeout = _KERNEL_TIMEOUT and not isinstance(sock, ssl.SSLSocket)

    def prepare_socket(self) -> None:
        """Set the socket's timeouts for the open connection (reads wait in a selector)."""
        sock = self.socket
        if not self._kernel_timeout:
            sock.settimeout(self.send_timeout)
            return
        sock.settimeout(None)
        timeout = self.send_timeout or 0.0  # 0: no timeout
        seconds = int(timeout)
        timeval = struct.pack("ll", seconds, int((timeout - seconds) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)

    def flush(self) -> None:
        """Write what the core queued; the caller holds :attr:`lock`."""
        protocol = self.protocol
        if not protocol.outgoing and (self.shut or not protocol.eof_sent):
            return  # nothing to write (every read flushes: most have no answer)
        data = protocol.data_to_send()
        if data and not self.shut:
            size = sum(map(len, data)) if len(data) > 1 else len(data[0])
            self.buffered += size
            try:
                self._write(data, size)
            except TimeoutError:
                self._fail_timed_out()
            except OSError:
                # The peer is gone; the reader thread will see it too.
                self.shut = True
            finally:
                self.buffered -= size
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

    def _write(self, data: list[bytes], size: int) -> None:
        sock = self.socket
        if not self._kernel_timeout:
            payload = b"".join(data) if len(data) > 1 else data[0]
            # Each send() waits at most send_timeout for room: the bound is on
            # the peer not reading at all, not on a large message.
            sent = sock.send(payload)
            if sent < len(payload):
                self.on_blocked()
                with memoryview(payload) as view:
                    while sent < len(view):
                        sent += sock.send(view[sent:])
            return
        if len(data) > _IOV_MAX:
            # Many small frames (the pongs of a flood of pings read at once):
            # sendmsg() would fail with EMSGSIZE, taken for a peer gone.
            data = [b"".join(data)]
        try:
            if len(data) == 1:
                sent = sock.send(data[0], socket.MSG_DONTWAIT)
            else:
                # A header and a large payload go out without joining them
                # (a copy of the payload, and for 1 MiB a fresh mapping).
                sent = sock.sendmsg(data, (), socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent == size:
            return
        payload = b"".join(data) if len(data) > 1 else data[0]
        # The peer's receive window is full: it may be waiting for us to read
        # (both sides sending large messages). Let someone read meanwhile.
        self.on_blocked()
        try:
            # The kernel waits for room, at most send_timeout per send() it
            # makes; sendall() goes on after each partial write.
            sock.sendall(memoryview(payload)[sent:])
        except BlockingIOError:
            raise TimeoutError from None  # no byte went out for send_timeout

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
