"""Where a redirected opening handshake leads (RFC 9110 section 15.4), for both clients."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit

from ..exceptions import (
    HandshakeError,
    InvalidStatus,
    InvalidURI,
    RedirectError,
)
from ..protocol.handshake import WebSocketURI, parse_uri

__all__ = [
    "DEFAULT_MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "RedirectError",
    "redirect_target",
]


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
