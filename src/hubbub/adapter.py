"""Logic that the asyncio and blocking adapters share, without I/O.

:mod:`hubbub.protocol` is the sans-I/O WebSocket core; this module holds the
next layer up, the decisions an adapter makes around the core that do not
depend on how bytes move: which exception tells the application how a
connection closed, how pings are matched with pongs, which extensions and TLS
context a client uses, where a redirect leads. :mod:`hubbub.asyncio` and
:mod:`hubbub.sync` both import it, so the two worlds cannot drift apart.
"""

from __future__ import annotations

import codecs
import logging
import os
import ssl as ssl_module
import uuid
from collections.abc import Callable, Sequence, Sized
from types import MappingProxyType
from typing import Any, Generic, TypeAlias, TypeVar, cast
from urllib.parse import urljoin, urlsplit, urlunsplit

from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    HandshakeTimeout,
    InvalidStatus,
    InvalidURI,
    RedirectError,
    RemoteProtocolError,
    UnexpectedTLS,
)
from .protocol import connection as core
from .protocol.client import USER_AGENT
from .protocol.client import ClientConnection as ClientCore
from .protocol.events import Fragment
from .protocol.extensions import ClientExtensionFactory, ServerExtensionFactory
from .protocol.frames import CloseCode, Opcode
from .protocol.handshake import WebSocketURI, parse_uri
from .protocol.http11 import Headers, Request, Response
from .protocol.server import SERVER_HEADER, SubprotocolSelector
from .protocol.server import ServerConnection as ServerCore
from .proxy import Proxy

__all__ = [
    "DEFAULT_MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "Data",
    "FragmentStream",
    "LoggerLike",
    "PingTracker",
    "RedirectError",
    "client_extension_factories",
    "client_ssl_context",
    "closed_exception",
    "format_address",
    "fragment_converter",
    "join_fragments",
    "log_refused_handshake",
    "redirect_target",
    "server_extension_factories",
    "server_ssl_context",
]

Data = str | bytes
"""A WebSocket message: ``str`` for text, ``bytes`` for binary (both adapters)."""

DECODE_STEP = 2**18
"""Bytes of compressed messages inflated per parsing step (``decode_limit``).

Both adapters set it on the core (unless the core has a limit of its own):
one step decodes at most this much plus one frame (at most ``max_size``), so a
burst of compressed frames is inflated a step at a time, only while the
message queue has room, and (asyncio) never for long in one callback of the
event loop.
"""

LINGER_BYTES = 2**22
"""Most bytes a server reads, and discards, after refusing a request.

RFC 9112 section 9.6: a server that closes at once with unread bytes makes
the kernel send a reset, and the client (still writing a body over
``max_body``, say) often loses the answer with it. Both servers half-close
after the answer and read on until the client closes, this many bytes came,
or ``close_timeout`` passed.
"""

_OK_CODES = frozenset({CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD})


def closed_exception(protocol: core.Connection) -> ConnectionClosed:
    """The exception that tells the application how ``protocol`` closed.

    :class:`ConnectionClosedOK` when close frames with 1000, 1001 or no code
    (1005) were exchanged both ways (section 7.1.5); otherwise
    :class:`ConnectionClosedError`, chained to the protocol error if the peer
    broke the protocol.
    """
    received = protocol.close_received
    sent = protocol.close_sent
    code = protocol.close_code or CloseCode.ABNORMAL_CLOSURE
    sent_code = sent.code if sent is not None else None
    if received is not None and received.code in _OK_CODES and sent_code in _OK_CODES:
        return ConnectionClosedOK(code, protocol.close_reason, sent_code)
    exc = ConnectionClosedError(code, protocol.close_reason, sent_code)
    if protocol.close_exc is not None:
        exc.__cause__ = protocol.close_exc
    return exc


W = TypeVar("W")
_NO_PINGS: Any = MappingProxyType({})


class FailurePending:
    """Stands in a receive queue where the peer broke the protocol.

    The core's ``Failure`` event (``defer_failure=True``) becomes this entry;
    the adapter fails the connection when the application reaches it.
    """

    __slots__ = ("exc",)

    def __init__(self, exc: RemoteProtocolError) -> None:
        self.exc = exc


class Fragmenter:
    """Frames of a message sent from an iterable (RFC 6455 section 5.4).

    Each item becomes a frame once the next one is known, so the last frame
    carries FIN and no empty frame trails. Items are ``str`` (a text message)
    or bytes-like (binary), never both. :meth:`push` and :meth:`finish` return
    ``(opcode, data, fin)`` for the adapter to send, or None.
    """

    __slots__ = ("_opcode", "_pending", "_started")

    def __init__(self) -> None:
        self._opcode = 0
        self._pending: bytes | None = None
        self._started = False

    def push(self, item: object) -> tuple[int, bytes, bool] | None:
        """Take the next item; return the frame of the previous one, if any.

        Raises:
            TypeError: the item is neither str nor bytes-like, or its type
                differs from the first item's.
        """
        if isinstance(item, str):
            opcode, data = Opcode.TEXT, item.encode()
        elif isinstance(item, (bytes, bytearray, memoryview)):
            opcode, data = Opcode.BINARY, bytes(item)
        else:
            raise TypeError(f"cannot send {type(item).__name__} in a fragmented message")
        if not self._opcode:
            self._opcode = opcode
        elif opcode != self._opcode:
            raise TypeError("a fragmented message mixes text and binary")
        previous, self._pending = self._pending, data
        return None if previous is None else self._frame(previous, False)

    def finish(self) -> tuple[int, bytes, bool] | None:
        """The last frame, with FIN; None if the iterable was empty."""
        pending, self._pending = self._pending, None
        return None if pending is None else self._frame(pending, True)

    def _frame(self, data: bytes, fin: bool) -> tuple[int, bytes, bool]:
        opcode = Opcode.CONTINUATION if self._started else self._opcode
        self._started = True
        return opcode, data, fin


LoggerLike: TypeAlias = "logging.Logger | logging.LoggerAdapter[Any]"
"""What the ``logger=`` options take: a logger or an adapter that adds context."""


def decoded(message: str | bytes, decode: bool | None) -> str | bytes:
    """``message`` as ``recv(decode=...)`` returns it (both adapters).

    ``None`` keeps the frame's type (text as ``str``, binary as ``bytes``);
    ``False`` gives ``bytes`` for a text message too (its UTF-8, as received);
    ``True`` decodes a binary message as UTF-8.

    Raises:
        UnicodeDecodeError: ``decode=True`` and a binary message that is not UTF-8.
    """
    if decode is None or isinstance(message, str) is decode:
        return message
    if isinstance(message, str):
        return message.encode()
    return message.decode()


class FragmentStream:
    """The bookkeeping of ``recv_streaming()`` (section 5.4), shared by both adapters.

    A connection makes one when it first streams a message. While the frames
    of a message are streamed, the core reports them as
    :class:`~hubbub.protocol.events.Fragment` entries of the receive queue;
    ``recv()`` joins such entries into the message. If the application stops
    iterating before the last fragment, the next receive (:meth:`abandon`)
    discards the rest of that message, and the abandoned iterator raises
    :class:`ConcurrencyError` if it is resumed (its ``token`` is stale).
    """

    __slots__ = ("rest", "skip", "token")

    def __init__(self) -> None:
        self.rest = False
        """A fragment other than the last was handed out: the rest is unread."""
        self.skip = False
        self.token = 0

    def begin(self) -> int:
        """A stream starts: abandon the rest of the previous one; return this one's token."""
        self.abandon()
        return self.token

    def hand_out(
        self, fragment: Fragment, convert: Callable[[str | bytes, bool], str | bytes]
    ) -> str | bytes:
        """The fragment's data for the application, which owns the rest of the message now."""
        self.rest = not fragment.fin
        return convert(fragment.data, fragment.fin)

    def resume(self, token: int) -> None:
        """The stream with ``token`` asks for its next fragment.

        Raises:
            ConcurrencyError: another receive discarded the rest meanwhile.
        """
        if self.token != token:
            raise ConcurrencyError("another receive took over: the rest was discarded")
        self.rest = False

    def abandon(self) -> None:
        """A receive starts: the rest of a message whose stream was left is discarded."""
        if self.rest:
            self.rest = False
            self.skip = True
            self.token += 1

    def skipped(self, item: object) -> bool:
        """Whether ``item`` belongs to an abandoned message and is to be dropped."""
        if self.skip and type(item) is Fragment:
            if item.fin:
                self.skip = False
            return True
        self.skip = False
        return False


def join_fragments(parts: list[str | bytes]) -> str | bytes:
    """The message whose fragments' data are ``parts`` (all ``str`` or all ``bytes``)."""
    if isinstance(parts[0], str):
        return "".join(cast(list[str], parts))
    return b"".join(cast(list[bytes], parts))


def fragment_converter(decode: bool | None) -> Callable[[str | bytes, bool], str | bytes]:
    """``convert(data, fin)`` for the fragments of one message, as ``recv_streaming(decode)``.

    With ``decode=True`` a binary message is decoded across its fragments, so a
    character may be cut between frames.
    """
    if decode is None:
        return lambda data, fin: data
    if decode is False:
        return lambda data, fin: data.encode() if isinstance(data, str) else data
    decoder = codecs.getincrementaldecoder("utf-8")()
    return lambda data, fin: data if isinstance(data, str) else decoder.decode(data, fin)


class ConnectionAttributes:
    """Attributes both adapters' connections read off the sans-I/O core."""

    __slots__ = ()
    protocol: core.Connection
    logger: LoggerLike
    remote_address: Any
    # Made on first use (a log line, the application): an idle connection of
    # a busy server does not pay the 100 bytes of a UUID it never shows.
    _id: uuid.UUID | None = None

    @property
    def id(self) -> uuid.UUID:
        """A random identifier (UUID version 4) of this connection, as in the logs."""
        if self._id is None:
            # The adapters' connection classes have a __dict__ (the slots here
            # only keep this base from adding one).
            self._id = uuid.uuid4()  # type: ignore[misc]
        return self._id

    def log_open(self) -> None:
        """Log at INFO that the connection is open (once per connection)."""
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        protocol = self.protocol
        request = getattr(protocol, "request", None)
        target = request.path if request is not None else getattr(protocol, "uri", "")
        if target and not isinstance(target, str):
            target = target.resource_name
        logger.info(
            "connection %s open: remote %s, %s, subprotocol %s",
            self.id,
            format_address(self.remote_address),
            target,
            self.subprotocol,
        )

    def log_closed(self) -> None:
        """Log at INFO how the connection closed: codes and reasons both ways (section 7.1.5)."""
        logger = self.logger
        protocol = self.protocol
        if not logger.isEnabledFor(logging.INFO) or getattr(protocol, "handshake_exc", None):
            return  # a refused handshake is logged as such, not as a closed connection
        response = getattr(protocol, "response", None)
        if response is None or response.status != 101:
            return
        sent = protocol.close_sent
        logger.info(
            "connection %s closed: remote %s, received %s %r, sent %s %r",
            self.id,
            format_address(self.remote_address),
            protocol.close_code,
            protocol.close_reason,
            None if sent is None else sent.code,
            "" if sent is None else sent.reason,
        )

    _messages: Sized

    @property
    def queued_messages(self) -> int:
        """Messages received and not yet returned by ``recv()``.

        Flow control keeps it about ``max_queue``: reading, and inflating
        compressed frames, stop there (see docs/security.md).
        """
        return len(self._messages)

    @property
    def ready_state(self) -> core.State:
        """CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3), as in the browser."""
        return self.protocol.state

    @property
    def state(self) -> core.State:
        """Alias of :attr:`ready_state`."""
        return self.protocol.state

    @property
    def close_code(self) -> int | None:
        """The close code received, 1006 if closed without one, None while open."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> str:
        """The close reason received, "" if none."""
        return self.protocol.close_reason

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or None."""
        return cast(str | None, getattr(self.protocol, "subprotocol", None))

    @property
    def request(self) -> Request | None:
        """The handshake request (path, query, headers)."""
        return cast(Request | None, getattr(self.protocol, "request", None))

    @property
    def response(self) -> Response | None:
        """The handshake response."""
        return cast(Response | None, getattr(self.protocol, "response", None))


def format_address(address: Any) -> str:
    """``host:port`` of a socket address (``[host]:port`` for IPv6), or the path."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address or "-")


class PingTracker(Generic[W]):
    """Pings waiting for their pong, with whatever each adapter waits on (``W``).

    Section 5.5.3 lets a peer answer only the most recent of several pings, so
    a pong acknowledges every ping sent before the one it answers.
    """

    __slots__ = ("_waiting", "latency")

    def __init__(self) -> None:
        # Read-only and shared until the first ping: most connections of a
        # busy server are idle, and an empty dict costs 64 bytes each.
        self._waiting: dict[bytes, tuple[W, float]] = _NO_PINGS
        self.latency = 0.0
        """Round-trip time of the last ping answered, in seconds."""

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, data: object) -> bool:
        return data in self._waiting

    def new_payload(self) -> bytes:
        """Four random bytes not used by a waiting ping."""
        data = os.urandom(4)
        while data in self._waiting:
            data = os.urandom(4)
        return data

    def add(self, data: bytes, waiter: W, now: float) -> None:
        """Remember that a ping with ``data`` was sent at ``now``."""
        if self._waiting is _NO_PINGS:
            self._waiting = {}
        self._waiting[data] = (waiter, now)

    def pong(self, data: bytes, now: float) -> list[tuple[W, float]]:
        """A pong with ``data`` arrived at ``now``: the pings it answers, with their RTT.

        An unsolicited pong (a heartbeat) answers none.
        """
        if data not in self._waiting:
            return []
        answered: list[tuple[W, float]] = []
        for key in list(self._waiting):
            waiter, sent_at = self._waiting.pop(key)
            answered.append((waiter, now - sent_at))
            if key == data:
                self.latency = now - sent_at
                break
        return answered

    def clear(self) -> list[W]:
        """Forget every waiting ping (the connection closed) and return their waiters."""
        waiters = [waiter for waiter, _ in self._waiting.values()]
        self._waiting = _NO_PINGS
        return waiters


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
        from .protocol.permessage_deflate import deflate_factories

        factories.extend(deflate_factories(core.Side.CLIENT, compression))
    return factories


def server_extension_factories(
    compression: str | None, extensions: Sequence[ServerExtensionFactory] | None
) -> list[ServerExtensionFactory]:
    """The extensions a server accepts: ``extensions`` then ``compression``'s."""
    factories = list(extensions or ())
    if compression is not None:
        from .protocol.permessage_deflate import deflate_factories

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


# --- redirects -------------------------------------------------------------------

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
"""Statuses that send the handshake elsewhere (RFC 9110 section 15.4)."""

DEFAULT_MAX_REDIRECTS = 10
"""How many redirects a client follows by default, like browsers and curl."""


def redirect_target(
    uri: WebSocketURI, exc: HandshakeError, redirects: int, limit: int
) -> WebSocketURI | None:
    """Where a failed handshake redirects to, or ``None`` if it is no redirect.

    Args:
        uri: the URI of the handshake that failed with ``exc``.
        exc: the handshake error.
        redirects: how many redirects were followed already.
        limit: the most redirects to follow.

    Raises:
        RedirectError: more than ``limit`` redirects, no usable ``Location``, or
            a redirect from ``wss://`` to ``ws://`` (it would drop TLS).
    """
    if not isinstance(exc, InvalidStatus) or exc.response.status not in REDIRECT_STATUSES:
        return None
    response = exc.response
    if redirects >= limit:
        raise RedirectError(
            f"more than {limit} redirects; last one to {response.headers.get('Location')}", response
        )
    location = response.headers.get("Location")
    if not location:
        raise RedirectError(f"HTTP {response.status} redirect without a Location", response)
    # Location may be relative (RFC 9110 section 10.2.2); resolve it against
    # the current URI written with an http(s) scheme, which urljoin knows.
    base = urlunsplit(
        ("https" if uri.secure else "http", uri.host_header, uri.resource_name, "", "")
    )
    target = urljoin(base, location)
    parts = urlsplit(target)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    target = urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
    try:
        new_uri = parse_uri(target)
    except InvalidURI as error:
        raise RedirectError(f"invalid redirect to {location}: {error}", response) from None
    if uri.secure and not new_uri.secure:
        raise RedirectError(f"refusing a redirect from wss:// to {target}", response)
    if (
        new_uri.user_info is None
        and uri.user_info is not None
        and ((new_uri.host, new_uri.port) == (uri.host, uri.port))
    ):
        # Keep credentials on the same origin only: a redirect elsewhere must
        # not receive them.
        new_uri = WebSocketURI(
            new_uri.secure, new_uri.host, new_uri.port, new_uri.resource_name, uri.user_info
        )
    return new_uri


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
