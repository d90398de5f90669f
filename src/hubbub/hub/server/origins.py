"""Which web pages may open hub connections: the ``Origin`` check of the opening handshake.

A browser sends ``Origin`` with every WebSocket handshake (RFC 6455 section
4.1, item 8; RFC 6454) and, unlike for plain HTTP, the same-origin policy does
not stop a page of another site from connecting: it is the server's job
(RFC 6455 section 10.2). Without this check, a page on any site could open a
connection from a signed-in user's browser (cross-site WebSocket hijacking)
wherever the hub's credentials ride along (the dev mode's bare names, a token
a page can fetch with the user's cookies).

The hub's rule, as in hubs such as Centrifugo: a request **without** ``Origin``
is not from a browser and is allowed (the token is what protects it); a
browser's origin is allowed when it is listed, or when it names the host the
request was sent to (same origin: the page the hub serves itself, the chat
page). ``"*"`` in the list allows every origin.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["OriginPolicy"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(host: str, default_port: int | None) -> tuple[str, int | None] | None:
    """``host[:port]`` lowercased and split, the default port filled in; ``None`` if malformed."""
    try:
        parts = urlsplit("//" + host)
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or parts.username is not None or parts.path:
        return None
    return parts.hostname.lower(), default_port if port is None else port


class OriginPolicy:
    """The allowed origins of a hub.

    Args:
        allowed: origins allowed besides the same origin, written as browsers
            send them (``https://app.example.com``, ``http://localhost:3000``;
            compared case-insensitively, without a trailing slash); ``"*"``
            allows any.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = frozenset(origin.rstrip("/").lower() for origin in allowed)
        self.any = "*" in self.allowed

    def allows(self, origins: list[str], host: str | None) -> bool:
        """Whether a handshake with these ``Origin`` header values, sent to ``host``, may open.

        Args:
            origins: every ``Origin`` header of the request (more than one is refused).
            host: its ``Host`` header.
        """
        if not origins:
            return True  # not a browser (section 4.1: browsers always send it)
        if len(origins) > 1:
            return False
        origin = origins[0].strip().lower()
        if self.any or origin in self.allowed:
            return True
        if host is None:
            return False
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        default_port = _DEFAULT_PORTS.get(parts.scheme)
        if default_port is None or parts.path or parts.query:
            return False  # "null" (sandboxed pages, files) or not an origin
        page = _host_port(parts.netloc, default_port)
        # The Host header carries no scheme: a default port is the same one
        # the origin's scheme implies (the page and the hub share a scheme
        # behind one address, ws for http and wss for https).
        target = _host_port(host.strip(), default_port)
        return page is not None and page == target
