"""RFC 6455 section 4.2: the server side of the opening handshake."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pytest
from protocol_testing import (
    CLIENT_ACCEPT,
    CLIENT_KEY,
    OP_PONG,
    OP_TEXT,
    ParsedFrame,
    client_frame,
    parse_frames,
    parse_http_response,
    request_bytes,
    sent_frames,
    server_handshake,
)

from hubbub.exceptions import (
    HandshakeError,
    InvalidHeader,
    InvalidMessage,
    InvalidOrigin,
    InvalidState,
    InvalidUpgrade,
    InvalidVersion,
    NegotiationError,
)
from hubbub.protocol import Headers, Ping, Request, ServerConnection, State
from hubbub.protocol.handshake import accept_key, check_key, generate_key


def handshake(
    request: bytes | None = None, server: ServerConnection | None = None
) -> tuple[ServerConnection, int, dict[str, list[str]], bytes]:
    """Run the server side of a handshake; return the parsed answer."""
    server = server if server is not None else ServerConnection()
    server_handshake(server, request)
    status, headers, body = parse_http_response(b"".join(server.data_to_send()))
    return server, status, headers, body


def assert_rejected(
    server: ServerConnection, status: int, body: bytes, exc_type: type[Exception]
) -> None:
    assert server.state is State.CLOSED
    assert server.eof_sent
    assert isinstance(server.handshake_exc, exc_type), server.handshake_exc
    # A request that could not be parsed is not known to be a WebSocket
    # handshake: its rejection says so in plain HTTP words.
    assert body.startswith((b"Failed to open a WebSocket connection: ", b"Invalid HTTP request: "))
    assert body.decode()  # a readable body, for whoever looks at it
    assert getattr(server.handshake_exc, "status", 400) == status


class TestAccept:
    def test_example_of_section_1_3(self) -> None:
        server, status, headers, body = handshake()
        assert status == 101
        assert headers["upgrade"] == ["websocket"]
        assert headers["connection"] == ["Upgrade"]
        assert headers["sec-websocket-accept"] == [CLIENT_ACCEPT]
        assert "sec-websocket-protocol" not in headers
        assert "sec-websocket-extensions" not in headers
        assert headers["server"][0].startswith("hubbub/")
        assert body == b""
        assert server.state is State.OPEN
        assert server.handshake_exc is None
        assert server.request is not None
        assert server.response is not None
        assert server.response.status == 101

    def test_accept_key(self) -> None:
        assert accept_key(CLIENT_KEY) == CLIENT_ACCEPT
        key = generate_key()
        assert len(base64.b64decode(key)) == 16
        assert generate_key() != key

    def test_no_server_header(self) -> None:
        _, status, headers, _ = handshake(server=ServerConnection(server_header=None))
        assert status == 101
        assert "server" not in headers

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("Connection", "keep-alive, Upgrade"),
            ("Connection", "upgrade"),
            ("Connection", "UPGRADE,keep-alive"),
            ("Upgrade", "WebSocket"),
            ("Upgrade", "h2c, websocket"),
            ("Host", "127.0.0.1:8765"),
        ],
    )
    def test_case_insensitive_token_lists(self, name: str, value: str) -> None:
        # Section 4.2.1: Connection "includes a token whose value is
        # 'Upgrade'", Upgrade "includes 'websocket'", both ASCII
        # case-insensitive; browsers send "keep-alive, Upgrade".
        _, status, _, _ = handshake(request_bytes(drop=[name], extra=[(name, value)]))
        assert status == 101

    def test_tokens_in_repeated_fields(self) -> None:
        extra = [("Connection", "keep-alive"), ("Connection", "Upgrade")]
        _, status, _, _ = handshake(request_bytes(drop=["Connection"], extra=extra))
        assert status == 101

    def test_event_and_request_details(self) -> None:
        server = ServerConnection()
        server.receive_data(request_bytes(target="/room?id=7", extra=[("Origin", "http://o")]))
        (request,) = server.events_received()
        assert isinstance(request, Request)
        assert request.path_only == "/room"
        assert request.query == {"id": "7"}
        assert request.headers["origin"] == "http://o"

    @pytest.mark.parametrize("chunk_size", [1, 7, 100])
    def test_request_split_across_calls(self, chunk_size: int) -> None:
        server = ServerConnection()
        data = request_bytes()
        for i in range(0, len(data), chunk_size):
            assert server.events_received() == []
            server.receive_data(data[i : i + chunk_size])
        (request,) = server.events_received()
        assert isinstance(request, Request)

    def test_frames_pipelined_behind_the_request(self) -> None:
        server = ServerConnection()
        data = request_bytes() + client_frame(OP_TEXT, b"early") + client_frame(0x9, b"p")
        server.receive_data(data[:-3])
        (request,) = server.events_received()
        assert isinstance(request, Request)
        server.receive_data(data[-3:])
        assert server.events_received() == []  # nothing is read before the 101
        server.send_response(server.accept(request))
        assert server.events_received() == ["early", Ping(b"p")]
        out = b"".join(server.data_to_send())
        assert out.startswith(b"HTTP/1.1 101 ")
        frames = sent_frames_after_head(out)
        assert [(f.opcode, f.payload) for f in frames] == [(OP_PONG, b"p")]

    def test_response_can_be_changed_before_sending(self) -> None:
        server = ServerConnection()
        server.receive_data(request_bytes())
        (request,) = server.events_received()
        assert isinstance(request, Request)
        response = server.accept(request)
        response.headers["X-Extra"] = "1"
        server.send_response(response)
        _, headers, _ = parse_http_response(b"".join(server.data_to_send()))
        assert headers["x-extra"] == ["1"]

    def test_response_cannot_be_sent_twice(self) -> None:
        server = ServerConnection()
        _, response = server_handshake(server)
        with pytest.raises(InvalidState):
            server.send_response(response)

    def test_sending_before_the_handshake_is_invalid_state(self) -> None:
        server = ServerConnection()
        with pytest.raises(InvalidState):
            server.send_text("too early")


def sent_frames_after_head(data: bytes) -> list[ParsedFrame]:
    """The frames a server sent right behind its handshake response."""
    _, _, rest = data.partition(b"\r\n\r\n")
    return parse_frames(rest, masked=False)


class TestRejectMalformed:
    @pytest.mark.parametrize(
        "request_data",
        [
            b"GET / HTTP/2\r\nHost: a\r\n\r\n",
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \x00\r\n\r\n",
        ],
    )
    def test_malformed_request_is_answered_with_400(self, request_data: bytes) -> None:
        server = ServerConnection()
        server.receive_data(request_data)
        assert server.events_received() == []
        status, headers, body = parse_http_response(b"".join(server.data_to_send()))
        assert status == 400
        assert headers["connection"] == ["close"]
        assert headers["content-type"] == ["text/plain; charset=utf-8"]
        assert int(headers["content-length"][0]) == len(body)
        assert_rejected(server, 400, body, HandshakeError)

    def test_line_too_long(self) -> None:
        server = ServerConnection()
        server.receive_data(b"GET / HTTP/1.1\r\nX: " + b"a" * 8200)
        status, _, body = parse_http_response(b"".join(server.data_to_send()))
        assert status == 400
        assert b"line" in body
        assert_rejected(server, 400, body, InvalidMessage)

    def test_too_many_headers(self) -> None:
        extra = [(f"X-{i}", "v") for i in range(200)]
        server = ServerConnection()
        server.receive_data(request_bytes(extra=extra))
        status, _, body = parse_http_response(b"".join(server.data_to_send()))
        assert status == 400
        assert_rejected(server, 400, body, InvalidMessage)

    def test_head_too_large(self) -> None:
        server = ServerConnection()
        server.receive_data(b"GET / HTTP/1.1\r\n")
        for i in range(20):
            server.receive_data(b"X-%d: %s\r\n" % (i, b"v" * 4000))
        status, _, body = parse_http_response(b"".join(server.data_to_send()))
        assert status == 400
        assert_rejected(server, 400, body, InvalidMessage)
        server.receive_data(b"more")  # ignored
        assert server.data_to_send() == []

    def test_eof_during_the_handshake(self) -> None:
        server = ServerConnection()
        server.receive_data(b"GET / HTTP/1.1\r\nHost")
        server.receive_eof()
        assert server.state is State.CLOSED
        assert isinstance(server.handshake_exc, InvalidMessage)
        assert server.events_received() == []


class TestRejectInvalid:
    @pytest.mark.parametrize(
        ("drop", "extra", "status", "exc_type"),
        [
            (["Host"], [], 400, InvalidHeader),
            (["Host"], [("Host", "a"), ("Host", "b")], 400, InvalidHeader),
            (["Upgrade"], [], 426, InvalidUpgrade),
            (["Upgrade"], [("Upgrade", "h2c")], 426, InvalidUpgrade),
            (["Upgrade"], [("Upgrade", "websocketx")], 426, InvalidUpgrade),
            (["Connection"], [], 426, InvalidUpgrade),
            (["Connection"], [("Connection", "keep-alive")], 426, InvalidUpgrade),
            (["Connection"], [("Connection", "Upgrade-Insecure")], 426, InvalidUpgrade),
            (["Sec-WebSocket-Key"], [], 400, InvalidHeader),
            (["Sec-WebSocket-Key"], [("Sec-WebSocket-Key", "not base64!")], 400, InvalidHeader),
            (["Sec-WebSocket-Key"], [("Sec-WebSocket-Key", "c2hvcnQ=")], 400, InvalidHeader),
            (
                ["Sec-WebSocket-Key"],
                [("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAAA" + "AAAA")],
                400,
                InvalidHeader,
            ),
            (
                ["Sec-WebSocket-Key"],
                [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ")],
                400,
                InvalidHeader,
            ),
            ([], [("Sec-WebSocket-Key", CLIENT_KEY)], 400, InvalidHeader),  # twice
            (["Sec-WebSocket-Version"], [], 426, InvalidVersion),
            (["Sec-WebSocket-Version"], [("Sec-WebSocket-Version", "8")], 426, InvalidVersion),
            (["Sec-WebSocket-Version"], [("Sec-WebSocket-Version", "13, 8")], 426, InvalidVersion),
        ],
    )
    def test_header_checks_of_section_4_2_1(
        self,
        drop: Sequence[str],
        extra: Sequence[tuple[str, str]],
        status: int,
        exc_type: type[Exception],
    ) -> None:
        server, got_status, headers, body = handshake(request_bytes(drop=drop, extra=extra))
        assert got_status == status
        assert headers["connection"] == ["close"]
        assert_rejected(server, status, body, exc_type)

    def test_wrong_version_is_answered_with_the_supported_one(self) -> None:
        # Section 4.4: "the server MUST ... send a Sec-WebSocket-Version header
        # field ... indicating the version(s) the server is capable of".
        request = request_bytes(
            drop=["Sec-WebSocket-Version"], extra=[("Sec-WebSocket-Version", "7")]
        )
        _, status, headers, _ = handshake(request)
        assert status == 426
        assert headers["sec-websocket-version"] == ["13"]

    def test_missing_upgrade_is_426_with_upgrade_header(self) -> None:
        # RFC 9110 section 15.5.22: a 426 "MUST send an Upgrade header field".
        _, status, headers, _ = handshake(request_bytes(drop=["Upgrade"]))
        assert status == 426
        assert headers["upgrade"] == ["websocket"]

    def test_method_other_than_get_is_405(self) -> None:
        server, status, headers, body = handshake(request_bytes(method="POST"))
        assert status == 405
        # RFC 9110 section 15.5.6: a 405 "MUST generate an Allow header field".
        assert headers["allow"] == ["GET"]
        assert_rejected(server, 405, body, InvalidMessage)

    def test_rejection_by_the_application(self) -> None:
        server = ServerConnection()
        server.receive_data(request_bytes())
        server.events_received()
        server.send_response(server.reject(401, "Who are you?"))
        status, headers, body = parse_http_response(b"".join(server.data_to_send()))
        assert (status, body) == (401, b"Who are you?\n")
        assert headers["server"][0].startswith("hubbub/")
        assert server.state is State.CLOSED
        assert server.handshake_exc is not None
        assert "401" in str(server.handshake_exc)

    def test_reject_with_headers_and_bytes(self) -> None:
        headers = Headers([("Content-Type", "application/json"), ("Server", "mine")])
        response = ServerConnection().reject(404, b'{"error": "no"}', headers)
        assert response.body == b'{"error": "no"}'
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Server"] == "mine"
        assert response.headers["Content-Length"] == "15"
        assert response.headers["Connection"] == "close"

    def test_reject_with_unknown_status(self) -> None:
        response = ServerConnection().reject(599, "odd")
        assert response.reason == "Unknown"

    def test_fail_during_handshake_is_500(self) -> None:
        server = ServerConnection()
        server.receive_data(request_bytes())
        server.fail(1011, "handler crashed")
        status, _, body = parse_http_response(b"".join(server.data_to_send()))
        assert (status, body) == (500, b"handler crashed\n")
        assert server.state is State.CLOSED
        server.fail()  # again: nothing more to send
        assert server.data_to_send() == []
        assert server.eof_sent


class TestSubprotocols:
    def offer(self, *offers: str, server: ServerConnection) -> tuple[int, dict[str, list[str]]]:
        extra = [("Sec-WebSocket-Protocol", o) for o in offers]
        _, status, headers, _ = handshake(request_bytes(extra=extra), server)
        return status, headers

    def test_server_preference_wins(self) -> None:
        server = ServerConnection(subprotocols=["v2", "v1"])
        status, headers = self.offer("v1, v2", server=server)
        assert status == 101
        assert headers["sec-websocket-protocol"] == ["v2"]
        assert server.subprotocol == "v2"

    def test_offers_in_several_fields(self) -> None:
        server = ServerConnection(subprotocols=["chat"])
        status, headers = self.offer("a", "b, chat", server=server)
        assert status == 101
        assert headers["sec-websocket-protocol"] == ["chat"]

    def test_no_common_subprotocol_is_accepted_without_one(self) -> None:
        server = ServerConnection(subprotocols=["chat"])
        status, headers = self.offer("other", server=server)
        assert status == 101
        assert "sec-websocket-protocol" not in headers
        assert server.subprotocol is None

    def test_client_offering_none(self) -> None:
        server = ServerConnection(subprotocols=["chat"])
        status, headers = self.offer(server=server)
        assert status == 101
        assert "sec-websocket-protocol" not in headers

    def test_server_supporting_none(self) -> None:
        status, headers = self.offer("chat", server=ServerConnection())
        assert status == 101
        assert "sec-websocket-protocol" not in headers

    @pytest.mark.parametrize("offers", [(), ("other",)])
    def test_subprotocol_required(self, offers: tuple[str, ...]) -> None:
        server = ServerConnection(subprotocols=["chat", "superchat"], subprotocol_required=True)
        status, _ = self.offer(*offers, server=server)
        assert status == 400
        assert isinstance(server.handshake_exc, NegotiationError)
        assert "chat, superchat" in str(server.handshake_exc)

    def test_custom_selector(self) -> None:
        seen = []

        def select(offered: Sequence[str], supported: Sequence[str]) -> str | None:
            seen.append((list(offered), list(supported)))
            return offered[-1]

        server = ServerConnection(subprotocols=["a"], select_subprotocol=select)
        status, headers = self.offer("a, b, c", server=server)
        assert status == 101
        assert headers["sec-websocket-protocol"] == ["c"]
        assert seen == [(["a", "b", "c"], ["a"])]

    def test_selector_choosing_something_not_offered(self) -> None:
        # Section 4.2.2: the server's answer must be one the client offered.
        # A selector that breaks that is a bug on the server: 500.
        server = ServerConnection(select_subprotocol=lambda offered, supported: "evil")
        status, headers = self.offer("a", server=server)
        assert status == 500
        assert "sec-websocket-protocol" not in headers
        assert isinstance(server.handshake_exc, NegotiationError)


class TestOrigins:
    def run(self, origins: Sequence[str | None] | None, *sent: str) -> ServerConnection:
        extra = [("Origin", o) for o in sent]
        server, _, _, _ = handshake(request_bytes(extra=extra), ServerConnection(origins=origins))
        return server

    def test_allowed(self) -> None:
        assert self.run(["https://a.example"], "https://a.example").state is State.OPEN

    def test_any_by_default(self) -> None:
        assert self.run(None, "https://evil.example").state is State.OPEN
        assert self.run(None).state is State.OPEN

    def test_refused_with_403(self) -> None:
        server = ServerConnection(origins=["https://a.example"])
        server, status, _, body = handshake(
            request_bytes(extra=[("Origin", "https://evil.example")]), server
        )
        assert status == 403
        assert_rejected(server, 403, body, InvalidOrigin)
        assert b"evil.example" in body

    def test_missing_origin(self) -> None:
        assert self.run(["https://a.example"]).state is State.CLOSED
        assert self.run(["https://a.example", None]).state is State.OPEN

    def test_two_origins(self) -> None:
        server = self.run(["https://a.example"], "https://a.example", "https://a.example")
        assert isinstance(server.handshake_exc, InvalidOrigin)


def test_check_key_directly() -> None:
    assert check_key(Headers([("Sec-WebSocket-Key", CLIENT_KEY)])) == CLIENT_KEY
    with pytest.raises(InvalidHeader):
        check_key(Headers([("Sec-WebSocket-Key", "ä" * 24)]))


def test_open_connection_reads_frames() -> None:
    server = ServerConnection()
    server_handshake(server)
    server.data_to_send()
    server.receive_data(client_frame(OP_TEXT, b"hi"))
    assert server.events_received() == ["hi"]
    server.send_text("back")
    assert [f.payload for f in sent_frames(server)] == [b"back"]
