"""ASGI WebSocket scopes and handshake responses from hubbub's core, with no server in sight.

The ASGI WebSocket spec (version 2.4, with the ``websocket.http.response``
extension) on one side, :mod:`hubbub.protocol`'s ``Request``/``Response`` on the
other. Everything here is pure: :mod:`hubbub.asgi.uvicorn` does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import unquote

from ..protocol.handshake import parse_protocol_header
from ..protocol.http11 import Headers, Request, Response
from ..protocol.server import ServerConnection

__all__ = ["ASGI_SPEC_VERSION", "accept_response", "denial_response", "websocket_scope"]

ASGI_SPEC_VERSION = "2.4"
"""The ASGI WebSocket spec version served: 2.4 has ``reason`` in ``websocket.close``
and the ``websocket.http.response`` extension (denial responses)."""

RawHeaders = Iterable[tuple[bytes, bytes]]
"""ASGI's headers: ``(name, value)`` byte pairs."""


def websocket_scope(
    request: Request,
    *,
    scheme: str,
    server: tuple[str, int | None] | None,
    client: tuple[str, int] | None,
    root_path: str = "",
    asgi_version: str = "3.0",
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ASGI ``websocket`` connection scope of a handshake request.

    Args:
        request: the client's opening handshake, as the core parsed it.
        scheme: ``"ws"`` or ``"wss"``.
        server: the local address, ``(host, port)``.
        client: the peer's address, ``(host, port)``.
        root_path: the mount point of the app (``--root-path``); it prefixes
            ``path`` and ``raw_path`` as uvicorn does for HTTP requests.
        asgi_version: the ASGI version of the app (``"3.0"`` or ``"2.0"``).
        state: the lifespan state; the scope gets a shallow copy.
    """
    raw_path, _, query_string = request.path.partition("?")
    # Header names are case-insensitive (RFC 9110 section 5.1): ASGI wants them
    # lowercased, in received order, duplicates kept.
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in request.headers.items()
    ]
    return {
        "type": "websocket",
        "asgi": {"version": asgi_version, "spec_version": ASGI_SPEC_VERSION},
        "http_version": "1.1",
        "scheme": scheme,
        "server": server,
        "client": client,
        "root_path": root_path,
        "path": root_path + unquote(raw_path),
        "raw_path": root_path.encode("ascii") + raw_path.encode("latin-1"),
        "query_string": query_string.encode("latin-1"),
        "headers": headers,
        "subprotocols": parse_protocol_header(request.headers),
        "state": {} if state is None else state.copy(),
        "extensions": {"websocket.http.response": {}},
    }


def _headers(raw: RawHeaders) -> Headers:
    """ASGI byte pairs as :class:`Headers`; raises ``LocalProtocolError`` on CR/LF/NUL."""
    headers = Headers()
    for name, value in raw:
        headers.add(name.decode("latin-1"), value.decode("latin-1"))
    return headers


def accept_response(
    response: Response,
    offered: Sequence[str],
    subprotocol: str | None,
    headers: RawHeaders,
) -> None:
    """Complete the 101 the core built with what ``websocket.accept`` asked for.

    Raises:
        ValueError: ``subprotocol`` is not one the client offered: section
            4.1 makes the client fail such a handshake, so the app's bug is
            reported to it rather than to the client.
        LocalProtocolError: a header would inject others (CR, LF or NUL).
    """
    extra = _headers(headers)
    if subprotocol is not None:
        if subprotocol not in offered:
            raise ValueError(
                f"websocket.accept: subprotocol {subprotocol!r} was not offered by the client"
                f" (offered: {', '.join(offered) or 'none'})"
            )
        response.headers["Sec-WebSocket-Protocol"] = subprotocol
    for name, value in extra.items():
        response.headers.add(name, value)


def denial_response(
    core: ServerConnection, status: int, headers: RawHeaders, body: bytes
) -> Response:
    """The HTTP response of a ``websocket.http.response.*`` denial.

    ``Content-Length`` and ``Connection: close`` are set by the core (the body is
    complete when this is called); ``Content-Type`` defaults to plain text.

    Raises:
        ValueError: ``status`` is not a final status (200-599): a 1xx or 101
            would leave the client waiting or claim an upgrade that never happened.
    """
    if not 200 <= status < 600:
        raise ValueError(f"websocket.http.response.start: invalid status {status}")
    return core.reject(status, body, _headers(headers))
