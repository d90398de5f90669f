"""The asyncio WebSocket client: :func:`connect`.

``connect(uri)`` opens TCP (TLS for ``wss://``), sends the handshake request
and waits for the response within ``open_timeout``. The result is a
:class:`ClientConnection` with the same API as the server's connections.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Generator, Sequence
from types import TracebackType
from typing import Any

from ..exceptions import HandshakeTimeout, InvalidMessage
from ..protocol.client import USER_AGENT
from ..protocol.client import ClientConnection as ClientCore
from ..protocol.connection import DEFAULT_MAX_SIZE
from ..protocol.extensions import ClientExtensionFactory
from ..protocol.handshake import parse_uri
from ..protocol.http11 import Headers, Response
from .connection import Connection

__all__ = ["ClientConnection", "connect"]

logger = logging.getLogger("hubbub.client")


class ClientConnection(Connection):
    """A connection opened by :func:`connect`."""

    protocol: ClientCore

    def __init__(self, protocol: ClientCore, **options: Any) -> None:
        super().__init__(protocol, logger=logger, **options)
        self.handshake_done: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.protocol.send_request()
        self._flush()

    def _other_event(self, event: object) -> None:
        if isinstance(event, Response) and not self.handshake_done.done():
            self.handshake_done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.handshake_done.done():
            self.handshake_done.set_result(None)


class connect:
    """Open a WebSocket connection to ``uri``.

    Use it as ``async with connect(uri) as ws:`` (closed on exit) or
    ``ws = await connect(uri)``.

    Options (keyword-only, safe defaults): ``subprotocols``, ``origin``,
    ``additional_headers``, ``user_agent``, ``compression`` (``"deflate"`` or
    ``None``), ``extensions``, ``max_size`` (1 MiB), ``max_queue`` (16),
    ``write_limit`` (64 KiB), ``ping_interval``/``ping_timeout`` (20 s),
    ``open_timeout`` (10 s), ``close_timeout`` (10 s), ``ssl`` (an
    ``SSLContext``; ``wss://`` uses the default context), ``server_hostname``,
    ``unix_path`` (connect to a Unix socket; the URI still gives Host and path),
    ``host``/``port`` overrides, ``sock``.

    Raises:
        InvalidURI: ``uri`` is not a WebSocket URI.
        InvalidStatus: the server answered something other than 101.
        HandshakeError: any other handshake failure, :class:`HandshakeTimeout`
            included.
        OSError: TCP or TLS could not connect.
    """

    def __init__(
        self,
        uri: str,
        *,
        subprotocols: Sequence[str] = (),
        origin: str | None = None,
        additional_headers: Headers | Sequence[tuple[str, str]] | None = None,
        user_agent: str | None = USER_AGENT,
        compression: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_queue: int = 16,
        write_limit: int | tuple[int, int] = 2**16,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        unix_path: str | None = None,
        host: str | None = None,
        port: int | None = None,
        sock: Any = None,
    ) -> None:
        self.uri = parse_uri(uri)
        if compression not in (None, "deflate"):
            raise ValueError(f"unsupported compression: {compression!r}")
        factories = list(extensions or ())
        if compression == "deflate":
            from ..protocol.permessage_deflate import client_factories

            factories.extend(client_factories())
        self._core_options: dict[str, Any] = dict(
            origin=origin,
            subprotocols=subprotocols,
            extensions=factories,
            additional_headers=additional_headers,
            user_agent=user_agent,
            max_size=max_size,
            defer_failure=True,
        )
        self._connection_options: dict[str, Any] = dict(
            max_queue=max_queue,
            write_limit=write_limit,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
        )
        if ssl is None and self.uri.secure:
            ssl = True
        if ssl and not self.uri.secure:
            raise ValueError("ssl given for a ws:// URI; use wss://")
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.unix_path = unix_path
        self.host = host or self.uri.host
        self.port = port or self.uri.port
        self.sock = sock
        self.open_timeout = open_timeout
        self.connection: ClientConnection | None = None

    async def _connect(self) -> ClientConnection:
        loop = asyncio.get_running_loop()

        def factory() -> ClientConnection:
            return ClientConnection(
                ClientCore(self.uri, **self._core_options), **self._connection_options
            )

        kwargs: dict[str, Any] = {}
        if self.ssl:
            kwargs["ssl"] = self.ssl
            kwargs["server_hostname"] = (
                self.server_hostname
                or (self.uri.host if self.unix_path is None and self.sock is None else None)
                or self.uri.host
            )

        opened: list[ClientConnection] = []

        async def open_() -> ClientConnection:
            if self.unix_path is not None:
                _, conn = await loop.create_unix_connection(factory, self.unix_path, **kwargs)
            elif self.sock is not None:
                _, conn = await loop.create_connection(factory, sock=self.sock, **kwargs)
            else:
                _, conn = await loop.create_connection(factory, self.host, self.port, **kwargs)
            opened.append(conn)
            await conn.handshake_done
            return conn

        try:
            conn = await asyncio.wait_for(open_(), self.open_timeout)
        except TimeoutError:
            for conn in opened:
                conn._abort()
            raise HandshakeTimeout(
                f"opening handshake with {self.uri.host_header} did not finish in "
                f"{self.open_timeout} s"
            ) from None
        core = conn.protocol
        # The server may have sent messages and even closed right behind its 101:
        # success is a checked 101, whatever the state is now.
        if core.handshake_exc is not None or core.response is None:
            conn._abort()
            if core.handshake_exc is not None:
                raise core.handshake_exc
            raise InvalidMessage("connection closed during the opening handshake")
        conn.start_keepalive()
        self.connection = conn
        return conn

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._connect().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self._connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.connection is not None:
            await self.connection.close()
