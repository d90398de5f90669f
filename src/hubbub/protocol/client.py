"""The client side of the opening handshake (RFC 6455 sections 4.1 and 4.2.2).

Flow: :meth:`ClientConnection.send_request` queues the request built by
:meth:`ClientConnection.build_request`; bytes of the response arrive with
:meth:`ClientConnection.receive_data`. Once the response is complete it is
checked (section 4.1: "If the status code received from the server is not 101
... If the response lacks an |Upgrade| header field ...  _Fail the WebSocket
Connection_") and a :class:`~hubbub.protocol.http11.Response` event is
emitted: the state is then OPEN, or CLOSED with ``handshake_exc`` set.
Frames the server sends right behind its 101 are parsed at once.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from .. import __version__
from ..exceptions import (
    HandshakeError,
    InvalidHeader,
    InvalidMessage,
    InvalidStatus,
    NegotiationError,
)
from .connection import DEFAULT_MAX_SIZE, Connection, Side, State
from .extensions import (
    ClientExtensionFactory,
    Extension,
    build_extension_header,
    parse_extension_header,
)
from .handshake import (
    WebSocketURI,
    accept_key,
    check_upgrade,
    generate_key,
    parse_protocol_header,
    parse_uri,
)
from .http11 import Headers, Request, Response, parse_response

__all__ = ["USER_AGENT", "ClientConnection"]

USER_AGENT: str = f"hubbub/{__version__}"


class ClientConnection(Connection):
    """A client connection, from the handshake request on.

    Args:
        uri: the ``ws://`` or ``wss://`` URI (or an already parsed one).
        origin: the ``Origin`` header to send, if any.
        subprotocols: subprotocols to offer, preferred first.
        extensions: extension factories to offer, in order.
        additional_headers: extra request headers.
        user_agent: the ``User-Agent`` value, or ``None`` for none.
        max_size: see :class:`~hubbub.protocol.connection.Connection`.
        defer_failure: see :class:`~hubbub.protocol.connection.Connection`.
    """

    __slots__ = (
        "_buf",
        "additional_headers",
        "extension_factories",
        "handshake_exc",
        "key",
        "offered_subprotocols",
        "origin",
        "request",
        "response",
        "subprotocol",
        "uri",
        "user_agent",
    )

    def __init__(
        self,
        uri: str | WebSocketURI,
        *,
        origin: str | None = None,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ClientExtensionFactory] = (),
        additional_headers: Headers | Sequence[tuple[str, str]] | None = None,
        user_agent: str | None = USER_AGENT,
        max_size: int | None = DEFAULT_MAX_SIZE,
        defer_failure: bool = False,
    ) -> None:
        super().__init__(
            Side.CLIENT, state=State.CONNECTING, max_size=max_size, defer_failure=defer_failure
        )
        # The bytes of the response received and not parsed yet (the frame
        # reader holds what arrives once the connection is open).
        self._buf = bytearray()
        self.uri = uri if isinstance(uri, WebSocketURI) else parse_uri(uri)
        self.origin = origin
        self.offered_subprotocols = list(subprotocols)
        for name in self.offered_subprotocols:
            if not name or any(c in name for c in ' ,;"\t'):
                raise ValueError(f"invalid subprotocol name: {name!r}")
        self.extension_factories = list(extensions)
        self.additional_headers = (
            additional_headers.items()
            if isinstance(additional_headers, Headers)
            else list(additional_headers or ())
        )
        self.user_agent = user_agent
        self.key = generate_key()
        self.request: Request | None = None
        self.response: Response | None = None
        self.subprotocol: str | None = None
        self.handshake_exc: HandshakeError | None = None

    def build_request(self) -> Request:
        """The opening handshake request (section 4.1)."""
        headers = Headers()
        headers.add("Host", self.uri.host_header)
        if self.uri.user_info is not None:
            user, password = self.uri.user_info
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers.add("Authorization", f"Basic {token}")
        headers.add("Upgrade", "websocket")
        headers.add("Connection", "Upgrade")
        headers.add("Sec-WebSocket-Key", self.key)
        headers.add("Sec-WebSocket-Version", "13")
        if self.origin is not None:
            headers.add("Origin", self.origin)
        if self.offered_subprotocols:
            headers.add("Sec-WebSocket-Protocol", ", ".join(self.offered_subprotocols))
        if self.extension_factories:
            headers.add(
                "Sec-WebSocket-Extensions",
                build_extension_header(
                    [(f.name, f.get_request_params()) for f in self.extension_factories]
                ),
            )
        for name, value in self.additional_headers:
            headers.add(name, value)
        if self.user_agent and "User-Agent" not in headers:
            headers.add("User-Agent", self.user_agent)
        return Request(self.uri.resource_name, headers)

    def send_request(self, request: Request | None = None) -> None:
        """Queue the handshake request (built by :meth:`build_request` by default)."""
        self.request = request if request is not None else self.build_request()
        self.outgoing.append(self.request.serialize())

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        self._parse_response(eof=False)

    def receive_eof(self) -> None:
        if self.state is State.CONNECTING:
            self._parse_response(eof=True)
            if self.state is State.CONNECTING:
                self._handshake_failed(InvalidMessage("connection closed during the handshake"))
        super().receive_eof()

    def _parse_response(self, eof: bool) -> None:
        try:
            parsed = parse_response(self._buf, eof)
        except HandshakeError as exc:
            self._handshake_failed(exc)
            return
        if parsed is None:
            return
        response, consumed = parsed
        del self._buf[:consumed]
        self.response = response
        try:
            self._check_response(response)
        except HandshakeError as exc:
            self.pending_events.append(response)
            self._handshake_failed(exc)
            return
        self.state = State.OPEN
        self.pending_events.append(response)
        if self._buf:
            pending, self._buf = bytes(self._buf), bytearray()
            super().receive_data(pending)

    def _handshake_failed(self, exc: HandshakeError) -> None:
        self.handshake_exc = exc
        self.reader.stop()
        self._buf = bytearray()
        self.state = State.CLOSED
        self.send_eof()

    def _check_response(self, response: Response) -> None:
        if response.status != 101:
            raise InvalidStatus(response)
        headers = response.headers
        check_upgrade(headers)
        accept = headers.get_all("Sec-WebSocket-Accept")
        if len(accept) != 1 or accept[0] != accept_key(self.key):
            raise InvalidHeader("Sec-WebSocket-Accept", ", ".join(accept) or None)
        # Section 4.1: the server may only choose what the client offered.
        chosen = parse_protocol_header(headers)
        if chosen:
            if len(chosen) > 1 or chosen[0] not in self.offered_subprotocols:
                raise NegotiationError(
                    f"server chose a subprotocol not offered: {', '.join(chosen)}"
                )
            self.subprotocol = chosen[0]
        self.extensions = self._negotiate_extensions(headers)

    def _negotiate_extensions(self, headers: Headers) -> list[Extension]:
        answers = [
            o
            for v in headers.get_all("Sec-WebSocket-Extensions")
            for o in parse_extension_header(v)
        ]
        accepted: list[Extension] = []
        for name, params in answers:
            if any(e.name == name for e in accepted):
                # The client offers each extension once (several parameter
                # sets are alternatives): it cannot be accepted twice.
                raise NegotiationError(f"server accepted extension {name} twice")
            for factory in self.extension_factories:
                if factory.name == name:
                    accepted.append(factory.process_response_params(params, accepted))
                    break
            else:
                # Section 9.1: the server may only answer with offered extensions.
                raise NegotiationError(f"server accepted an extension not offered: {name}")
        return accepted
