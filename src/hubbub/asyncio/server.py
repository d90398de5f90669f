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

from ..adapter import ServerPolicy, respond
from ..exceptions import ConnectionClosed
from ..protocol.connection import State
from ..protocol.frames import CloseCode
from ..protocol.http11 import Request, Response
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
        return respond(self.protocol, status, body, content_type)

    async def _handshake(self, request: Request) -> Response:
        server = self.server
        if server.process_request is not None:
            result = server.process_request(self, request)
            response = await result if inspect.isawaitable(result) else result
            if response is not None:
                return response
        return server.answer(self.protocol, request)

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


class Server(ServerPolicy):
    """A running WebSocket server, returned by :func:`serve` (options: see there)."""

    CONNECTION_OPTIONS = frozenset({"max_queue", "write_limit", "ping_interval", "ping_timeout"})

    def __init__(
        self, handler: Handler, *, process_request: ProcessRequest | None = None, **options: Any
    ) -> None:
        super().__init__(**options)
        self.handler = handler
        self.process_request = process_request
        self._connections: set[ServerConnection] = set()
        self._server: asyncio.Server | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed_event = asyncio.Event()

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
