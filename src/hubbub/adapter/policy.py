"""Handshake policies both adapters' servers and clients share, without I/O.

:class:`ServerPolicy` and :class:`ClientPolicy` hold the options of
``serve()`` and ``connect()`` once checked and make a sans-I/O core per
connection; the functions around them choose extensions and TLS contexts,
answer plain HTTP requests and log refused handshakes.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Sequence
from typing import Any

from ..exceptions import (
    HandshakeTimeout,
    UnexpectedTLS,
)
from ..protocol import connection as core
from ..protocol.client import USER_AGENT
from ..protocol.client import ClientConnection as ClientCore
from ..protocol.extensions import ClientExtensionFactory, ServerExtensionFactory
from ..protocol.handshake import WebSocketURI, parse_uri
from ..protocol.http11 import Headers, Request, Response
from ..protocol.server import SERVER_HEADER, SubprotocolSelector
from ..protocol.server import ServerConnection as ServerCore
from ..proxy import Proxy
from .connection import LoggerLike, format_address
from .redirects import DEFAULT_MAX_REDIRECTS

__all__ = [
    "LINGER_BYTES",
    "ClientPolicy",
    "ServerPolicy",
    "client_extension_factories",
    "client_ssl_context",
    "log_refused_handshake",
    "respond",
    "server_extension_factories",
    "server_ssl_context",
]

LINGER_BYTES = 2**22
"""Most bytes a server reads, and discards, after refusing a request.

RFC 9112 section 9.6: a server that closes at once with unread bytes makes
the kernel send a reset, and the client (still writing a body over
``max_body``, say) often loses the answer with it. Both servers half-close
after the answer and read on until the client closes, this many bytes came,
or ``close_timeout`` passed.
"""


def client_extension_factories(
    compression: str | None, extensions: Sequence[ClientExtensionFactory] | None
) -> list[ClientExtensionFactory]:
    """The extensions a client offers: ``extensions`` then ``compression``'s.

    Raises:
        ValueError: ``compression`` is neither ``"deflate"`` nor ``None``
            (checked by :func:`hubbub.protocol.permessage_deflate.deflate_factories`).
    """
    factories = list(extensions or ())
    if compression is not None:
        from ..protocol.permessage_deflate import deflate_factories

        factories.extend(deflate_factories(core.Side.CLIENT, compression))
    return factories


def server_extension_factories(
    compression: str | None, extensions: Sequence[ServerExtensionFactory] | None
) -> list[ServerExtensionFactory]:
    """The extensions a server accepts: ``extensions`` then ``compression``'s."""
    factories = list(extensions or ())
    if compression is not None:
        from ..protocol.permessage_deflate import deflate_factories

        factories.extend(deflate_factories(core.Side.SERVER, compression))
    return factories


def client_ssl_context(
    uri: WebSocketURI, ssl: ssl_module.SSLContext | bool | None
) -> ssl_module.SSLContext | None:
    """The TLS context for ``uri``: ``None`` for ``ws://``, the default one for ``wss://``.

    Raises:
        ValueError: TLS was asked for a ``ws://`` URI.
    """
    if not uri.secure:
        if ssl:
            raise ValueError("ssl given for a ws:// URI; use wss://")
        return None
    if isinstance(ssl, ssl_module.SSLContext):
        return ssl
    return ssl_module.create_default_context()


def server_ssl_context(certfile: str, keyfile: str | None = None) -> ssl_module.SSLContext:
    """A TLS context for a server from PEM files (``hubbub serve/echo --certfile``).

    Args:
        certfile: the certificate chain, server certificate first; it may hold
            the private key too.
        keyfile: the private key, if not in ``certfile``.

    Raises:
        OSError: a file cannot be read.
        ssl.SSLError: the files are not a matching certificate and key.
    """
    context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


def log_refused_handshake(
    logger: LoggerLike, protocol: ServerCore, peer: object, *, tls_only: bool = False
) -> None:
    """Log why a server connection did not open (both adapters).

    A TLS ClientHello on a plain port is a configuration mistake (a ``wss://``
    URL, or a proxy speaking TLS to the backend): WARNING, so that it shows by
    default. Other refusals are the client's business: INFO. ``tls_only`` logs
    only the former.
    """
    exc = protocol.handshake_exc
    if isinstance(exc, UnexpectedTLS):
        logger.warning("connection from %s closed: %s", format_address(peer), exc)
    elif exc is not None and not tls_only:
        logger.info("handshake from %s refused: %s", format_address(peer), exc)


def respond(
    protocol: ServerCore, status: int, body: str | bytes, content_type: str | None = None
) -> Response:
    """A plain HTTP response for ``process_request`` hooks (both adapters)."""
    headers = Headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    return protocol.reject(status, body, headers)


class ServerPolicy:
    """The handshake policy and per-connection options both adapters' servers share.

    The adapter calls :meth:`new_core` for each accepted connection, runs the
    ``process_request`` hook itself (the asyncio one may await it), then
    :meth:`answer` for the default: ``/healthz``, or the handshake checks with
    ``extra_headers`` added to a 101.
    """

    CONNECTION_OPTIONS: frozenset[str] = frozenset()
    """Options the adapter's connection class takes besides ``close_timeout``."""

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] = (),
        subprotocol_required: bool = False,
        select_subprotocol: SubprotocolSelector | None = None,
        origins: Sequence[str | None] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        compression: str | None = "deflate",
        max_size: int | None = core.DEFAULT_MAX_SIZE,
        max_body: int = 65536,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        extra_headers: Headers | Sequence[tuple[str, str]] = (),
        health_check_path: str | None = "/healthz",
        server_header: str | None = SERVER_HEADER,
        **connection_options: Any,
    ) -> None:
        unknown = set(connection_options) - self.CONNECTION_OPTIONS
        if unknown:
            raise TypeError(f"unexpected server options: {', '.join(sorted(unknown))}")
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.health_check_path = health_check_path
        self.extra_headers = (
            extra_headers.items() if isinstance(extra_headers, Headers) else list(extra_headers)
        )
        # Tuples: every connection's core shares them instead of copying them.
        self.core_options: dict[str, Any] = dict(
            subprotocols=tuple(subprotocols),
            subprotocol_required=subprotocol_required,
            select_subprotocol=select_subprotocol,
            origins=None if origins is None else tuple(origins),
            extensions=tuple(server_extension_factories(compression, extensions)),
            max_size=max_size,
            max_body=max_body,
            server_header=server_header,
            # Messages before a peer's protocol error are delivered first.
            defer_failure=True,
        )
        self.connection_options: dict[str, Any] = dict(
            close_timeout=close_timeout, **connection_options
        )

    def new_core(self) -> ServerCore:
        """A sans-I/O server connection with this policy."""
        return ServerCore(**self.core_options)

    def answer(self, protocol: ServerCore, request: Request) -> Response:
        """The response when no ``process_request`` hook answered."""
        if (
            self.health_check_path is not None
            and "Upgrade" not in request.headers  # cheaper than path_only: first
            and request.path_only == self.health_check_path
        ):
            return respond(protocol, 200, "OK")
        response = protocol.accept(request)
        if response.status == 101:
            for name, value in self.extra_headers:
                response.headers[name] = value
        return response


class ClientPolicy:
    """The options both adapters' clients share, checked once when given.

    ``connect()`` in each adapter subclasses it, adds its own connection
    options (:attr:`CONNECTION_OPTIONS`) and opens connections with
    :meth:`new_core`, following redirects and proxies the same way.
    """

    CONNECTION_OPTIONS: frozenset[str] = frozenset()
    """Options the adapter's connection class takes besides ``close_timeout``."""

    def __init__(
        self,
        uri: str,
        *,
        subprotocols: Sequence[str] = (),
        origin: str | None = None,
        additional_headers: Headers | Sequence[tuple[str, str]] | None = None,
        user_agent: str | None = USER_AGENT,
        compression: str | None = "deflate",
        extensions: Sequence[ClientExtensionFactory] | None = None,
        max_size: int | None = core.DEFAULT_MAX_SIZE,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        unix_path: str | None = None,
        host: str | None = None,
        port: int | None = None,
        sock: Any = None,
        proxy: str | Proxy | bool | None = True,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        **connection_options: Any,
    ) -> None:
        unknown = set(connection_options) - self.CONNECTION_OPTIONS
        if unknown:
            raise TypeError(f"unexpected client options: {', '.join(sorted(unknown))}")
        self.uri = parse_uri(uri)
        client_ssl_context(self.uri, ssl)  # TLS asked for a ws:// URI fails now
        self.core_options: dict[str, Any] = dict(
            origin=origin,
            subprotocols=subprotocols,
            extensions=client_extension_factories(compression, extensions),
            additional_headers=additional_headers,
            user_agent=user_agent,
            max_size=max_size,
            # Messages before a peer's protocol error are delivered first.
            defer_failure=True,
        )
        self.connection_options: dict[str, Any] = dict(
            close_timeout=close_timeout, **connection_options
        )
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.unix_path = unix_path
        self.host = host
        self.port = port
        self.sock = sock
        self.proxy = proxy
        self.max_redirects = max_redirects
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout

    def new_core(self, uri: WebSocketURI) -> ClientCore:
        """A sans-I/O client connection to ``uri`` (the first one or a redirect's)."""
        return ClientCore(uri, **self.core_options)

    def open_timeout_error(self, uri: WebSocketURI) -> HandshakeTimeout:
        """The error of a handshake with ``uri`` that did not finish in time."""
        message = (
            f"opening handshake with {uri.host_header} did not finish in {self.open_timeout} s"
        )
        if uri.secure:
            # A plain server that does not recognise the ClientHello waits for
            # an HTTP request that never comes: the likeliest cause of a
            # wss:// timeout (a hubbub server closes at once instead).
            message += (
                "; with wss://, a likely cause is a server that does not speak TLS on "
                "this port (try ws://)"
            )
        return HandshakeTimeout(message)

    @staticmethod
    def explain_tls_failure(uri: WebSocketURI, exc: BaseException) -> None:
        """Add a hint to ``exc`` when the TLS handshake with ``uri`` was cut off."""
        if not uri.secure or isinstance(exc, ssl_module.SSLCertVerificationError):
            return
        if isinstance(exc, (ssl_module.SSLError, ConnectionResetError, BrokenPipeError)):
            # A plain-text server closes (a hubbub server), answers HTTP 400
            # (SSL "wrong version number") or resets when it gets a ClientHello.
            exc.add_note(
                f"the TLS handshake with {uri.host_header} failed: if the server does not "
                "speak TLS on this port, use ws://"
            )
