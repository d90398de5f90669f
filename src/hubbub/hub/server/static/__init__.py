"""The files the hub serves over plain HTTP: the chat page and the JavaScript client.

The files ship inside the package (``pip install`` includes them as package
data) and are read once, on first use, with :mod:`importlib.resources`, so the
hub works from a wheel, a zip or a source tree alike.

Caching (RFC 9111): every answer carries a strong ``ETag`` (a hash of the
content) and ``Cache-Control: no-cache``, which lets a browser keep a copy but
makes it revalidate before each use. A revalidation with a matching
``If-None-Match`` costs a ``304 Not Modified`` without a body (RFC 9110 section
13.1.2), and an upgraded hub never leaves a browser running a stale client
against a newer protocol.
"""

from __future__ import annotations

import hashlib
import http
import importlib.resources
from dataclasses import dataclass

from ....protocol.http11 import Headers, Request, Response

__all__ = ["FILES", "StaticFile", "serve_static"]

#: URL path -> (file name in this package, media type).
FILES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/hubbub.js": ("hubbub.js", "text/javascript; charset=utf-8"),
    "/msgpack.js": ("msgpack.js", "text/javascript; charset=utf-8"),  # imported by hubbub.js
    "/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    "/chat.css": ("chat.css", "text/css; charset=utf-8"),
}

# The chat page loads only its own scripts and styles and talks only to its own
# origin ('self' covers ws:// and wss:// to the same host in CSP Level 3).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class StaticFile:
    """One file, loaded: its bytes, media type and entity tag."""

    body: bytes
    content_type: str
    etag: str


_cache: dict[str, StaticFile] = {}


def _load(name: str, content_type: str) -> StaticFile:
    cached = _cache.get(name)
    if cached is None:
        body = importlib.resources.files(__name__).joinpath(name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        cached = _cache[name] = StaticFile(body, content_type, etag)
    return cached


def _response(status: int, headers: Headers, body: bytes = b"") -> Response:
    headers["Content-Length"] = headers.get("Content-Length") or str(len(body))
    headers["Connection"] = "close"
    return Response(status, http.HTTPStatus(status).phrase, headers, body)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


def serve_static(request: Request) -> Response | None:
    """Answer ``request`` if it asks for one of :data:`FILES`, else return ``None``.

    Only ``GET`` and ``HEAD`` are allowed (anything else gets a 405 with ``Allow``).
    """
    entry = FILES.get(request.path_only)
    if entry is None:
        return None
    headers = Headers()
    if request.method not in ("GET", "HEAD"):
        headers["Allow"] = "GET, HEAD"
        headers["Content-Type"] = "text/plain; charset=utf-8"
        return _response(405, headers, b"use GET\n")
    static = _load(*entry)
    headers["ETag"] = static.etag
    headers["Cache-Control"] = "no-cache"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if static.content_type.startswith("text/html"):
        headers["Content-Security-Policy"] = _CSP
    # A 304 and a HEAD carry no content, but their Content-Length must be the
    # length a 200 to a GET would have (RFC 9110 section 8.6).
    headers["Content-Length"] = str(len(static.body))
    if _matches(request.headers.get("If-None-Match"), static.etag):
        return _response(304, headers)
    headers["Content-Type"] = static.content_type
    if request.method == "HEAD":
        return _response(200, headers)
    return _response(200, headers, static.body)
