"""The blocking WebSocket client: :func:`connect` and :func:`reconnect`.

``connect(uri)`` opens TCP (through a proxy if one applies), TLS for
``wss://``, sends the handshake request and reads the response, all within
``open_timeout``; it follows redirects (301, 302, 303, 307, 308) up to
``max_redirects``. The result is a :class:`ClientConnection`, also a context
manager that closes it::

    with hubbub.sync.client.connect("wss://example.com/chat") as ws:
        ws.send("hello")
        print(ws.recv(timeout=5))

:func:`reconnect` yields a new connection each time the previous one ended,
retrying failed attempts with backoff (see :mod:`hubbub.reconnect`).

Options are those of :func:`hubbub.asyncio.connect`; option checks, extension
factories, TLS contexts, proxy selection and redirects come from the shared
modules :mod:`hubbub.adapter` and :mod:`hubbub.proxy`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from typing import Unpack, cast

from ..adapter import ClientPolicy, client_ssl_context, redirect_target
from ..exceptions import InvalidMessage, InvalidStatus
from ..options import ClientOptions
from ..protocol import connection as core
from ..protocol.client import ClientConnection as ClientCore
from ..protocol.handshake import WebSocketURI
from ..protocol.http11 import Response
from ..proxy import Proxy, ProxyError, select_proxy
from ..reconnect import RetryPolicy, reconnecting
from .connection import Connection

__all__ = ["ClientConnection", "ConnectOptions", "connect", "reconnect"]

logger = logging.getLogger("hubbub.client")

_READ_SIZE = 65536


class ConnectOptions(ClientOptions, total=False):
    """The options of :func:`connect`: the shared ones and ``send_timeout``."""

    send_timeout: float | None


class ClientConnection(Connection):
    """A connection opened by :func:`connect`."""

    protocol: ClientCore


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return remaining


def _tunnel(proxy: Proxy, uri: WebSocketURI, deadline: float | None) -> socket.socket:
    """Open TCP to ``proxy`` and ask it for a tunnel to ``uri`` (see :mod:`hubbub.proxy`)."""
    sock = socket.create_connection((proxy.host, proxy.port), _remaining(deadline))
    try:
        handshake = proxy.handshake(uri.host, uri.port)
        while not handshake.done:
            out = handshake.data_to_send()
            if out:
                sock.sendall(out)
            sock.settimeout(_remaining(deadline))
            data = sock.recv(_READ_SIZE)
            if not data:
                handshake.receive_eof()
            handshake.receive_data(data)
        if handshake.extra:
            # The server speaks after our request (and TLS after our hello).
            raise ProxyError("the proxy sent data before the tunnel was used")
    except BaseException:
        sock.close()
        raise
    return sock


class _Opener(ClientPolicy):
    """Options of :func:`connect`, checked once; opens connections."""

    CONNECTION_OPTIONS = frozenset(
        {"max_queue", "ping_interval", "ping_timeout", "send_timeout", "logger"}
    )

    def open(self) -> ClientConnection:
        """Open a connection, following redirects, within ``open_timeout``."""
        deadline = None if self.open_timeout is None else time.monotonic() + self.open_timeout
        uri = self.uri
        redirects = 0
        while True:
            try:
                return self._open_once(uri, deadline, first=redirects == 0)
            except InvalidStatus as exc:
                target = redirect_target(uri, exc, redirects, self.max_redirects)
                if target is None:
                    raise
                logger.info("redirected (HTTP %d) to %s", exc.response.status, target.origin_url)
                uri = target
                redirects += 1
            except TimeoutError:
                raise self.open_timeout_error(uri) from None

    def _open_socket(self, uri: WebSocketURI, deadline: float | None, first: bool) -> socket.socket:
        # host/port/unix_path/sock override where the first URI is reached; a
        # redirect goes where it says.
        if first and self.sock is not None:
            return cast(socket.socket, self.sock)
        if first and self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_remaining(deadline))
                sock.connect(self.unix_path)
            except BaseException:
                sock.close()
                raise
            return sock
        proxy = select_proxy(uri, self.proxy)
        if proxy is not None:
            logger.debug("connecting to %s through %s", uri.host_header, proxy)
            return _tunnel(proxy, uri, deadline)
        host = (self.host if first else None) or uri.host
        port = (self.port if first else None) or uri.port
        try:
            return socket.create_connection((host, port), _remaining(deadline))
        except OSError as exc:
            if exc.errno is None or not exc.strerror or isinstance(exc, TimeoutError):
                raise
            # socket's message names no address ("Connection refused"); the
            # asyncio client's does. Same type and errno, with where it went.
            raise type(exc)(exc.errno, f"{exc.strerror} ({host}:{port})") from exc

    def _open_once(
        self, uri: WebSocketURI, deadline: float | None, first: bool
    ) -> ClientConnection:
        sock = self._open_socket(uri, deadline, first)
        with contextlib.suppress(OSError):  # not for a Unix socket
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            context = client_ssl_context(uri, self.ssl if uri.secure else None)
            if context is not None:
                sock.settimeout(_remaining(deadline))
                try:
                    sock = context.wrap_socket(
                        sock, server_hostname=(self.server_hostname if first else None) or uri.host
                    )
                except OSError as exc:
                    self.explain_tls_failure(uri, exc)
                    raise
            protocol = self.new_core(uri)
            protocol.send_request()
            sock.settimeout(_remaining(deadline))
            sock.sendall(b"".join(protocol.data_to_send()))
            events: list[core.Event] = []
            while protocol.response is None and protocol.handshake_exc is None:
                sock.settimeout(_remaining(deadline))
                data = sock.recv(_READ_SIZE)
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
                events.extend(protocol.events_received())
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
            options = {"logger": logger, **self.connection_options}
            connection = ClientConnection(sock, protocol, **options)
        except BaseException:
            sock.close()
            raise
        if protocol.response is None:  # pragma: no cover - the loop above ensures it
            raise InvalidMessage("connection closed during the opening handshake")
        connection.start([e for e in events if not isinstance(e, Response)])
        connection.log_open()
        return connection


def connect(uri: str, **options: Unpack[ConnectOptions]) -> ClientConnection:
    """Open a WebSocket connection to ``uri`` and return it, open.

    Options (keyword-only, the same as :func:`hubbub.asyncio.connect`):
    ``subprotocols``, ``origin``, ``additional_headers``, ``user_agent``,
    ``compression`` (``"deflate"`` or ``None``), ``extensions``, ``max_size``
    (1 MiB), ``max_queue`` (16), ``ping_interval``/``ping_timeout`` (20 s),
    ``open_timeout`` (10 s, for everything up to the 101), ``close_timeout``
    (10 s), ``ssl`` (an ``SSLContext``; ``wss://`` uses the default one),
    ``server_hostname``, ``unix_path``, ``host``/``port`` overrides, ``sock``,
    ``proxy`` (a URL such as ``"http://user:pw@proxy:3128"`` or
    ``"socks5h://proxy:1080"``; ``True``, the default, reads ``https_proxy`` /
    ``http_proxy`` / ``all_proxy`` / ``no_proxy``; ``None`` for none), and
    ``max_redirects`` (10), ``logger`` (``hubbub.client``; see docs/howto/logging.md),
    and ``send_timeout`` (20 s; ``None`` for none): a write that could not
    write a byte for that long (the server does not read) fails the connection.

    Raises:
        InvalidURI: ``uri`` is not a WebSocket URI.
        InvalidStatus: the server answered something other than 101.
        RedirectError: too many redirects, or an invalid one.
        ProxyError: the proxy refused the tunnel.
        HandshakeError: any other handshake failure, :class:`HandshakeTimeout`
            included.
        OSError: TCP or TLS could not connect.
    """
    return _Opener(uri, **options).open()


def reconnect(
    uri: str, *, retry: RetryPolicy | None = None, **options: Unpack[ConnectOptions]
) -> Iterator[ClientConnection]:
    """Yield connections to ``uri``, a new one each time the previous one ended.

    Failed attempts are retried with exponential backoff and full jitter while
    they are transient; a permanent failure (for example a 403 at the
    handshake) is raised. See :mod:`hubbub.reconnect`. ``options`` are those of
    :func:`connect`.
    """
    opener = _Opener(uri, **options)
    return reconnecting(opener.open, lambda c: c.close(), time.sleep, retry or RetryPolicy())
