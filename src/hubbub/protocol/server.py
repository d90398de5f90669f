"""The server side of the opening handshake (RFC 6455 section 4.2).

Flow: bytes arrive with :meth:`ServerConnection.receive_data`; once the request
head is complete a :class:`~hubbub.protocol.http11.Request` event is emitted.
The adapter then calls :meth:`ServerConnection.accept` (which checks the
request and negotiates; it may return a rejection) or
:meth:`ServerConnection.reject`, may change the response (hooks, extra
headers) and hands it to :meth:`ServerConnection.send_response`. A 101 opens
the connection; anything else is sent and the connection closes.

A malformed request is answered with 400 at once, without an event. A TLS
ClientHello instead of a request (a ``wss://`` client on a plain port) closes
the connection at once, without an answer the client could not read:
:attr:`ServerConnection.handshake_exc` is then :class:`UnexpectedTLS`.

Once a 101 is sent, the connection keeps the request and the response as the
bytes of their heads, a few hundred bytes instead of a few kilobytes of
objects: an idle server holds thousands of connections. :attr:`request` and
:attr:`response` parse them again when read, and the result lives as long as
the application keeps a reference to it.
"""

from __future__ import annotations

import http
import weakref
from collections.abc import Callable, Sequence

from .. import __version__
from ..exceptions import (
    HandshakeError,
    InvalidHeader,
    InvalidMessage,
    InvalidOrigin,
    InvalidState,
    InvalidVersion,
    NegotiationError,
    UnexpectedTLS,
)
from .connection import DEFAULT_MAX_SIZE, Connection, Side, State
from .extensions import (
    Extension,
    ExtensionParams,
    ServerExtensionFactory,
    build_extension_header,
    parse_extension_header,
)
from .handshake import (
    KEY_FORMAT,
    accept_key,
    check_key,
    check_upgrade,
    parse_protocol_header,
)
from .http11 import Headers, Request, Response, parse_request, parse_response

__all__ = ["SERVER_HEADER", "ServerConnection", "SubprotocolSelector"]

SERVER_HEADER = f"hubbub/{__version__}"

SubprotocolSelector = Callable[[Sequence[str], Sequence[str]], str | None]
"""``select(offered_by_client, supported_by_server) -> chosen or None``."""


def _prefer_server(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """Default choice: the first of the server's subprotocols the client offered."""
    for name in supported:
        if name in offered:
            return name
    return None


class ServerConnection(Connection):
    """A server connection, from the handshake request on.

    The options are kept as given when they are tuples, so that a server can
    share them between all its connections.

    Args:
        subprotocols: subprotocols the server supports, preferred first.
        subprotocol_required: refuse clients that offer none of them (400).
        select_subprotocol: overrides the choice (see :data:`SubprotocolSelector`).
        origins: allowed ``Origin`` values; ``None`` in the list allows requests
            without one (non-browser clients). ``None`` (the default) allows all.
        extensions: extension factories, tried in the client's order of offers.
        max_size: see :class:`~hubbub.protocol.connection.Connection`.
        max_body: largest body of a plain HTTP request (``Content-Length``), for
            hooks that answer HTTP on the WebSocket port; over it: 413.
        defer_failure: see :class:`~hubbub.protocol.connection.Connection`.
        server_header: the ``Server`` header value, or ``None`` to send none.
    """

    __slots__ = (
        "_body_needed",
        "_buf",
        "_request",
        "_request_head",
        "_response",
        "_response_head",
        "available_subprotocols",
        "extension_factories",
        "handshake_exc",
        "max_body",
        "origins",
        "select_subprotocol",
        "server_header",
        "subprotocol",
        "subprotocol_required",
    )

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] = (),
        subprotocol_required: bool = False,
        select_subprotocol: SubprotocolSelector | None = None,
        origins: Sequence[str | None] | None = None,
        extensions: Sequence[ServerExtensionFactory] = (),
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_body: int = 65536,
        defer_failure: bool = False,
        server_header: str | None = SERVER_HEADER,
    ) -> None:
        super().__init__(
            Side.SERVER, state=State.CONNECTING, max_size=max_size, defer_failure=defer_failure
        )
        # tuple() returns a tuple as it is: no copy per connection.
        self.available_subprotocols: Sequence[str] = tuple(subprotocols)
        self.subprotocol_required = subprotocol_required
        self.select_subprotocol = select_subprotocol or _prefer_server
        self.origins: Sequence[str | None] | None = None if origins is None else tuple(origins)
        self.extension_factories: Sequence[ServerExtensionFactory] = tuple(extensions)
        self.server_header = server_header
        self.max_body = max_body
        self._body_needed = 0
        # The bytes of the handshake received and not parsed yet (the frame
        # reader holds what arrives once the connection is open).
        self._buf = bytearray()
        # The Request (Response) while the handshake runs. After a 101: None,
        # or a weak reference to its last parse, and the bytes of its head.
        self._request: Request | weakref.ref[Request] | None = None
        self._request_head = b""
        self._response: Response | weakref.ref[Response] | None = None
        self._response_head = b""
        self.subprotocol: str | None = None
        self.handshake_exc: HandshakeError | None = None

    @property
    def request(self) -> Request | None:
        """The handshake request, once its head is complete; None before.

        After a 101 it is parsed again from the bytes received when no earlier
        result is still referenced: read it, keep it if needed, do not change
        it (changes made by a ``process_request`` hook are not kept).
        """
        request = self._request
        if isinstance(request, Request):
            return request
        parsed = None if request is None else request()
        if parsed is None and self._request_head:
            found = parse_request(self._request_head)
            assert found is not None  # these bytes were parsed once already
            parsed = found[0]
            self._request = weakref.ref(parsed)
        return parsed

    @property
    def response(self) -> Response | None:
        """The response sent (see :meth:`send_response`); None before.

        After a 101 it is parsed again from the bytes sent, like :attr:`request`.
        """
        response = self._response
        if isinstance(response, Response):
            return response
        parsed = None if response is None else response()
        if parsed is None and self._response_head:
            found = parse_response(self._response_head)
            assert found is not None  # a 101 head that parses back (send_response)
            parsed = found[0]
            self._response = weakref.ref(parsed)
        return parsed

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        if self._request is not None:
            # Section 4.1: the client waits for the response before sending frames;
            # a plain HTTP request may still be receiving its body.
            self._buf += data
            if self._body_needed:
                self._take_body()
            return
        if not self._buf and data[-4:] == b"\r\n\r\n" and data[:1] != b"\x16":
            # The usual first read: one whole request head and nothing else.
            # Parsed where it is, and kept as it is (bytes(bytes) is no copy).
            # Anything else (more than a head, an error) takes the way below,
            # which parses the same bytes the same way.
            head = bytes(data)
            try:  # not contextlib.suppress: three calls more per handshake
                parsed = parse_request(head)
            except HandshakeError:
                parsed = None
            if parsed is not None and parsed[1] == len(head):
                self._received_request(parsed[0], head)
                return
        scanned = len(self._buf)
        self._buf += data
        if scanned < 3 and self._buf[:1] == b"\x16":
            tls = _tls_record_start(bytes(self._buf[:3]))
            if tls is None:
                return  # the record header is incomplete: wait for its 3rd byte
            if tls:
                self._close_tls()
                return
        try:
            parsed = parse_request(self._buf, scanned)
        except HandshakeError as exc:
            self.handshake_exc = exc
            # Not known to be a WebSocket handshake: a plain HTTP error.
            self.send_response(self.reject(400, f"Invalid HTTP request: {exc}"))
            return
        if parsed is None:
            return
        request, consumed = parsed
        head = bytes(self._buf[:consumed])
        del self._buf[:consumed]
        self._received_request(request, head)

    def _received_request(self, request: Request, head: bytes) -> None:
        self._request = request
        self._request_head = head
        try:
            self._body_needed = self._body_length(request)
        except HandshakeError as exc:
            self.handshake_exc = exc
            self.send_response(self.reject(exc.status, f"{_error_prefix(request)}: {exc}"))
            return
        if self._body_needed:
            self._take_body()
        else:
            self.pending_events.append(request)

    def _close_tls(self) -> None:
        # No HTTP answer: the client expects a TLS record and would report
        # garbage. Closing at once makes it fail now instead of after its
        # open timeout.
        self.handshake_exc = UnexpectedTLS(
            "a TLS handshake (ClientHello) arrived on a plain ws:// port: the client "
            "uses wss:// or https://; serve TLS on this port or have it connect with ws://"
        )
        self._buf = bytearray()
        self.reader.stop()
        self.send_eof()
        self.state = State.CLOSED

    def _body_length(self, request: Request) -> int:
        """How many body bytes follow the head (RFC 9112 section 6.3).

        A WebSocket handshake has none; plain HTTP requests answered by the
        adapter's ``process_request`` hook (an HTTP API on the same port) may.
        """
        fields = request.headers.by_name()
        if "transfer-encoding" in fields:
            exc = InvalidMessage("chunked request bodies are not supported; send Content-Length")
            exc.status = 411  # RFC 9110 section 15.5.12: Length Required
            raise exc
        if "content-length" not in fields:
            return 0  # a WebSocket handshake
        values = {v.strip() for v in fields["content-length"]}
        value = values.pop()
        if values or not value.isascii() or not value.isdigit():
            raise InvalidMessage("invalid Content-Length")
        length = int(value)
        if length > self.max_body:
            exc = InvalidMessage(f"request body of {length} bytes exceeds {self.max_body}")
            exc.status = 413  # RFC 9110 section 15.5.14: Content Too Large
            raise exc
        return length

    def _take_body(self) -> None:
        needed = self._body_needed
        if len(self._buf) < needed:
            return
        request = self._request
        assert isinstance(request, Request)  # the head came first
        request.body = bytes(self._buf[:needed])
        del self._buf[:needed]
        self._body_needed = 0
        self.pending_events.append(request)

    def receive_eof(self) -> None:
        if self.state is State.CONNECTING and self.handshake_exc is None:
            self.handshake_exc = InvalidMessage("connection closed during the opening handshake")
        super().receive_eof()

    def accept(self, request: Request) -> Response:
        """Check ``request`` and negotiate; return the 101 or the rejection to send."""
        try:
            key, protocol_header, extension_header = self._check_request(request)
        except HandshakeError as exc:
            self.handshake_exc = exc
            response = self.reject(exc.status, f"Failed to open a WebSocket connection: {exc}")
            if exc.status == 405:
                # RFC 9110 section 15.5.6: a 405 MUST list the allowed methods.
                response.headers["Allow"] = "GET"
            elif isinstance(exc, InvalidVersion):
                # Section 4.4: answer with the versions the server supports.
                response.headers["Sec-WebSocket-Version"] = "13"
            elif exc.status == 426:
                response.headers["Upgrade"] = "websocket"
            return response
        fields = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ]
        if protocol_header is not None:
            fields.append(("Sec-WebSocket-Protocol", protocol_header))
        if extension_header is not None:
            fields.append(("Sec-WebSocket-Extensions", extension_header))
        if self.server_header:
            fields.append(("Server", self.server_header))
        return Response(101, "Switching Protocols", Headers(fields))

    def _check_request(self, request: Request) -> tuple[str, str | None, str | None]:
        """Check the request (section 4.2.1): its key, and the subprotocol and
        extensions negotiated (the header values of the answer)."""
        fields = request.headers.by_name()
        keys = fields.get("sec-websocket-key", ())
        connection = fields.get("connection", ("",))
        upgrade = fields.get("upgrade", ("",))
        if (
            # The usual request, checked at once; anything else, field by
            # field (_check_request_fully), which says what is wrong.
            request.method == "GET"
            and request.version == "HTTP/1.1"
            and len(fields.get("host", ())) == 1
            and len(connection) == 1
            and connection[0].lower() == "upgrade"
            and len(upgrade) == 1
            and upgrade[0].lower() == "websocket"
            and len(keys) == 1
            and KEY_FORMAT.fullmatch(keys[0])
            and fields.get("sec-websocket-version") == ("13",)
        ):
            key = keys[0]
        else:
            key = self._check_request_fully(request)
        if self.origins is not None:
            self._check_origin(fields.get("origin", ()))
        offered = (
            parse_protocol_header(request.headers) if "sec-websocket-protocol" in fields else []
        )
        chosen = self._select_subprotocol(offered) if offered or self.subprotocol_required else None
        self.subprotocol = chosen
        if not self.extension_factories:
            return key, chosen, None
        return key, chosen, self._negotiate_extensions(request.headers)

    def _check_request_fully(self, request: Request) -> str:
        """The checks of section 4.2.1 one by one, the first failure raised; the key."""
        headers = request.headers
        if request.version != "HTTP/1.1":
            # Section 4.1: "the HTTP version MUST be at least 1.1".
            raise InvalidMessage(f"a WebSocket handshake needs HTTP/1.1, not {request.version}")
        if request.method != "GET":
            exc = InvalidMessage(f"method {request.method} is not allowed; use GET")
            exc.status = 405
            raise exc
        # RFC 9112 section 3.2: one Host field, else 400.
        hosts = headers.get_all("Host")
        if len(hosts) != 1:
            raise InvalidHeader("Host", ", ".join(hosts) or None)
        check_upgrade(headers)
        key = check_key(headers)
        version = headers.get("Sec-WebSocket-Version")
        if version != "13":
            raise InvalidVersion("Sec-WebSocket-Version", version)
        return key

    def _check_origin(self, origins: Sequence[str]) -> None:
        """Section 4.2.1 item 7 / 10.2: the ``Origin`` against the allowed ones."""
        if len(origins) > 1:
            raise InvalidOrigin("Origin", ", ".join(origins), "more than one Origin header")
        origin = origins[0] if origins else None
        assert self.origins is not None
        if origin not in self.origins:
            raise InvalidOrigin("Origin", origin, f"origin not allowed: {origin}")

    def _select_subprotocol(self, offered: list[str]) -> str | None:
        """Section 4.2.2 item 5.4: the subprotocol to answer, from the client's offers."""
        chosen = self.select_subprotocol(offered, self.available_subprotocols) if offered else None
        if chosen is not None and chosen not in offered:
            # Section 4.2.2: the answer must be one of the client's offers. The
            # selector broke that, so the server is at fault: 500, not 400.
            not_offered = NegotiationError(f"selected subprotocol {chosen!r} was not offered")
            not_offered.status = 500
            raise not_offered
        if chosen is None and self.subprotocol_required:
            raise NegotiationError(
                "no supported subprotocol offered; expected one of "
                + ", ".join(self.available_subprotocols)
            )
        return chosen

    def _negotiate_extensions(self, headers: Headers) -> str | None:
        offers = [
            o
            for v in headers.get_all("Sec-WebSocket-Extensions")
            for o in parse_extension_header(v)
        ]
        accepted: list[Extension] = []
        answers: list[tuple[str, ExtensionParams]] = []
        for name, params in offers:
            for factory in self.extension_factories:
                if factory.name != name or any(e.name == name for e in accepted):
                    continue
                try:
                    answer, extension = factory.process_request_params(params, accepted)
                except NegotiationError:
                    continue
                accepted.append(extension)
                answers.append((name, answer))
                break
        self.extensions = accepted
        return build_extension_header(answers) if answers else None

    def reject(self, status: int, text: str | bytes, headers: Headers | None = None) -> Response:
        """Build an HTTP response with a body (plain text unless headers say otherwise).

        Used to refuse the upgrade and to answer plain HTTP requests.
        """
        body = text if isinstance(text, bytes) else (text.rstrip("\n") + "\n").encode()
        headers = headers if headers is not None else Headers()
        if "Content-Type" not in headers:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        headers["Content-Length"] = str(len(body))
        headers["Connection"] = "close"
        if self.server_header and "Server" not in headers:
            headers["Server"] = self.server_header
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        return Response(status, phrase, headers, body)

    def send_response(self, response: Response) -> None:
        """Send the handshake response; 101 opens the connection (section 4.2.2)."""
        if self.state is not State.CONNECTING:
            raise InvalidState("the handshake response was already sent")
        self._response = response
        head = response.serialize()
        self.outgoing.append(head)
        if response.status == 101:
            self.state = State.OPEN
            self._compact(response, head)
            if self._buf:
                pending, self._buf = bytes(self._buf), bytearray()
                super().receive_data(pending)
            else:
                self._buf = bytearray()  # drop the capacity the handshake used
        else:
            if self.handshake_exc is None:
                self.handshake_exc = HandshakeError(
                    f"connection rejected: HTTP {response.status} {response.reason}"
                )
            self.reader.stop()
            self.send_eof()
            self.state = State.CLOSED

    def _compact(self, response: Response, head: bytes) -> None:
        """Keep the handshake as bytes (see the module docstring)."""
        request = self._request
        if isinstance(request, Request) and not request.body:
            self._request = None  # parsed again from _request_head when read
        else:
            self._request_head = b""  # a body is not kept in the head: keep the object
        if not response.body and response.headers.parses_back():
            self._response = None
            self._response_head = head

    def fail(self, code: int = 1002, reason: str = "") -> None:
        if self.state is State.CONNECTING:
            self.send_response(self.reject(500, reason or "internal error"))
            return
        super().fail(code, reason)


def _tls_record_start(head: bytes) -> bool | None:
    """Whether ``head`` (up to 3 bytes starting with 0x16) opens a TLS handshake record.

    A TLS record starts with its content type (22, handshake) and the protocol
    version 3.x (RFC 8446 section 5.1: ``legacy_record_version`` 0x0301 or
    0x0303; SSL 3.0 to TLS 1.3 use 0x0300-0x0304). No HTTP method starts with
    byte 0x16. None: too few bytes to tell.
    """
    if len(head) >= 2 and head[1] != 0x03:
        return False
    if len(head) < 3:
        return None
    return head[2] <= 0x04


def _error_prefix(request: Request) -> str:
    """How a rejection's body starts: WebSocket words only for an upgrade request.

    A plain HTTP request (an API on the same port) must not be told that a
    WebSocket connection failed.
    """
    if "websocket" in (request.headers.get("Upgrade") or "").lower():
        return "Failed to open a WebSocket connection"
    return "Invalid HTTP request"
