"""The asyncio WebSocket server: :func:`serve`.

Each accepted TCP connection gets a :class:`ServerConnection` (the
``asyncio.Protocol``). When the handshake request is complete, a task runs the
``process_request`` hook, answers the handshake and then the application's
handler; when the handler returns, the connection is closed with 1000, and
with 1011 if it raised.

Plain HTTP shares the port: ``process_request`` may return any
:class:`~hubbub.protocol.http11.Response` (see :meth:`ServerConnection.respond`),
and ``GET /healthz`` without an upgrade is answered ``200 OK`` by default.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable, Generator, Sequence
from types import TracebackType
from typing import Any

from ..adapter import server_extension_factories
from ..exceptions import ConnectionClosed
from ..protocol.connection import DEFAULT_MAX_SIZE, State
from ..protocol.extensions import ServerExtensionFactory
from ..protocol.frames import CloseCode
from ..protocol.http11 import Headers, Request, Response
from ..protocol.server import SERVER_HEADER, SubprotocolSelector
from ..protocol.server import ServerConnection as ServerCore
from .connection import Connection

__all__ = ["Server", "ServerConnection", "serve"]

logger = logging.getLogger("hubbub.server")

Handler = Callable[["ServerConnection"], Awaitable[Any]]
ProcessRequest = Callable[
    ["ServerConnection", Request], Response | Awaitable[Response | None] | None
]


class ServerConnection(Connection):
    """A connection accepted by :func:`serve`; the handler receives it."""

    protocol: ServerCore

    def __init__(self, server: Server, protocol: ServerCore, **options: Any) -> None:
        super().__init__(protocol, logger=logger, **options)
        self.server = server
        self.handler_task: asyncio.Task[None] | None = None
        self._open_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server._connections.add(self)
        if self.server.open_timeout is not None:
            self._open_deadline = self.loop.call_later(self.server.open_timeout, self._abort)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server._connections.discard(self)
        if self._open_deadline is not None:
            self._open_deadline.cancel()

    def _other_event(self, event: object) -> None:
        if isinstance(event, Request) and self.handler_task is None:
            self.handler_task = self.loop.create_task(self._run(event))

    def respond(self, status: int, body: str | bytes, content_type: str | None = None) -> Response:
        """Build a plain HTTP response, for ``process_request`` hooks."""
        headers = Headers()
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.protocol.reject(status, body, headers)

    async def _handshake(self, request: Request) -> Response:
        server = self.server
        response: Response | None = None
        if server.process_request is not None:
            result = server.process_request(self, request)
            response = await result if inspect.isawaitable(result) else result
        if (
            response is None
            and server.health_check_path is not None
            and request.path_only == server.health_check_path
            and "Upgrade" not in request.headers
        ):
            response = self.respond(200, "OK")
        if response is None:
            response = self.protocol.accept(request)
            if response.status == 101:
                for name, value in server.extra_headers:
                    response.headers[name] = value
        return response

    async def _run(self, request: Request) -> None:
        try:
            response = await self._handshake(request)
        except Exception:
            logger.exception("error while handling the opening handshake")
            response = self.protocol.reject(500, "Internal Server Error")
        if self.transport.is_closing() or self._closed.done():
            return  # lost, or dropped by open_timeout, while the hook ran
        self.protocol.send_response(response)
        if self.protocol._events:
            # Frames the client sent right behind its request were parsed by
            # send_response(); no data_received() call will announce them.
            self._process_events(self.protocol.events_received())
        self._flush()
        if self._open_deadline is not None:
            self._open_deadline.cancel()
        if self.protocol.state is not State.OPEN:
            if self.protocol.handshake_exc is not None and response.status >= 400:
                logger.info("handshake refused: %s", self.protocol.handshake_exc)
            return
        self.start_keepalive()
        try:
            await self.server.handler(self)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("connection handler failed")
            await self.close(CloseCode.INTERNAL_ERROR, "internal error")
            return
        await self.close()


class Server:
    """A running WebSocket server, returned by :func:`serve`."""

    def __init__(
        self,
        handler: Handler,
        *,
        subprotocols: Sequence[str] = (),
        subprotocol_required: bool = False,
        select_subprotocol: SubprotocolSelector | None = None,
        origins: Sequence[str | None] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        compression: str | None = "deflate",
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_body: int = 65536,
        max_queue: int = 16,
        write_limit: int | tuple[int, int] = 2**16,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        extra_headers: Headers | Sequence[tuple[str, str]] = (),
        process_request: ProcessRequest | None = None,
        health_check_path: str | None = "/healthz",
        server_header: str | None = SERVER_HEADER,
    ) -> None:
        self.handler = handler
        self.process_request = process_request
        self.health_check_path = health_check_path
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.extra_headers = (
            extra_headers.items() if isinstance(extra_headers, Headers) else list(extra_headers)
        )
        # Shared with hubbub.sync (hubbub.adapter): option checks and factories.
        factories = server_extension_factories(compression, extensions)
        self._core_options: dict[str, Any] = dict(
            subprotocols=subprotocols,
            subprotocol_required=subprotocol_required,
            select_subprotocol=select_subprotocol,
            origins=origins,
            extensions=factories,
            max_size=max_size,
            max_body=max_body,
            server_header=server_header,
            defer_failure=True,
        )
        self._connection_options: dict[str, Any] = dict(
            max_queue=max_queue,
            write_limit=write_limit,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
        )
        self._connections: set[ServerConnection] = set()
        self._server: asyncio.Server | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed_event = asyncio.Event()

    def _make_connection(self) -> ServerConnection:
        return ServerConnection(self, ServerCore(**self._core_options), **self._connection_options)

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
    connection; the connection is closed when it returns.

    Options (all keyword-only, safe defaults): ``subprotocols``,
    ``subprotocol_required``, ``select_subprotocol``, ``origins`` (allow-list;
    include ``None`` to allow clients without Origin), ``compression``
    (``"deflate"`` or ``None``), ``extensions``, ``max_size`` (1 MiB),
    ``max_body`` (64 KiB; bodies of plain HTTP requests for ``process_request``),
    ``max_queue`` (16 messages), ``write_limit`` (64 KiB high water mark),
    ``ping_interval``/``ping_timeout`` (20 s), ``open_timeout`` (10 s),
    ``close_timeout`` (10 s), ``ssl``, ``unix_path``, ``extra_headers``,
    ``backlog`` (1024), ``reuse_port``, ``sock``, ``process_request``,
    ``health_check_path`` (``"/healthz"``), ``server_header``.
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
        **options: Any,
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
