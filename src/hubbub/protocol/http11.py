"""The small part of HTTP/1.1 that the opening handshake needs (RFC 9110, 9112).

Parsing is incremental and bounded: :func:`parse_request` and
:func:`parse_response` look at a buffer and either return a message with the
number of bytes it used, return ``None`` when more bytes are needed, or raise
:class:`~hubbub.exceptions.InvalidMessage`. Limits on the line length, the
number of headers and the whole head keep a hostile peer from making us buffer
without end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import parse_qsl, urlsplit

from ..exceptions import InvalidHeader, InvalidMessage, LocalProtocolError

__all__ = [
    "MAX_BODY",
    "MAX_HEADERS",
    "MAX_HEAD_SIZE",
    "MAX_LINE",
    "Headers",
    "Request",
    "Response",
    "parse_request",
    "parse_response",
]

MAX_LINE = 8192
"""Longest request line, status line or header line, in bytes."""
MAX_HEADERS = 128
"""Most header fields in one message."""
MAX_HEAD_SIZE = 65536
"""Largest head (start line, headers and the blank line after them) in bytes."""
MAX_BODY = 65536
"""Largest body of a rejected handshake response that the client keeps."""

_STR_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# A value that _parse_headers gives back unchanged once serialized: what a
# received value may hold (_VALUE_BYTES) without the whitespace parsing strips.
_STR_EXACT = r"(?:[!-~\x80-\xff](?:[\t -~\x80-\xff]*[!-~\x80-\xff])?)?"
_STR_EXACT_LINES = re.compile(f"{_STR_EXACT}(?:\n{_STR_EXACT})*")
# Header names that passed add()'s check, with their lowercase form: most
# responses use the same few. Bounded, as names may come from anywhere.
_VALID_NAMES: dict[str, str] = {}
_NAMES_KEPT = 256
# The bytes a field value may hold (RFC 9110 section 5.5: field-vchar, SP,
# HTAB, obs-text) and a field name (a token, section 5.1): bytes.translate()
# deletes them, so what is left of a valid part is b"".
_VALUE_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
_HEAD_BYTES = _VALUE_BYTES + b"\r\n"
_TOKEN_BYTES = b"-!#$%&'*+.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Received header names already decoded, with their lowercase form (bounded;
# the names of the opening handshake are always there).
_PARSED_NAMES: dict[bytes, tuple[str, str]] = {
    name.encode(): (name, name.lower())
    for name in (
        "Host",
        "Upgrade",
        "Connection",
        "Origin",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Accept",
        "User-Agent",
        "Cookie",
        "Authorization",
    )
}
# The same names as str, for the fast path of parse_request (_parse_common_request).
_COMMON_NAMES: dict[str, str] = {name.decode(): lower for name, (_, lower) in _PARSED_NAMES.items()}
_STATUS = re.compile(r"[1-5][0-9][0-9]")


class Headers:
    """A case-insensitive multi-map of HTTP header fields, in received order."""

    __slots__ = ("_index", "_items")
    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        # Lowercase name -> its values; tuples, so that by_name() can show them.
        self._index: dict[str, tuple[str, ...]] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping earlier ones of the same name.

        Raises:
            LocalProtocolError: the name is not a token or the value holds CR,
                LF or NUL; serialized, they would inject headers (RFC 9110
                section 5.5).
        """
        lower = _VALID_NAMES.get(name)
        if lower is None:
            if not _STR_TOKEN.fullmatch(name):
                raise LocalProtocolError(f"invalid HTTP header: {name!r}: {value!r}")
            lower = name.lower()
            if len(_VALID_NAMES) < _NAMES_KEPT:
                _VALID_NAMES[name] = lower
        # Three substring scans cost less than a regex search (this runs for
        # every header of every handshake response).
        if "\r" in value or "\n" in value or "\0" in value:
            raise LocalProtocolError(f"invalid HTTP header: {name!r}: {value!r}")
        self._items.append((name, value))
        values = self._index.get(lower)
        self._index[lower] = (value,) if values is None else (*values, value)

    @classmethod
    def _parsed(cls, items: list[tuple[str, str]], index: dict[str, tuple[str, ...]]) -> Headers:
        # For _parse_headers, which validated every field and built both.
        headers = cls.__new__(cls)
        headers._items = items  # noqa: SLF001 (its own class)
        headers._index = index  # noqa: SLF001
        return headers

    def parses_back(self) -> bool:
        """Tell whether parsing :meth:`serialize`'s output gives these fields back.

        False when a value has whitespace around it (parsing strips it) or a
        character that a received header may not hold (RFC 9110 section 5.5).
        """
        # One regex call for all the values: add() keeps "\n" out of them.
        values = "\n".join([value for _, value in self._items])
        return _STR_EXACT_LINES.fullmatch(values) is not None

    def __setitem__(self, name: str, value: str) -> None:
        """Replace every field of that name with one."""
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = name.lower()
        if self._index.pop(key, None) is not None:
            self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def __getitem__(self, name: str) -> str:
        """The field's value; several fields are joined by commas (RFC 9110 5.3)."""
        values = self._index[name.lower()]
        return values[0] if len(values) == 1 else ", ".join(values)

    def get(self, name: str, default: str | None = None) -> str | None:
        try:
            return self[name]
        except KeyError:
            return default

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(name.lower(), ()))

    def by_name(self) -> Mapping[str, tuple[str, ...]]:
        """A read-only view: each lowercase name -> its values, in received order.

        For code that looks up many fields (the server's checks of the opening
        handshake): one call, then a dictionary lookup per field instead of a
        method call. It follows later changes.
        """
        return MappingProxyType(self._index)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def serialize(self) -> bytes:
        return "".join([f"{n}: {v}\r\n" for n, v in self._items]).encode("latin-1")


def parse_token_list(value: str) -> list[str]:
    """Split a comma-separated list of tokens (RFC 9110 section 5.6.1), lowercased."""
    return [t.strip().lower() for t in value.split(",") if t.strip()]


@dataclass
class Request:
    """An HTTP request: the client's opening handshake."""

    path: str
    headers: Headers
    method: str = "GET"
    body: bytes = b""
    """The body of a plain HTTP request (``Content-Length`` only); b"" for a handshake."""
    version: str = "HTTP/1.1"
    """``HTTP/1.1``, or ``HTTP/1.0`` for plain requests (never a valid handshake)."""

    @property
    def query(self) -> dict[str, str]:
        """The query string as a dict (the last value wins)."""
        return dict(parse_qsl(urlsplit(self.path).query))

    @property
    def path_only(self) -> str:
        """The path without the query string."""
        return urlsplit(self.path).path or "/"

    def serialize(self) -> bytes:
        head = f"{self.method} {self.path} {self.version}\r\n".encode("latin-1")
        return head + self.headers.serialize() + b"\r\n"


@dataclass
class Response:
    """An HTTP response: the server's opening handshake or a rejection."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def serialize(self) -> bytes:
        head = f"HTTP/1.1 {self.status} {self.reason}\r\n".encode("latin-1")
        return head + self.headers.serialize() + b"\r\n" + self.body


def _split_head(buf: bytes | bytearray, start: int = 0) -> tuple[list[bytes], int, bool] | None:
    # The limits are judged the same way whether the head arrives at once or
    # byte by byte: MAX_HEAD_SIZE counts the blank line that ends the head,
    # MAX_LINE never counts a line's CRLF. Each call looks at the new bytes
    # only (``start``) and at most one line back, so that a head trickling in
    # a byte at a time costs linear time, not quadratic.
    end = buf.find(b"\r\n\r\n", max(0, start - 3), MAX_HEAD_SIZE)
    if end < 0:
        if len(buf) >= MAX_HEAD_SIZE:
            raise InvalidMessage(f"HTTP head larger than {MAX_HEAD_SIZE} bytes")
        # A line can be judged too long before the head is complete. No "\n"
        # in the last MAX_LINE + 2 bytes means a line too long in any case.
        last = buf.rfind(b"\n", max(0, len(buf) - MAX_LINE - 2)) + 1
        line = len(buf) - last - (1 if buf.endswith(b"\r") else 0)
        if line > MAX_LINE:
            raise InvalidMessage(f"HTTP line longer than {MAX_LINE} bytes")
        return None
    head = bytes(buf[:end])
    return head.split(b"\r\n"), end + 4, _clean(head)


def _clean(head: bytes) -> bool:
    """Whether every byte of ``head`` may be in a field value, its CRLFs apart.

    A few C calls over the whole head instead of a check per field: a head
    that passes needs only its structure checked line by line (_parse_headers).
    """
    return not head.translate(None, _HEAD_BYTES) and head.count(b"\r") == head.count(
        b"\r\n"
    ) == head.count(b"\n")


def _parse_headers(lines: list[bytes], clean: bool = False) -> Headers:
    """The fields of ``lines``; ``clean``: every byte of them may be in a value."""
    if len(lines) > MAX_HEADERS:
        raise InvalidMessage(f"more than {MAX_HEADERS} HTTP headers")
    items: list[tuple[str, str]] = []
    index: dict[str, tuple[str, ...]] = {}
    names = _PARSED_NAMES
    for line in lines:
        # RFC 9112 section 5: field-line = field-name ":" OWS field-value OWS.
        # A name seen before and a clean head (see _clean) leave nothing to
        # check here; _parse_field checks the rest and says what is wrong.
        raw_name, sep, raw_value = line.partition(b":")
        known = names.get(raw_name)
        if known is None or not clean or not sep or len(line) > MAX_LINE:
            name, value = _parse_field(line)
            lower = name.lower()
            if len(names) < _NAMES_KEPT:
                names[bytes(raw_name)] = (name, lower)
                _COMMON_NAMES[name] = lower
        else:
            name, lower = known
            value = raw_value.strip(b" \t").decode("latin-1")
        items.append((name, value))
        values = index.get(lower)
        index[lower] = (value,) if values is None else (*values, value)
    return Headers._parsed(items, index)  # noqa: SLF001 (same module)


def _parse_field(line: bytes) -> tuple[str, str]:
    """One field line, checked in full: ``(name, value)``, or the error it is."""
    if len(line) > MAX_LINE:
        raise InvalidMessage(f"HTTP line longer than {MAX_LINE} bytes")
    name, sep, value = line.partition(b":")
    if not sep or not name or name.translate(None, _TOKEN_BYTES):
        raise InvalidMessage(f"invalid HTTP header line: {line[:100]!r}")
    value = value.strip(b" \t")
    if value.translate(None, _VALUE_BYTES):
        raise InvalidHeader(name.decode(), value.decode("latin-1"))
    return name.decode("ascii"), value.decode("latin-1")


def parse_request(buf: bytes | bytearray, start: int = 0) -> tuple[Request, int] | None:
    """Parse a request head from ``buf``.

    Args:
        start: the length of ``buf`` when an earlier call returned ``None``
            (0 the first time); the search for the end of the head resumes
            there.

    Returns:
        ``(request, consumed)``, or ``None`` if the head is not complete yet.

    Raises:
        InvalidMessage: malformed or over the limits.
    """
    end = buf.find(b"\r\n\r\n", max(0, start - 3), MAX_LINE)
    if end >= 0:
        # A head shorter than a line can be over no limit: try the fast path.
        request = _parse_common_request(bytes(buf[:end]))
        if request is not None:
            return request, end + 4
    return _parse_request_checked(buf, start)


def _parse_request_checked(buf: bytes | bytearray, start: int) -> tuple[Request, int] | None:
    """:func:`parse_request` without its fast path: every check, one by one."""
    split = _split_head(buf, start)
    if split is None:
        # The request line is judged as soon as it is complete: a bare
        # "GET /" (an HTTP/0.9 request, which has no headers to wait for)
        # gets its 400 at once instead of after the opening timeout. Only the
        # first time its CRLF is seen (it ends in the new bytes); the search
        # looks at most MAX_LINE bytes back.
        line_end = buf.find(b"\r\n", 0, MAX_LINE + 2)
        if line_end >= 0 and line_end + 2 > start:
            _parse_request_line(bytes(buf[:line_end]))
        return None
    lines, consumed, clean = split
    method, target, version = _parse_request_line(lines[0])
    # HTTP/1.0 is parsed so that health checkers and proxies that speak it get
    # an answer from process_request; the WebSocket handshake itself refuses it
    # (RFC 6455 section 4.1: "the HTTP version MUST be at least 1.1").
    return Request(target, _parse_headers(lines[1:], clean), method, version=version), consumed


def _parse_common_request(head: bytes) -> Request | None:
    """The usual handshake request, parsed with the fewest steps; None for any other.

    ``head`` ends before its blank line and is at most :data:`MAX_LINE` long,
    so that no limit can be exceeded. Taken when the head is clean (see
    :func:`_clean`: two counts check that every CR and LF is in a CRLF), the
    request line is ``<method> /<target> HTTP/1.1`` in ASCII and every field
    name is one already seen (so a valid token): then nothing else needs to be
    checked and the result is the full parse's. Anything else returns None
    and the full parse decides, and says what is wrong.
    """
    if head.translate(None, _HEAD_BYTES):
        return None
    lines = head.decode("latin-1").split("\r\n")
    crlfs = len(lines) - 1
    if head.count(b"\n") != crlfs or head.count(b"\r") != crlfs or crlfs > MAX_HEADERS:
        return None
    request_line = lines[0]
    parts = request_line.split(" ")
    if len(parts) != 3 or not request_line.isascii():
        return None
    method, target, version = parts
    if version != "HTTP/1.1" or target[:1] != "/":
        return None
    items: list[tuple[str, str]] = []
    index: dict[str, tuple[str, ...]] = {}
    names = _COMMON_NAMES
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        lower = names.get(name)
        if lower is None or not sep:
            return None
        value = value.strip(" \t")
        items.append((name, value))
        values = index.get(lower)
        index[lower] = (value,) if values is None else (*values, value)
    return Request(target, Headers._parsed(items, index), method)  # noqa: SLF001 (same module)


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    """Split a request line (RFC 9112 section 3) into method, target and version.

    Raises:
        InvalidMessage: malformed, an unsupported version (HTTP/0.9's "GET /"
            has none) or a target that is not an absolute path.
    """
    if len(line) > MAX_LINE:
        raise InvalidMessage(f"HTTP line longer than {MAX_LINE} bytes")
    try:
        method, target, version = line.decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        raise InvalidMessage(f"invalid HTTP request line: {line[:100]!r}") from None
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        # HTTP/2 and later frame messages differently (RFC 8441 is not supported).
        raise InvalidMessage(f"unsupported HTTP version: {version}")
    if not target.startswith("/"):
        raise InvalidMessage(f"unsupported request target: {target[:100]}")
    return method, target, version


def parse_response(buf: bytes | bytearray, eof: bool = False) -> tuple[Response, int] | None:
    """Parse a response from ``buf``; a non-101 response's body is read too.

    The body is bounded by :data:`MAX_BODY`; a body without Content-Length
    lasts until the end of the stream, so ``eof`` says whether it has come.

    Returns:
        ``(response, consumed)``, or ``None`` if more bytes are needed.
    """
    split = _split_head(buf)
    if split is None:
        if eof:
            raise InvalidMessage("connection closed during the HTTP response")
        return None
    lines, consumed, clean = split
    # RFC 9112 section 4: status-line = HTTP-version SP status-code SP
    # [ reason-phrase ], status-code = 3DIGIT, and the reason may hold
    # obs-text (hence latin-1). int() alone would take "+101" or "1_01".
    version, _, rest = lines[0].decode("latin-1").partition(" ")
    status, _, reason = rest.partition(" ")
    if version != "HTTP/1.1" or not _STATUS.fullmatch(status):
        raise InvalidMessage(f"invalid HTTP status line: {lines[0][:100]!r}")
    code = int(status)
    headers = _parse_headers(lines[1:], clean)
    response = Response(code, reason, headers)
    # RFC 9110 section 6.4.1: 1xx, 204 and 304 responses have no content.
    if code < 200 or code in {204, 304}:
        return response, consumed
    length_value = headers.get("Content-Length")
    if length_value is not None:
        # Only ASCII digits: "²".isdigit() is true but int("²") fails.
        if not (length_value.isascii() and length_value.isdigit()):
            raise InvalidHeader("Content-Length", length_value)
        length = int(length_value)
        kept = min(length, MAX_BODY)
        if len(buf) - consumed < kept:
            if eof:
                raise InvalidMessage("connection closed during the HTTP response body")
            return None
        response.body = bytes(buf[consumed : consumed + kept])
        return response, consumed + kept
    if not eof and len(buf) - consumed < MAX_BODY:
        return None
    response.body = bytes(buf[consumed : consumed + MAX_BODY])
    return response, len(buf)
