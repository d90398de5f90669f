"""Every error hubbub raises.

All of them derive from :class:`HubbubError`, and they are grouped by the phase of
a connection's life in which they happen::

    HubbubError
    ├── HandshakeError                the opening handshake failed (RFC 6455 section 4)
    │   ├── InvalidURI                  not a ws:// or wss:// URI
    │   ├── InvalidMessage              malformed, oversized or truncated HTTP message
    │   │   └── UnexpectedTLS             a TLS ClientHello reached a plain-text port
    │   ├── InvalidHeader               a required header is missing or wrong
    │   │   ├── InvalidUpgrade            Upgrade / Connection are not "websocket" / "upgrade"
    │   │   ├── InvalidVersion            Sec-WebSocket-Version is not 13 (answered with 426)
    │   │   └── InvalidOrigin             Origin refused by the server's policy
    │   ├── InvalidStatus               the server answered something other than 101
    │   ├── NegotiationError            subprotocol or extension negotiation failed
    │   ├── RedirectError               too many redirects, or an invalid one
    │   ├── ProxyError                  the proxy refused or failed to open the tunnel
    │   └── HandshakeTimeout            the handshake did not finish within open_timeout
    ├── ConnectionClosed              the connection is closed (RFC 6455 section 7)
    │   ├── ConnectionClosedOK          ... with 1000 or 1001, after a clean close handshake
    │   └── ConnectionClosedError       ... in any other way
    ├── ProtocolError                 the WebSocket protocol was violated
    │   ├── RemoteProtocolError         by the peer: the connection is failed with .code
    │   │   └── PayloadTooBig             a message exceeded max_size (1009)
    │   └── LocalProtocolError          by our own caller: nothing was sent
    ├── UsageError                    the API was misused
    │   ├── InvalidState                the operation is not possible in this state
    │   └── ConcurrencyError            two coroutines or threads raced on one operation
    ├── MissingExtra                  an optional part needs an extra that is not installed
    │                                 (also an ImportError)
    ├── HubError                      the messaging hub refused a request: .code is the wire
    │   │                             error (docs/protocol.md section 5); the SDK raises it
    │   │                             for an error reply (hubbub.hub.client)
    │   ├── AuthError                   a token was refused (hubbub.hub.core.identity)
    │   ├── Fail                        a node's handler refused a request; the node answers
    │   │                               it as an error reply (hubbub.hub.core.session)
    │   └── BrokerUnavailable           the broker's backend cannot be reached; code 501
    │                                   (hubbub.hub.core.broker)
    ├── ConnectionLost                the SDK's connection dropped before the reply came: the
    │                                 request may or may not have run (hubbub.hub.client.types)
    └── InvalidReply                  the server does not answer by hubbub.json.v1
                                      (hubbub.hub.client.types)

Local and remote protocol errors are kept apart on purpose (as in ``h11``): a
:class:`RemoteProtocolError` means the peer is broken and the connection is
failed, a :class:`LocalProtocolError` means the calling code asked for something
the RFC forbids (a 126-byte ping, close code 1005, ...) and nothing was sent, so
the connection is still usable.

The hub's errors are defined next to the code that raises them (the node's in
``hubbub.hub``, which needs the ``hub`` extra) and share :class:`HubError`, which
lives here so that the I/O-free hub core and the SDK need nothing else.
:class:`~hubbub.hub.client.types.ConnectionLost` and
:class:`~hubbub.hub.client.types.InvalidReply` stand apart from it on purpose:
they are not the hub's answer, and the SDK retries them (a lost connection, a
server that is not a hub yet) where it gives up on a :class:`HubError` (a
refusal), so ``except HubError`` must not catch them.

This module imports nothing from :mod:`hubbub.protocol`, which raises these
errors: close codes are plain ``int`` here (:class:`~hubbub.protocol.CloseCode`
is an ``IntEnum``), and :class:`InvalidStatus` describes the response it
carries with :class:`HTTPResponse`, which :class:`hubbub.protocol.Response`
satisfies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HTTPResponse",
    "HandshakeError",
    "HandshakeTimeout",
    "HeaderFields",
    "HubError",
    "HubbubError",
    "InvalidHeader",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "InvalidVersion",
    "LocalProtocolError",
    "MissingExtra",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "RedirectError",
    "RemoteProtocolError",
    "UnexpectedTLS",
    "UsageError",
]


class HeaderFields(Protocol):
    """The header fields of an :class:`HTTPResponse`: :class:`hubbub.protocol.Headers`."""

    def __getitem__(self, name: str, /) -> str: ...

    def __contains__(self, name: object, /) -> bool: ...

    def get(self, name: str, default: str | None = None, /) -> str | None: ...

    def get_all(self, name: str, /) -> list[str]: ...


class HTTPResponse(Protocol):
    """What :class:`InvalidStatus` carries: a :class:`hubbub.protocol.Response`."""

    @property
    def status(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def headers(self) -> HeaderFields: ...

    @property
    def body(self) -> bytes: ...


class HubbubError(Exception):
    """Base class of every exception raised by hubbub."""


# --- handshake ---------------------------------------------------------------


class HandshakeError(HubbubError):
    """The opening handshake failed.

    On the server side, ``status`` is the HTTP status the client is answered with.
    """

    status: int = 400


class InvalidURI(HandshakeError):
    """The URI is not a valid ``ws://`` or ``wss://`` URI."""

    def __init__(self, uri: str, msg: str) -> None:
        self.uri = uri
        super().__init__(f"{uri!r} is not a valid WebSocket URI: {msg}")


class InvalidMessage(HandshakeError):
    """The HTTP message is malformed, too large or incomplete."""


class UnexpectedTLS(InvalidMessage):
    """A client started TLS (a ClientHello) on a port that serves plain ``ws://``.

    The server closes at once instead of waiting for an HTTP request that will
    never come; the client (``wss://``, ``https://``) then fails within
    milliseconds instead of after its open timeout.
    """


class InvalidHeader(HandshakeError):
    """A header required by the handshake is missing or has a wrong value."""

    def __init__(self, name: str, value: str | None = None, msg: str | None = None) -> None:
        self.name = name
        self.value = value
        if msg is None:
            msg = f"missing {name} header" if value is None else f"invalid {name} header: {value!r}"
        super().__init__(msg)


class InvalidUpgrade(InvalidHeader):
    """``Upgrade`` or ``Connection`` does not ask for a WebSocket upgrade."""

    status = 426


class InvalidVersion(InvalidHeader):
    """``Sec-WebSocket-Version`` is not 13: answered with 426 (RFC 6455 section 4.4)."""

    status = 426


class InvalidOrigin(InvalidHeader):
    """The ``Origin`` header was refused by the server's origin policy."""

    status = 403


class InvalidStatus(HandshakeError):
    """The server answered the handshake with a status other than 101."""

    def __init__(self, response: HTTPResponse) -> None:
        self.response = response
        body = response.body[:200].decode("utf-8", "replace") if response.body else ""
        detail = f": {body}" if body else ""
        status = f"HTTP {response.status} {response.reason}"
        super().__init__(f"server rejected WebSocket connection: {status}{detail}")


class NegotiationError(HandshakeError):
    """Subprotocol or extension negotiation failed."""


class RedirectError(HandshakeError):
    """A redirect at the handshake was refused: too many, or to an invalid place.

    Attributes:
        response: the redirect response.
    """

    transient = False  # following the same redirects again ends the same way

    def __init__(self, msg: str, response: object = None) -> None:
        self.response = response
        super().__init__(msg)


class ProxyError(HandshakeError):
    """The proxy refused or failed to open the tunnel.

    Attributes:
        status_code: the HTTP status (HTTP CONNECT) or SOCKS reply code, if any.
        transient: whether trying again later may work (see
            :func:`hubbub.backoff.is_transient`).
    """

    def __init__(self, msg: str, status_code: int | None = None, transient: bool = False) -> None:
        self.status_code = status_code
        self.transient = transient
        super().__init__(msg)


class HandshakeTimeout(HandshakeError):
    """The opening handshake did not complete within ``open_timeout``."""

    status = 408


# --- closed ------------------------------------------------------------------


class ConnectionClosed(HubbubError):
    """The WebSocket connection is closed.

    Attributes:
        code: the close code received from the peer, or 1005 (none given) or
            1006 (closed abnormally) when the peer sent none (RFC 6455 section 7.1.5).
        reason: the close reason received from the peer.
        sent_code: the close code we sent, or None if we sent no close frame.
    """

    def __init__(self, code: int, reason: str = "", sent_code: int | None = None) -> None:
        self.code = code
        self.reason = reason
        self.sent_code = sent_code
        super().__init__(self._describe())

    def _describe(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        return f"connection closed: {self.code}{reason}"


class ConnectionClosedOK(ConnectionClosed):
    """Closed normally: 1000 or 1001 after a complete close handshake."""


class ConnectionClosedError(ConnectionClosed):
    """Closed abnormally, by a protocol error or with an error close code."""


# --- protocol ----------------------------------------------------------------


class ProtocolError(HubbubError):
    """The WebSocket protocol was violated."""


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol; the connection is failed with ``code``.

    Attributes:
        code: the close code the connection is failed with (1002 by default,
            1007 for invalid UTF-8, 1009 for a message too big, ...).
    """

    def __init__(self, msg: str, code: int = 1002) -> None:
        self.code = int(code)
        super().__init__(msg)


class PayloadTooBig(RemoteProtocolError):
    """A received message exceeds ``max_size`` (close code 1009)."""

    def __init__(self, size: int, max_size: int) -> None:
        self.size = size
        self.max_size = max_size
        super().__init__(f"message of at least {size} bytes exceeds limit of {max_size}", 1009)


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol forbids; nothing was sent."""


# --- misuse ------------------------------------------------------------------


class UsageError(HubbubError):
    """The API was used in a way it does not support."""


class InvalidState(UsageError):
    """The operation is not possible in the connection's current state."""


class ConcurrencyError(UsageError):
    """Two coroutines or threads tried to run the same operation at once."""


# --- installation ------------------------------------------------------------


class MissingExtra(HubbubError, ImportError):
    """An optional part of hubbub was imported without the extra it needs.

    The WebSocket library has no dependencies; the hub needs ``hubbub[hub]``
    (JWT, Prometheus metrics) and its Redis broker ``hubbub[redis]``. The
    message is one line that names the extra to install. It is also an
    :class:`ImportError`, so ``except ImportError`` keeps working.

    Attributes:
        feature: what was being imported, e.g. ``"hubbub.hub"``.
        extra: the extra that provides it, e.g. ``"hub"``.
        name: the missing third-party module (as in :class:`ImportError`).
    """

    def __init__(self, feature: str, extra: str, module: str | None = None) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(f"{feature} needs the {extra} extra: {install_hint(extra)}", name=module)


class HubError(HubbubError):
    """The messaging hub refused a request; ``code`` is its wire error number.

    The numbers are the table of ``docs/protocol.md`` section 5 (for instance
    200 for a refused token, 501 for a broker that cannot be reached). The
    Python SDK raises this class for an error reply; inside a node, the
    subclasses say who refused (drawing above).

    Attributes:
        code: the wire error number.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, quoted for a POSIX shell."""
    return f"pip install 'hubbub[{extra}]'"


@contextlib.contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Turn a missing third-party module imported in the block into :class:`MissingExtra`.

    Example::

        with needs_extra("hub", "hubbub.hub"):
            import jwt
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        raise MissingExtra(feature, extra, exc.name) from exc
