"""Pieces of the opening handshake shared by both sides (RFC 6455 section 4).

The server side lives in :mod:`hubbub.protocol.server`, the client side in
:mod:`hubbub.protocol.client`; this module holds the key arithmetic, header
checks and URI parsing they both use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from ..exceptions import InvalidHeader, InvalidUpgrade, InvalidURI
from .http11 import Headers, parse_token_list

__all__ = [
    "GUID",
    "KEY_FORMAT",
    "WebSocketURI",
    "accept_key",
    "check_upgrade",
    "generate_key",
    "parse_uri",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""The magic string of section 1.3, appended to the key before hashing."""

KEY_FORMAT = re.compile(r"[A-Za-z0-9+/]{22}==")
"""A valid ``Sec-WebSocket-Key``: base64 of 16 bytes (RFC 4648 section 4), 22
digits and the padding ``==``; exactly what :func:`check_key` accepts."""

# RFC 3986 sub-delims, ":", "@", "/", "?" and "%": what may stay as it is in the
# path and query of a request target (unreserved characters always do).
_RESOURCE_SAFE = "!$&'()*+,;=:@/?%"


def generate_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64 (section 4.1)."""
    return base64.b64encode(os.urandom(16)).decode()


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for ``key`` (section 4.2.2, item 5.4)."""
    # binascii rather than base64.b64encode: one Python call less per handshake.
    return binascii.b2a_base64(hashlib.sha1((key + GUID).encode()).digest(), newline=False).decode()


def check_key(headers: Headers) -> str:
    """Return the request's ``Sec-WebSocket-Key`` after checking it.

    Section 4.2.1 item 5: "a base64-encoded value that, when decoded, is 16 bytes
    in length", present exactly once.
    """
    values = headers.get_all("Sec-WebSocket-Key")
    if not values:
        raise InvalidHeader("Sec-WebSocket-Key")
    if len(values) > 1:
        raise InvalidHeader(
            "Sec-WebSocket-Key", ", ".join(values), "more than one Sec-WebSocket-Key"
        )
    key = values[0]
    if KEY_FORMAT.fullmatch(key):
        return key  # what b64decode(validate=True) takes and decodes to 16 bytes
    try:
        raw = base64.b64decode(key.encode(), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidHeader("Sec-WebSocket-Key", key) from None
    if len(raw) != 16:
        raise InvalidHeader(
            "Sec-WebSocket-Key", key, "Sec-WebSocket-Key must be 16 bytes once decoded"
        )
    return key


def check_upgrade(headers: Headers) -> None:
    """Check ``Upgrade: websocket`` and ``Connection: upgrade`` (section 4.2.1, 4.1).

    Both are comma-separated token lists compared case-insensitively: browsers
    send ``Connection: keep-alive, Upgrade``.
    """
    for name, token in (("Connection", "upgrade"), ("Upgrade", "websocket")):
        values = headers.get_all(name)
        # The usual request has one field holding just the token: no list to parse.
        if len(values) == 1 and values[0].lower() == token:
            continue
        if token not in [t for v in values for t in parse_token_list(v)]:
            raise InvalidUpgrade(name, ", ".join(values) or None)


def parse_protocol_header(headers: Headers) -> list[str]:
    """The subprotocols in every ``Sec-WebSocket-Protocol`` field, in order."""
    return [
        t.strip()
        for v in headers.get_all("Sec-WebSocket-Protocol")
        for t in v.split(",")
        if t.strip()
    ]


@dataclass(frozen=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI (section 3)."""

    secure: bool
    host: str
    port: int
    resource_name: str
    user_info: tuple[str, str] | None = None

    @property
    def host_header(self) -> str:
        """The ``Host`` value: the port only when it is not the default (section 4.1)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def origin_url(self) -> str:
        scheme = "https" if self.secure else "http"
        return urlunsplit((scheme, self.host_header, "", "", ""))


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a WebSocket URI (section 3).

    Raises:
        InvalidURI: not ws:// or wss://, no host, or a fragment (section 3: "Fragment
            identifiers are meaningless in the context of WebSocket URIs").
    """
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise InvalidURI(uri, str(exc)) from None
    if parts.scheme not in ("ws", "wss"):
        raise InvalidURI(uri, "scheme must be ws or wss")
    if not parts.hostname:
        raise InvalidURI(uri, "no host")
    if parts.fragment:
        raise InvalidURI(uri, "a WebSocket URI has no fragment")
    if port == 0:
        raise InvalidURI(uri, "port 0 cannot be connected to")
    host = parts.hostname
    if not host.isascii():
        # The Host header is ASCII: an internationalized name goes as IDNA.
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURI(uri, "invalid internationalized host name") from None
    secure = parts.scheme == "wss"
    # The resource name goes into the request line: a space or a non-ASCII
    # character there would break it, so they are percent-encoded (RFC 3986
    # section 2.1); what is already percent-encoded stays as it is.
    path = quote(parts.path or "/", safe=_RESOURCE_SAFE)
    query = quote(parts.query, safe=_RESOURCE_SAFE)
    resource = path + (f"?{query}" if query else "")
    user_info = None
    if parts.username is not None:
        # Section 3 follows RFC 3986: user info is percent-encoded in the URI.
        user_info = (unquote(parts.username), unquote(parts.password or ""))
    return WebSocketURI(secure, host, port or (443 if secure else 80), resource, user_info)
