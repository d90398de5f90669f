"""The asyncio WebSocket server: :func:`serve`.

Each accepted TCP connection gets a :class:`ServerConnection` (the
``asyncio.Protocol``). When the handshake request is complete, a task runs the
``process_request`` hook, answers the handshake and then the application's
handler; when the handler returns, the connection is closed with 1000, and
with 1011 if it raised. Without hooks the handshake is answered from the read
callback, with no task.

The handler is a coroutine function, or a plain function for callback mode:
``def handler(ws): ws.on_message = ...``. A plain function is called once the
connection is open and needs no Task, coroutine or Future per connection; the
connection stays open when it returns, until either side closes it (1011 if
it raised).

Plain HTTP shares the port: ``process_request`` may return any
:class:`~hubbub.protocol.http11.Response` (see :meth:`ServerConnection.respond`),
and ``GET /healthz`` without an upgrade is answered ``200 OK`` by default.

A refused request (an error status, before or instead of the handshake) is
answered, then the server half-closes and reads on, discarding, until the
client closes or ``LINGER_BYTES`` or ``close_timeout`` run out (RFC 9112
section 9.6): closing at once with unread bytes would send a reset, and a
client still writing its body (a 413) would often lose the answer with it.

Timers: ``open_timeout`` and the keepalive pings (``ping_interval``) of all the
connections run on one timer wheel per server each
(:class:`hubbub.asyncio.wheel.Wheel`), not on a timer handle per connection.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable, Generator, Sequence
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
from ..allocator import HeapTrimmer
from ..exceptions import ConnectionClosed
from ..options import ServerOptions
from ..protocol.connection import State
from ..protocol.frames import CloseCode
from ..protocol.http11 import Request, Response
from ..protocol.server import ServerConnection as ServerCore
from .connection import Connection
from .wheel import Wheel

__all__ = ["Server", "ServerConnection", "serve"]

_DEFAULTS = inspect.signature(Connection).parameters
_DEFAULT_PING_INTERVAL = _DEFAULTS["ping_interval"].default

Handler = Callable[["ServerConnection"], Awaitable[Any] | None]
ProcessRequest = Callable[
    ["ServerConnection", Request], Response | Awaitable[Response | None] | None
]
ProcessResponse = Callable[
    ["ServerConnection", Request, Response], Response | Awaitable[Response | None] | None
]


class ServeOptions(ServerOptions, total=False):
    """The options of :func:`serve`: the shared ones and asyncio's own."""

    write_limit: int | tuple[int, int]
    process_request: ProcessRequest | None
    process_response: ProcessResponse | None


class ServerConnection(Connection):
    """A connection accepted by :func:`serve`; the handler receives it."""

    protocol: ServerCore
    # Its peer is untrusted and a client: stop reading while writes are backed
    # up, whatever the handler style (see hubbub.asyncio.connection).
    _backed_up_stops_reading = True

    def __init__(self, server: Server, protocol: ServerCore, **options: Any) -> None:
        super().__init__(protocol, **options)
        self.server = server
        self.handler_task: asyncio.Task[None] | None = None
        # Keys of this connection's slots in the server's wheels, or None.
        self._open_key: int | None = None
        self._keepalive_key: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._open_key = self.server.add_connection(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.handler_task is None:
            # No request came; the core may have closed on a TLS ClientHello.
            log_refused_handshake(self.logger, self.protocol, self.remote_address, tls_only=True)
        self.server.remove_connection(self)
        self._cancel_open_deadline()
        if self._keepalive_key is not None:
            self.server.cancel_keepalive(self, self._keepalive_key)
            self._keepalive_key = None

    def _cancel_open_deadline(self) -> None:
        if self._open_key is not None:
            self.server.cancel_open_deadline(self, self._open_key)
            self._open_key = None

    def open_timed_out(self) -> None:
        """Drop the connection: its opening handshake took over ``open_timeout``.

        Called by the server's timer wheel (see the module docstring).
        """
        self._open_key = None
        self.abort()

    def start_keepalive(self) -> None:
        """Ping every ``ping_interval`` (see :meth:`Connection.start_keepalive`).

        On the server's keepalive wheel (see the module docstring), unless this
        connection's ``ping_interval`` was changed from the server's.
        """
        interval = self.ping_interval
        if interval is None or interval <= 0:
            return
        key = self.server.add_keepalive(self, interval)
        if key is None:
            super().start_keepalive()
        else:
            self._keepalive_key = key

    def keepalive_due(self) -> None:
        """Send the keepalive ping; called by the server's keepalive wheel."""
        self._keepalive_key = None
        if self._pings.keepalive(self.ping_timeout):
            self.start_keepalive()  # while open: on the wheel again

    def _close_transport(self) -> None:
        transport = self.transport
        if self.protocol.state is not State.CLOSED or not transport.can_write_eof():
            super()._close_transport()
            return
        # A refused request (see the module docstring): half-close after the
        # answer, then read on without keeping anything. It is no longer one
        # of the server's connections; shutting down ends it at once.
        self.server.linger(self)
        transport.write_eof()
        transport.set_protocol(_Linger(self))
        transport.resume_reading()

    def _other_event(self, event: object) -> None:
        if not isinstance(event, Request) or self.handler_task is not None:
            return
        server = self.server
        if server.process_request is not None or server.process_response is not None:
            self.handler_task = self.loop.create_task(self._run(event))
            return
        # No hook to wait for: answer from this read callback, a loop iteration
        # sooner and without coroutines for the handshake; the handler's task
        # starts once the connection is open.
        try:
            response = server.answer(self.protocol, event)
        except Exception:
            response = self._handshake_failed(event)
        if self._respond(response):
            self._start_handler()

    def respond(self, status: int, body: str | bytes, content_type: str | None = None) -> Response:
        """Build a plain HTTP response, for ``process_request`` hooks."""
        return respond(self.protocol, status, body, content_type)

    def _handshake_failed(self, request: Request) -> Response:
        self.logger.exception(
            "error while handling the opening handshake of %s from %s",
            request.path,
            format_address(self.remote_address),
        )
        return self.protocol.reject(500, "Internal Server Error")

    def _respond(self, response: Response) -> bool:
        """Send the handshake response; tell whether the connection is open."""
        if self.transport.is_closing() or self._closing.closed.done():
            return False  # lost, or dropped by open_timeout, while a hook ran
        self.protocol.send_response(response)
        if self.protocol.pending_events:
            # Frames the client sent right behind its request were parsed by
            # send_response(); no data_received() call will announce them.
            self._process_events(self.protocol.events_received())
        self._flush()
        if self.protocol.parsing_paused:
            # ... and may have stopped at the decode limit: the rest follows a
            # step at a time, as after any read.
            self._update_reading()
        self._cancel_open_deadline()
        if self.protocol.state is not State.OPEN:
            if response.status >= 400:
                log_refused_handshake(self.logger, self.protocol, self.remote_address)
            return False
        self.log_open()
        return True

    async def _handshake(self, request: Request) -> Response:
        server = self.server
        response: Response | None = None
        if server.process_request is not None:
            result = server.process_request(self, request)
            response = await result if inspect.isawaitable(result) else result
        if response is None:
            response = server.answer(self.protocol, request)
        if server.process_response is not None:
            changed = server.process_response(self, request, response)
            changed = await changed if inspect.isawaitable(changed) else changed
            if changed is not None:
                response = changed
        return response

    async def _run(self, request: Request) -> None:
        """With hooks: answer the handshake as they say, then serve."""
        try:
            response = await self._handshake(request)
        except Exception:
            response = self._handshake_failed(request)
        opened = self._respond(response)
        # The core keeps the handshake compactly from now on (see
        # hubbub.protocol.server): this frame, which lives as long as the
        # connection, must not hold the objects.
        del request, response
        if opened:
            # The handler's own Task, if it needs one (this one is done).
            self._start_handler()

    def _start_handler(self) -> None:
        """Call the handler of the open connection; a Task only if it returns an awaitable.

        A plain function (callback mode: it sets :attr:`on_message` and
        returns None) needs no Task, coroutine or Future per connection: the
        connection stays open until either side closes it.
        """
        self.start_keepalive()
        try:
            result = self.server.handler(self)
        except Exception:
            self._handler_failed()
            self.start_close(CloseCode.INTERNAL_ERROR, "internal error")
            return
        if result is not None:
            self.handler_task = self.loop.create_task(self._serve(result))

    def _handler_failed(self) -> None:
        self.logger.exception(
            "connection %s handler failed (remote %s)",
            self.id,
            format_address(self.remote_address),
        )

    async def _serve(self, running: Awaitable[Any]) -> None:
        """Wait for the handler of the open connection, then close it."""
        try:
            await running
        except ConnectionClosed:
            pass
        except Exception:
            self._handler_failed()
            await self.close(CloseCode.INTERNAL_ERROR, "internal error")
            return
        await self.close()


def _call_later(delay: float, callback: Callable[[], None]) -> None:
    asyncio.get_running_loop().call_later(delay, callback)


class _Linger(asyncio.Protocol):
    """Discards what a refused client still sends (RFC 9112 section 9.6).

    Ends with the client's end of stream, after ``LINGER_BYTES``, or at the
    connection's close deadline (``close_timeout``), which aborts.
    """

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.left = LINGER_BYTES

    def data_received(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left < 0:
            self.connection.transport.close()

    def eof_received(self) -> bool | None:
        return None  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.connection_lost(exc)


class Server(ServerPolicy):
    """A running WebSocket server, returned by :func:`serve` (options: see there)."""

    CONNECTION_OPTIONS = frozenset({"max_queue", "write_limit", "ping_interval", "ping_timeout"})

    def __init__(
        self,
        handler: Handler,
        *,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        logger: LoggerLike | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.logger: LoggerLike = logger or logging.getLogger("hubbub.server")
        self.connection_options["logger"] = self.logger
        # One (high, low) tuple for all the connections rather than one each,
        # made the way Connection makes it from a single number.
        limit = self.connection_options.get("write_limit", _DEFAULTS["write_limit"].default)
        if isinstance(limit, int):
            self.connection_options["write_limit"] = (limit, limit // 4)
        self.handler = handler
        self.process_request = process_request
        self.process_response = process_response
        self._connections: set[ServerConnection] = set()
        # Refused requests whose client is still sending (see _Linger).
        self._lingering: set[ServerConnection] = set()
        self.heap_trimmer = HeapTrimmer(_call_later)
        """Returns freed memory to the system after mass closes (glibc only;
        see :mod:`hubbub.allocator`). ``heap_trimmer.threshold = None``
        turns it off."""
        self._server: asyncio.Server | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed_event = asyncio.Event()
        # Timers of all the connections (see the module docstring), made when
        # first needed: the event loop runs by then.
        self._opening: Wheel[ServerConnection] | None = None
        self._keepalive: Wheel[ServerConnection] | None = None

    def _open_wheel(self) -> Wheel[ServerConnection] | None:
        if self.open_timeout is None:
            return None
        if self._opening is None:
            self._opening = Wheel(
                asyncio.get_running_loop(), self.open_timeout, ServerConnection.open_timed_out
            )
        return self._opening

    def _keepalive_wheel(self, interval: float) -> Wheel[ServerConnection] | None:
        """The wheel for ``interval``, or None if it is not the server's."""
        if interval != self.connection_options.get("ping_interval", _DEFAULT_PING_INTERVAL):
            return None
        if self._keepalive is None:
            self._keepalive = Wheel(
                asyncio.get_running_loop(), interval, ServerConnection.keepalive_due
            )
        return self._keepalive

    # --- the server's side of its connections (called by ServerConnection) ---

    def add_connection(self, connection: ServerConnection) -> int | None:
        """Count ``connection`` among the server's and arm its ``open_timeout``.

        Returns:
            The key of its open deadline (for :meth:`cancel_open_deadline`),
            or None without ``open_timeout``.
        """
        connections = self._connections
        connections.add(connection)
        self.heap_trimmer.opened(len(connections))
        wheel = self._open_wheel()
        return None if wheel is None else wheel.add(connection)

    def remove_connection(self, connection: ServerConnection) -> None:
        """Forget a connection that is gone (lingering or not)."""
        connections = self._connections
        connections.discard(connection)
        self._lingering.discard(connection)
        self.heap_trimmer.closed(len(connections))

    def linger(self, connection: ServerConnection) -> None:
        """Move a refused connection out of :attr:`connections` while it drains."""
        self._connections.discard(connection)
        self._lingering.add(connection)

    def cancel_open_deadline(self, connection: ServerConnection, key: int) -> None:
        """Disarm the open deadline that :meth:`add_connection` returned."""
        if self._opening is not None:
            self._opening.discard(connection, key)

    def add_keepalive(self, connection: ServerConnection, interval: float) -> int | None:
        """Put ``connection`` on the keepalive wheel of ``interval``.

        Returns:
            Its key there (for :meth:`cancel_keepalive`), or None when
            ``interval`` is not the server's: the connection then keeps its
            own timer.
        """
        wheel = self._keepalive_wheel(interval)
        return None if wheel is None else wheel.add(connection)

    def cancel_keepalive(self, connection: ServerConnection, key: int) -> None:
        """Take ``connection`` off the keepalive wheel."""
        if self._keepalive is not None:
            self._keepalive.discard(connection, key)

    def _make_connection(self) -> ServerConnection:
        return ServerConnection(self, self.new_core(), **self.connection_options)

    @property
    def connections(self) -> set[ServerConnection]:
        """The open connections (including those still in the handshake)."""
        return set(self._connections)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def port(self) -> int:
        """The TCP port of the first listening socket (handy with ``port=0``)."""
        return int(self.sockets[0].getsockname()[1])

    async def start(
        self,
        host: str | Sequence[str] | None,
        port: int | None,
        *,
        unix_path: str | None = None,
        ssl: Any = None,
        backlog: int = 1024,
        reuse_port: bool = False,
        sock: socket.socket | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        # The connection (and its open_timeout) starts after the TLS handshake:
        # bound that handshake too, instead of asyncio's default of 60 s.
        tls: dict[str, Any] = {"ssl": ssl}
        if ssl and self.open_timeout is not None:
            tls["ssl_handshake_timeout"] = self.open_timeout
        if unix_path is not None:
            self._server = await loop.create_unix_server(
                self._make_connection, unix_path, backlog=backlog, **tls
            )
        elif sock is not None:
            self._server = await loop.create_server(
                self._make_connection, sock=sock, backlog=backlog, **tls
            )
        else:
            self._server = await loop.create_server(
                self._make_connection,
                host,
                port or 0,
                backlog=backlog,
                reuse_port=reuse_port,
                **tls,
            )

    def close(self, close_connections: bool = True) -> None:
        """Stop listening and close every connection with 1001 (going away)."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(close_connections))

    async def _close(self, close_connections: bool) -> None:
        try:
            await self._close_all(close_connections)
        finally:
            self._closed_event.set()

    async def _close_all(self, close_connections: bool) -> None:
        if self._server is not None:
            self._server.close()
        for refused in list(self._lingering):
            await refused.close()  # aborts: nothing to wait for
        if close_connections:
            connections = list(self._connections)
            if connections:
                await asyncio.wait(
                    [
                        asyncio.ensure_future(c.close(CloseCode.GOING_AWAY, "server shutting down"))
                        for c in connections
                    ],
                    timeout=self.close_timeout,
                )
            tasks = [c.handler_task for c in connections if c.handler_task is not None]
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=self.close_timeout)
                for task in pending:
                    task.cancel()
                if pending:
                    # wait_closed() means the handlers are over: let the
                    # cancellations run (bounded, for handlers that resist).
                    await asyncio.wait(pending, timeout=self.close_timeout)
        if self._server is not None:
            await self._server.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has finished: connections closed, handlers over.

        May be called before :meth:`close` (asyncio's own ``wait_closed`` would
        return as soon as the last connection is gone, handlers still running).
        """
        await self._closed_event.wait()
        if self._closing is not None:
            await asyncio.shield(self._closing)  # done: re-raises what it raised

    async def serve_forever(self) -> None:
        """Serve until cancelled; then close like :meth:`close`."""
        try:
            await asyncio.Future()
        finally:
            self.close()
            await self.wait_closed()


class serve:
    """Start a WebSocket server on ``host:port`` (or ``unix_path``).

    Use it as ``async with serve(handler, host, port) as server:`` or
    ``server = await serve(...)``. ``handler(connection)`` runs for each
    connection; the connection is closed when it returns. A plain function
    (not ``async``) that returns None is callback mode: it sets
    ``connection.on_message`` and the connection stays open after it returns.

    Options (all keyword-only, safe defaults): ``subprotocols``,
    ``subprotocol_required``, ``select_subprotocol``, ``origins`` (allow-list;
    include ``None`` to allow clients without Origin), ``compression``
    (``"deflate"`` or ``None``), ``extensions``, ``max_size`` (1 MiB),
    ``max_body`` (64 KiB; bodies of plain HTTP requests for ``process_request``),
    ``max_queue`` (16 messages), ``write_limit`` (64 KiB high water mark),
    ``ping_interval``/``ping_timeout`` (20 s), ``open_timeout`` (10 s),
    ``close_timeout`` (10 s), ``ssl``, ``unix_path``, ``extra_headers``,
    ``backlog`` (1024), ``reuse_port``, ``sock``, ``process_request``,
    ``process_response(connection, request, response)`` (returns a
    replacement response or None; may be a coroutine), ``health_check_path``
    (``"/healthz"``), ``server_header``, ``logger`` (``hubbub.server``; see
    docs/howto/logging.md).
    """

    def __init__(
        self,
        handler: Handler,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        unix_path: str | None = None,
        ssl: Any = None,
        backlog: int = 1024,
        reuse_port: bool = False,
        sock: socket.socket | None = None,
        **options: Unpack[ServeOptions],
    ) -> None:
        self.server = Server(handler, **options)
        self._start_args = (host, port)
        self._start_kwargs: dict[str, Any] = dict(
            unix_path=unix_path, ssl=ssl, backlog=backlog, reuse_port=reuse_port, sock=sock
        )

    async def _start(self) -> Server:
        await self.server.start(*self._start_args, **self._start_kwargs)
        return self.server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.close()
        await self.server.wait_closed()
