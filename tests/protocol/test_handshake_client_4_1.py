"""RFC 6455 sections 4.1 and 4.2.2: the client side of the opening handshake."""

from __future__ import annotations

import base64

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    accept_for,
    assert_failed,
    parse_http_request,
    response_bytes,
    sent_frames,
    server_frame,
)

from hubbub.exceptions import (
    InvalidHeader,
    InvalidMessage,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
)
from hubbub.protocol import ClientConnection, Headers, Ping, Response, State


def started(uri: str = "ws://example.com/chat", **kwargs: object) -> ClientConnection:
    client = ClientConnection(uri, **kwargs)  # type: ignore[arg-type]
    client.send_request()
    return client


def request_of(client: ClientConnection) -> tuple[str, str, dict[str, list[str]]]:
    return parse_http_request(b"".join(client.data_to_send()))


class TestRequest:
    def test_required_headers(self) -> None:
        client = started()
        method, target, headers = request_of(client)
        assert (method, target) == ("GET", "/chat")
        assert headers["host"] == ["example.com"]
        assert headers["upgrade"] == ["websocket"]
        assert headers["connection"] == ["Upgrade"]
        assert headers["sec-websocket-version"] == ["13"]
        (key,) = headers["sec-websocket-key"]
        assert len(base64.b64decode(key, validate=True)) == 16
        assert key == client.key
        assert headers["user-agent"][0].startswith("hubbub/")
        for optional in ("origin", "sec-websocket-protocol", "sec-websocket-extensions"):
            assert optional not in headers
        assert client.state is State.CONNECTING

    def test_each_connection_has_its_own_key(self) -> None:
        # Section 4.1: "a nonce ... randomly selected ... for each connection".
        keys = {ClientConnection("ws://h/").key for _ in range(20)}
        assert len(keys) == 20

    @pytest.mark.parametrize(
        ("uri", "host", "target"),
        [
            ("ws://example.com", "example.com", "/"),
            ("ws://example.com:80/", "example.com", "/"),
            ("ws://example.com:8080/a?b=c", "example.com:8080", "/a?b=c"),
            ("wss://example.com:443/", "example.com", "/"),
            ("wss://example.com:80/", "example.com:80", "/"),
            ("ws://[::1]:9000/", "[::1]:9000", "/"),
            ("ws://127.0.0.1/x", "127.0.0.1", "/x"),
        ],
    )
    def test_host_and_target(self, uri: str, host: str, target: str) -> None:
        _, got_target, headers = request_of(started(uri))
        assert headers["host"] == [host]
        assert got_target == target

    def test_options(self) -> None:
        client = started(
            origin="https://app.example",
            subprotocols=["v2", "v1"],
            additional_headers=[("X-Token", "t"), ("User-Agent", "custom/1")],
        )
        _, _, headers = request_of(client)
        assert headers["origin"] == ["https://app.example"]
        assert headers["sec-websocket-protocol"] == ["v2, v1"]
        assert headers["x-token"] == ["t"]
        assert headers["user-agent"] == ["custom/1"]

    def test_additional_headers_as_headers(self) -> None:
        _, _, headers = request_of(started(additional_headers=Headers([("X-A", "1")])))
        assert headers["x-a"] == ["1"]

    def test_no_user_agent(self) -> None:
        _, _, headers = request_of(started(user_agent=None))
        assert "user-agent" not in headers

    def test_user_info_becomes_basic_auth(self) -> None:
        _, _, headers = request_of(started("ws://al%40ice:s3cr%3At@example.com/"))
        (auth,) = headers["authorization"]
        scheme, token = auth.split(" ")
        assert scheme == "Basic"
        assert base64.b64decode(token) == b"al@ice:s3cr:t"

    @pytest.mark.parametrize("name", ["", "a b", "a,b", "a;b", 'a"b', "a\tb"])
    def test_invalid_subprotocol_names(self, name: str) -> None:
        with pytest.raises(ValueError, match="subprotocol"):
            ClientConnection("ws://h/", subprotocols=[name])

    def test_sending_before_the_handshake_is_invalid_state(self) -> None:
        with pytest.raises(InvalidState):
            started().send_binary(b"too early")


class TestResponse:
    def test_accepted(self) -> None:
        client = started()
        client.data_to_send()
        client.receive_data(response_bytes(client.key))
        (response,) = client.events_received()
        assert isinstance(response, Response)
        assert response.status == 101
        assert client.response is response
        assert client.state is State.OPEN
        assert client.handshake_exc is None
        client.send_text("hi")
        assert [f.payload for f in sent_frames(client)] == [b"hi"]

    @pytest.mark.parametrize("chunk_size", [1, 2, 13])
    def test_split_across_many_calls(self, chunk_size: int) -> None:
        client = started()
        data = response_bytes(client.key) + server_frame(OP_TEXT, b"welcome")
        for i in range(0, len(data), chunk_size):
            client.receive_data(data[i : i + chunk_size])
        events = client.events_received()
        assert isinstance(events[0], Response)
        assert events[1:] == ["welcome"]

    def test_frames_right_behind_the_101(self) -> None:
        client = started()
        client.data_to_send()
        data = response_bytes(client.key) + server_frame(OP_PING, b"p")
        data += server_frame(OP_BINARY, b"b")
        client.receive_data(data)
        events = client.events_received()
        assert isinstance(events[0], Response)
        assert events[1:] == [Ping(b"p"), b"b"]
        (pong,) = sent_frames(client)
        assert (pong.opcode, pong.payload, pong.masked) == (OP_PONG, b"p", True)

    def test_invalid_frame_right_behind_the_101(self) -> None:
        client = started()
        client.data_to_send()
        client.receive_data(response_bytes(client.key) + server_frame(OP_TEXT, b"x", rsv3=True))
        assert isinstance(client.events_received()[0], Response)
        assert_failed(client, 1002)

    def test_tokens_are_case_insensitive(self) -> None:
        client = started()
        extra = [("Upgrade", "WebSocket"), ("Connection", "keep-alive, UPGRADE")]
        client.receive_data(response_bytes(client.key, drop=["Upgrade", "Connection"], extra=extra))
        assert client.state is State.OPEN

    @pytest.mark.parametrize("body", [b"", b"Go away: you are not welcome here."])
    def test_status_other_than_101(self, body: bytes) -> None:
        # Section 4.1: "If the status code received from the server is not 101,
        # the client handles the response per HTTP procedures."
        client = started()
        client.data_to_send()
        extra = [("Content-Length", str(len(body)))]
        client.receive_data(
            response_bytes(
                client.key,
                status="403 Forbidden",
                extra=extra,
                drop=["Upgrade", "Connection"],
                body=body,
            )
        )
        (response,) = client.events_received()
        assert isinstance(response, Response)
        assert (response.status, response.body) == (403, body)
        exc = client.handshake_exc
        assert isinstance(exc, InvalidStatus)
        assert exc.response is response
        assert "403" in str(exc)
        if body:
            assert body.decode() in str(exc)
        assert client.state is State.CLOSED
        assert client.eof_sent
        assert client.data_to_send() == []
        client.receive_data(b"more")  # ignored
        assert client.events_received() == []

    def test_status_with_body_until_eof(self) -> None:
        client = started()
        client.receive_data(b"HTTP/1.1 503 Service Unavailable\r\n\r\nback soon")
        assert client.events_received() == []
        assert client.state is State.CONNECTING
        client.receive_eof()
        (response,) = client.events_received()
        assert isinstance(response, Response)
        assert response.body == b"back soon"
        assert isinstance(client.handshake_exc, InvalidStatus)
        assert client.state is State.CLOSED

    @pytest.mark.parametrize(
        ("drop", "extra", "exc_type"),
        [
            (["Upgrade"], [], InvalidUpgrade),
            (["Upgrade"], [("Upgrade", "h2c")], InvalidUpgrade),
            (["Connection"], [], InvalidUpgrade),
            (["Connection"], [("Connection", "close")], InvalidUpgrade),
            (["Sec-WebSocket-Accept"], [], InvalidHeader),
            (
                ["Sec-WebSocket-Accept"],
                [("Sec-WebSocket-Accept", accept_for("other"))],
                InvalidHeader,
            ),
            ([], [("Sec-WebSocket-Accept", "x")], InvalidHeader),  # twice
        ],
    )
    def test_invalid_101(
        self, drop: list[str], extra: list[tuple[str, str]], exc_type: type[Exception]
    ) -> None:
        # Section 4.1: otherwise "the client MUST _Fail the WebSocket Connection_".
        client = started()
        client.data_to_send()
        client.receive_data(response_bytes(client.key, drop=drop, extra=extra))
        (response,) = client.events_received()
        assert isinstance(response, Response)
        assert isinstance(client.handshake_exc, exc_type)
        assert client.state is State.CLOSED
        assert client.eof_sent

    def test_malformed_response(self) -> None:
        client = started()
        client.receive_data(b"HTTP/1.1 1O1 Typo\r\n\r\n")
        assert client.events_received() == []
        assert isinstance(client.handshake_exc, InvalidMessage)
        assert client.state is State.CLOSED

    @pytest.mark.parametrize("partial", [b"", b"HTTP/1.1 101 Switching", b"HTTP/1.1 400 Bad\r\n"])
    def test_eof_during_the_handshake(self, partial: bytes) -> None:
        client = started()
        client.receive_data(partial)
        client.receive_eof()
        assert isinstance(client.handshake_exc, InvalidMessage)
        assert client.state is State.CLOSED
        assert client.close_code == 1006
        client.receive_eof()  # idempotent

    def test_eof_during_the_body(self) -> None:
        client = started()
        client.receive_data(b"HTTP/1.1 400 Bad\r\nContent-Length: 10\r\n\r\nabc")
        client.receive_eof()
        assert isinstance(client.handshake_exc, InvalidMessage)


class TestSubprotocol:
    def test_chosen(self) -> None:
        client = started(subprotocols=["v1", "v2"])
        client.receive_data(response_bytes(client.key, extra=[("Sec-WebSocket-Protocol", "v2")]))
        assert client.state is State.OPEN
        assert client.subprotocol == "v2"

    def test_none_chosen(self) -> None:
        client = started(subprotocols=["v1"])
        client.receive_data(response_bytes(client.key))
        assert client.state is State.OPEN
        assert client.subprotocol is None

    @pytest.mark.parametrize(
        ("offered", "answer"), [(["v1"], "v3"), ([], "v1"), (["v1", "v2"], "v1, v2")]
    )
    def test_not_offered(self, offered: list[str], answer: str) -> None:
        # Section 4.1: a subprotocol "that was not present in the client's
        # handshake" fails the connection.
        client = started(subprotocols=offered)
        client.receive_data(response_bytes(client.key, extra=[("Sec-WebSocket-Protocol", answer)]))
        assert isinstance(client.handshake_exc, NegotiationError)
        assert client.state is State.CLOSED


def test_extension_not_offered() -> None:
    # Section 4.1: an extension "not present in the client's handshake" fails
    # the connection.
    client = started()
    client.receive_data(
        response_bytes(client.key, extra=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    )
    assert isinstance(client.handshake_exc, NegotiationError)
    assert client.state is State.CLOSED
    assert client.eof_sent
