"""The asyncio WebSocket client: :func:`connect`.

``connect(uri)`` opens TCP (TLS for ``wss://``), sends the handshake request
and waits for the response within ``open_timeout``. The result is a
:class:`ClientConnection` with the same API as the server's connections.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Generator
from types import TracebackType
from typing import Any, Unpack

from ..adapter import ClientPolicy, redirect_target
from ..exceptions import InvalidMessage, InvalidStatus
from ..options import ClientOptions
from ..protocol.client import ClientConnection as ClientCore
from ..protocol.handshake import WebSocketURI
from ..protocol.http11 import Response
from ..proxy import Proxy, ProxyError, select_proxy
from ..reconnect import RetryPolicy, reconnecting_async
from .connection import Connection

__all__ = ["ClientConnection", "connect"]

logger = logging.getLogger("hubbub.client")


class ClientConnection(Connection):
    """A connection opened by :func:`connect`."""

    protocol: ClientCore

    def __init__(self, protocol: ClientCore, **options: Any) -> None:
        options.setdefault("logger", logger)
        super().__init__(protocol, **options)
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


class ConnectOptions(ClientOptions, total=False):
    """The options of :func:`connect`: the shared ones and asyncio's own."""

    write_limit: int | tuple[int, int]


class connect(ClientPolicy):
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
    ``host``/``port`` overrides, ``sock``, ``proxy`` (a URL such as
    ``"http://user:pw@proxy:3128"`` or ``"socks5h://proxy:1080"``; ``True``,
    the default, reads ``https_proxy``/``http_proxy``/``all_proxy``/``no_proxy``;
    ``None`` for none), ``max_redirects`` (10) and ``retry`` (the
    :class:`~hubbub.reconnect.RetryPolicy` of ``async for ws in connect(uri)``)
    and ``logger`` (``hubbub.client``; see docs/howto/logging.md).

    Raises:
        InvalidURI: ``uri`` is not a WebSocket URI.
        InvalidStatus: the server answered something other than 101.
        RedirectError: too many redirects, or an invalid one.
        ProxyError: the proxy refused the tunnel.
        HandshakeError: any other handshake failure, :class:`HandshakeTimeout`
            included.
        OSError: TCP or TLS could not connect.
    """

    CONNECTION_OPTIONS = frozenset(
        {"max_queue", "write_limit", "ping_interval", "ping_timeout", "logger"}
    )

    def __init__(
        self, uri: str, *, retry: RetryPolicy | None = None, **options: Unpack[ConnectOptions]
    ) -> None:
        super().__init__(uri, **options)
        self.retry = retry
        self.connection: ClientConnection | None = None

    async def _connect(self) -> ClientConnection:
        opened: list[ClientConnection] = []
        uri = self.uri
        try:
            async with asyncio.timeout(self.open_timeout):
                redirects = 0
                while True:
                    try:
                        conn = await self._connect_once(uri, redirects == 0, opened)
                        break
                    except InvalidStatus as exc:
                        # Shared with hubbub.sync: which redirects to follow.
                        target = redirect_target(uri, exc, redirects, self.max_redirects)
                        if target is None:
                            raise
                        logger.info(
                            "redirected (HTTP %d) to %s", exc.response.status, target.origin_url
                        )
                        uri = target
                        redirects += 1
        except TimeoutError:
            for conn in opened:
                conn.abort()
            raise self.open_timeout_error(uri) from None
        conn.start_keepalive()
        conn.log_open()
        self.connection = conn
        return conn

    async def _connect_once(
        self, uri: WebSocketURI, first: bool, opened: list[ClientConnection]
    ) -> ClientConnection:
        """One handshake with ``uri``; the overrides (host, sock, ...) apply to the first."""
        loop = asyncio.get_running_loop()

        def factory() -> ClientConnection:
            return ClientConnection(self.new_core(uri), **self.connection_options)

        kwargs: dict[str, Any] = {}
        ssl = (self.ssl or True) if uri.secure else None
        if ssl:
            kwargs["ssl"] = ssl
            kwargs["server_hostname"] = (self.server_hostname if first else None) or uri.host

        try:
            if first and self.unix_path is not None:
                _, conn = await loop.create_unix_connection(factory, self.unix_path, **kwargs)
            elif first and self.sock is not None:
                _, conn = await loop.create_connection(factory, sock=self.sock, **kwargs)
            else:
                proxy = select_proxy(uri, self.proxy)
                if proxy is not None:
                    logger.debug("connecting to %s through %s", uri.host_header, proxy)
                    sock = await _tunnel(proxy, uri)
                    _, conn = await loop.create_connection(factory, sock=sock, **kwargs)
                else:
                    host = (self.host if first else None) or uri.host
                    port = (self.port if first else None) or uri.port
                    _, conn = await loop.create_connection(factory, host, port, **kwargs)
        except OSError as exc:
            self.explain_tls_failure(uri, exc)
            raise
        opened.append(conn)
        await conn.handshake_done
        core = conn.protocol
        # The server may have sent messages and even closed right behind its 101:
        # success is a checked 101, whatever the state is now.
        if core.handshake_exc is not None or core.response is None:
            conn.abort()
            if core.handshake_exc is not None:
                raise core.handshake_exc
            raise InvalidMessage("connection closed during the opening handshake")
        return conn

    def __aiter__(self) -> AsyncIterator[ClientConnection]:
        """``async for ws in connect(uri)``: reconnect forever (see :mod:`hubbub.reconnect`).

        Each iteration yields a new open connection once the previous one ended;
        failed attempts are retried per ``retry`` (a
        :class:`~hubbub.reconnect.RetryPolicy`; exponential backoff with full
        jitter, transient errors only) and a permanent error is raised.
        """
        return reconnecting_async(
            self._connect, lambda c: c.close(), asyncio.sleep, self.retry or RetryPolicy()
        )

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


async def _tunnel(proxy: Proxy, uri: WebSocketURI) -> socket.socket:
    """Open TCP to ``proxy`` and ask it for a tunnel to ``uri`` (see :mod:`hubbub.proxy`)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        break
    else:
        raise error or OSError(f"cannot resolve proxy {proxy}")
    try:
        handshake = proxy.handshake(uri.host, uri.port)
        while not handshake.done:
            out = handshake.data_to_send()
            if out:
                await loop.sock_sendall(sock, out)
            data = await loop.sock_recv(sock, 65536)
            if not data:
                handshake.receive_eof()
            handshake.receive_data(data)
        if handshake.extra:
            raise ProxyError("the proxy sent data before the tunnel was used")
    except BaseException:
        sock.close()
        raise
    return sock
