"""A blocking, thread-per-connection WebSocket server for simple scripts.

::

    def echo(ws):
        for message in ws:
            ws.send(message)

    with hubbub.sync.server.serve(echo, "127.0.0.1", 8765) as server:
        server.serve_forever()

Each accepted TCP connection gets a thread that reads the handshake request
(within ``open_timeout``), answers it through the sans-I/O
:class:`~hubbub.protocol.server.ServerConnection` (with the optional
``process_request`` hook, like the asyncio server) and runs
``handler(connection)``; when the handler returns the connection is closed with
1000, with 1011 if it raised. For many connections, use :mod:`hubbub.asyncio`.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Unpack

from ..adapter import (
    LINGER_BYTES,
    LoggerLike,
    ServerPolicy,
    format_address,
    log_refused_handshake,
    respond,
)
from ..exceptions import ConnectionClosed
from ..options import ServerOptions
from ..protocol import connection as core
from ..protocol.connection import State
from ..protocol.frames import CloseCode
from ..protocol.http11 import Request, Response
from ..protocol.server import ServerConnection as ServerCore
from .connection import Connection

__all__ = ["Server", "ServerConnection", "serve"]

logger = logging.getLogger("hubbub.server")

_READ_SIZE = 65536

Handler = Callable[["ServerConnection"], Any]
ProcessRequest = Callable[["ServerConnection", Request], Response | None]
ProcessResponse = Callable[["ServerConnection", Request, Response], Response | None]


class ServeOptions(ServerOptions, total=False):
    """The options of :func:`serve`: the shared ones, the blocking hooks and ``send_timeout``."""

    process_request: ProcessRequest | None
    process_response: ProcessResponse | None
    send_timeout: float | None


class ServerConnection(Connection):
    """A connection accepted by :func:`serve`; the handler receives it."""

    protocol: ServerCore

    def __init__(
        self, server: Server, sock: socket.socket, protocol: ServerCore, **options: Any
    ) -> None:
        super().__init__(sock, protocol, **options)
        self.server = server

    def respond(self, status: int, body: str | bytes, content_type: str | None = None) -> Response:
        """Build a plain HTTP response, for ``process_request`` hooks."""
        return respond(self.protocol, status, body, content_type)


class Server(ServerPolicy):
    """A running blocking server; see :func:`serve` (options: see there)."""

    CONNECTION_OPTIONS = frozenset({"max_queue", "ping_interval", "ping_timeout", "send_timeout"})

    def __init__(
        self,
        handler: Handler,
        sock: socket.socket,
        *,
        ssl: ssl_module.SSLContext | None = None,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        logger: LoggerLike | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.logger: LoggerLike = logger or logging.getLogger("hubbub.server")
        self.connection_options["logger"] = self.logger
        self.handler = handler
        self.socket = sock
        self.ssl = ssl
        self.process_request = process_request
        self.process_response = process_response
        self._connections: set[ServerConnection] = set()
        self._threads: set[threading.Thread] = set()
        # Sockets still in their opening handshake, by connection thread: a
        # shutdown wakes them up instead of waiting for their open_timeout.
        self._handshaking: dict[threading.Thread, socket.socket] = {}
        self._mutex = threading.Lock()
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._shutdown = threading.Event()
        self._stopped = threading.Event()
        self._serving = threading.Event()

    @property
    def port(self) -> int:
        """The TCP port (handy with ``port=0``)."""
        return int(self.socket.getsockname()[1])

    @property
    def connections(self) -> set[ServerConnection]:
        """The open connections."""
        with self._mutex:
            return set(self._connections)

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown` is called (from another thread)."""
        # A selector, not select(): select() fails for descriptors above 1024.
        self._serving.set()
        selector = selectors.DefaultSelector()
        selector.register(self.socket, selectors.EVENT_READ)
        selector.register(self._wakeup_r, selectors.EVENT_READ)
        try:
            while not self._shutdown.is_set():
                readable = {key.fileobj for key, _ in selector.select()}
                if self._wakeup_r in readable:
                    break
                try:
                    sock, _ = self.socket.accept()
                except OSError:
                    continue
                thread = threading.Thread(
                    target=self._handle, args=(sock,), name="hubbub-server-conn", daemon=True
                )
                with self._mutex:
                    self._threads.add(thread)
                thread.start()
        finally:
            selector.close()
            self._stopped.set()

    def _handle(self, sock: socket.socket) -> None:
        try:
            self._handle_connection(sock)
        except Exception:
            self.logger.exception("connection thread failed")
        finally:
            with self._mutex:
                self._threads.discard(threading.current_thread())

    def _set_handshaking(self, thread: threading.Thread, sock: socket.socket | None) -> None:
        with self._mutex:
            if sock is None:
                self._handshaking.pop(thread, None)
            else:
                self._handshaking[thread] = sock

    def _handshake(self, connection: ServerConnection, request: Request) -> Response:
        response: Response | None = None
        if self.process_request is not None:
            response = self.process_request(connection, request)
        if response is None:
            response = self.answer(connection.protocol, request)
        if self.process_response is not None:
            changed = self.process_response(connection, request, response)
            if changed is not None:
                response = changed
        return response

    def _handle_connection(self, sock: socket.socket) -> None:
        deadline = None if self.open_timeout is None else time.monotonic() + self.open_timeout
        protocol = self.new_core()
        me = threading.current_thread()
        try:
            self._set_handshaking(me, sock)
            if self._shutdown.is_set():
                raise OSError("the server is shutting down")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl is not None:
                sock.settimeout(self.open_timeout)
                sock = self.ssl.wrap_socket(sock, server_side=True)
                self._set_handshaking(me, sock)  # the wrapper took over the descriptor
            events: list[core.Event] = []
            while protocol.request is None and protocol.state is State.CONNECTING:
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    raise TimeoutError
                sock.settimeout(timeout)
                data = sock.recv(_READ_SIZE)
                if not data:
                    protocol.receive_eof()
                    break
                protocol.receive_data(data)
                events.extend(protocol.events_received())
            request = protocol.request
            connection = ServerConnection(self, sock, protocol, **self.connection_options)
            # The core may have refused the request itself (a body over
            # max_body: 413): then its answer is already queued.
            if request is not None and protocol.state is State.CONNECTING:
                try:
                    response = self._handshake(connection, request)
                except Exception:
                    self.logger.exception(
                        "error while handling the opening handshake of %s from %s",
                        request.path,
                        format_address(connection.remote_address),
                    )
                    response = protocol.reject(500, "Internal Server Error")
                protocol.send_response(response)
            sock.settimeout(None)
            sock.sendall(b"".join(protocol.data_to_send()))
        except (OSError, TimeoutError):
            sock.close()
            return
        finally:
            self._set_handshaking(me, None)
        if protocol.state is not State.OPEN:
            log_refused_handshake(self.logger, protocol, connection.remote_address)
            self._linger(sock)
            sock.close()
            return
        connection.log_open()
        with self._mutex:
            self._connections.add(connection)
        try:
            # Frames the client sent right behind its request are in the core.
            connection.start(protocol.events_received())
            try:
                self.handler(connection)
            except ConnectionClosed:
                pass
            except Exception:
                self.logger.exception(
                    "connection %s handler failed (remote %s)",
                    connection.id,
                    format_address(connection.remote_address),
                )
                connection.close(CloseCode.INTERNAL_ERROR, "internal error")
                return
            connection.close()
        finally:
            with self._mutex:
                self._connections.discard(connection)

    def _linger(self, sock: socket.socket) -> None:
        """Half-close after a refusal and discard what the client still sends.

        See :data:`hubbub.adapter.LINGER_BYTES` (RFC 9112 section 9.6).
        """
        if isinstance(sock, ssl_module.SSLSocket):
            return  # no half-close under TLS (see hubbub.sync.connection)
        deadline = time.monotonic() + self.close_timeout
        left = LINGER_BYTES
        try:
            sock.shutdown(socket.SHUT_WR)
            while left > 0 and not self._shutdown.is_set():
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    return
                sock.settimeout(timeout)
                data = sock.recv(_READ_SIZE)
                if not data:
                    return
                left -= len(data)
        except OSError:  # includes the timeout
            return

    def shutdown(self, close_connections: bool = True) -> None:
        """Stop accepting; close open connections with 1001 (going away)."""
        self._shutdown.set()
        with contextlib.suppress(OSError):
            self._wakeup_w.send(b"x")
        if close_connections:
            with self._mutex:
                handshaking = list(self._handshaking.values())
            for sock in handshaking:
                # No WebSocket to close yet: end the TCP connection (its recv()
                # returns at once), rather than wait for open_timeout.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            closers = [
                threading.Thread(
                    target=c.close, args=(CloseCode.GOING_AWAY, "server shutting down")
                )
                for c in self.connections
            ]
            for thread in closers:
                thread.start()
            for thread in closers:
                thread.join(self.close_timeout + 2)
            with self._mutex:
                threads = list(self._threads)
            for thread in threads:
                thread.join(self.close_timeout)

    def close(self) -> None:
        """Shut down (if serving) and release the listening socket."""
        self.shutdown()
        if self._serving.is_set():
            # Closing a descriptor removes it from an epoll set without waking
            # the waiter: let serve_forever() see the wakeup byte first.
            self._stopped.wait(self.close_timeout)
        self.socket.close()
        self._wakeup_r.close()
        self._wakeup_w.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(
    handler: Handler,
    host: str | None = None,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    unix_path: str | None = None,
    ssl: ssl_module.SSLContext | None = None,
    backlog: int = 128,
    **options: Unpack[ServeOptions],
) -> Server:
    """Listen on ``host:port`` (or ``unix_path`` / ``sock``) and return the server.

    Call :meth:`Server.serve_forever` to accept connections (in a thread if the
    caller has other work) and :meth:`Server.shutdown` or :meth:`Server.close`
    to stop. Options are those of :func:`hubbub.asyncio.serve` except the
    asyncio-specific ones: ``subprotocols``, ``subprotocol_required``,
    ``select_subprotocol``, ``origins``, ``compression``, ``extensions``,
    ``max_size``, ``max_queue``, ``ping_interval``, ``ping_timeout``,
    ``open_timeout``, ``close_timeout``, ``extra_headers``,
    ``process_request(connection, request)``,
    ``process_response(connection, request, response)``, ``health_check_path``,
    ``server_header``, ``logger`` (``hubbub.server``; see docs/howto/logging.md),
    and ``send_timeout`` (20 s; ``None`` for none): a write that could not
    write a byte for that long (the peer does not read) fails the connection
    (its TCP connection is dropped and its thread ends; see docs/sync.md).
    """
    if sock is None:
        if unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(unix_path)
            sock.listen(backlog)
        else:
            sock = socket.create_server((host or "", port or 0), backlog=backlog)
    try:
        return Server(handler, sock, ssl=ssl, **options)
    except BaseException:
        sock.close()  # e.g. a misspelt option: do not leak the listening socket
        raise
