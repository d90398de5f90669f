"""Plain HTTP request bodies on the WebSocket port (RFC 9112 section 6.3).

The server core reads a ``Content-Length`` body before it emits the request, so
that ``process_request`` hooks (an HTTP API beside the WebSocket endpoint) see
it; chunked bodies are refused with 411 and oversized ones with 413.
"""

from __future__ import annotations

import pytest

from hubbub.protocol import Request, ServerConnection, State


def head(extra: str = "", method: str = "POST") -> bytes:
    return f"{method} /api/publish HTTP/1.1\r\nHost: example\r\n{extra}\r\n".encode()


def status_of(conn: ServerConnection) -> int:
    out = b"".join(conn.data_to_send())
    return int(out.split(b" ", 2)[1])


def test_body_read_before_the_request_event() -> None:
    conn = ServerConnection()
    conn.receive_data(head("Content-Length: 11\r\n"))
    assert conn.events_received() == []
    conn.receive_data(b"hello")
    assert conn.events_received() == []
    conn.receive_data(b" world")
    [request] = conn.events_received()
    assert isinstance(request, Request)
    assert request.body == b"hello world"
    assert conn.state is State.CONNECTING


def test_body_in_the_same_chunk_as_the_head() -> None:
    conn = ServerConnection()
    conn.receive_data(head("Content-Length: 2\r\n") + b"{}")
    [request] = conn.events_received()
    assert isinstance(request, Request)
    assert request.body == b"{}"


def test_handshake_has_no_body() -> None:
    conn = ServerConnection()
    conn.receive_data(head(method="GET"))
    [request] = conn.events_received()
    assert isinstance(request, Request)
    assert request.body == b""


def test_body_over_max_body_is_413() -> None:
    conn = ServerConnection(max_body=10)
    conn.receive_data(head("Content-Length: 11\r\n"))
    assert conn.events_received() == []
    assert status_of(conn) == 413
    assert conn.state is State.CLOSED
    assert conn.eof_sent


def test_chunked_body_is_411() -> None:
    conn = ServerConnection()
    conn.receive_data(head("Transfer-Encoding: chunked\r\n"))
    assert conn.events_received() == []
    assert status_of(conn) == 411


@pytest.mark.parametrize(
    "value", ["abc", "-1", "1, 2", "١٢"], ids=["letters", "negative", "two", "arabic-digits"]
)
def test_invalid_content_length_is_400(value: str) -> None:
    conn = ServerConnection()
    conn.receive_data(head(f"Content-Length: {value}\r\n"))
    assert conn.events_received() == []
    assert status_of(conn) == 400


def test_body_length_rejections_explain_themselves() -> None:
    # A plain HTTP request (an API route) is not told about WebSocket
    # connections (issue 12, finding 7).
    conn = ServerConnection()
    conn.receive_data(head("Content-Length: websocket\r\n"))
    out = b"".join(conn.data_to_send())
    body = out.split(b"\r\n\r\n", 1)[1]
    assert body == b"Invalid HTTP request: invalid Content-Length\n"


def test_body_length_rejections_of_an_upgrade_say_websocket() -> None:
    # Same wording as every other refused handshake (found by the fuzzer).
    conn = ServerConnection()
    conn.receive_data(head("Upgrade: websocket\r\nContent-Length: websocket\r\n", "GET"))
    out = b"".join(conn.data_to_send())
    body = out.split(b"\r\n\r\n", 1)[1]
    assert body == b"Failed to open a WebSocket connection: invalid Content-Length\n"


def test_a_body_over_the_limit_is_413_in_plain_words() -> None:
    conn = ServerConnection()
    conn.receive_data(head(f"Content-Length: {conn.max_body + 1}\r\n"))
    out = b"".join(conn.data_to_send())
    assert out.startswith(b"HTTP/1.1 413 ")
    assert out.split(b"\r\n\r\n", 1)[1].startswith(b"Invalid HTTP request: request body of ")


@pytest.mark.parametrize("line", [b"GET /\r\n", b"GET\r\n", b"GET / HTTP/0.9\r\n"])
def test_a_request_line_without_a_version_is_refused_at_once(line: bytes) -> None:
    # An HTTP/0.9-style request has no headers: waiting for the blank line
    # after them would only end with the opening timeout (issue 12, finding 7).
    conn = ServerConnection()
    conn.receive_data(line)
    out = b"".join(conn.data_to_send())
    assert out.startswith(b"HTTP/1.1 400 ")
    assert conn.eof_sent


def test_a_request_line_without_a_version_is_refused_byte_by_byte() -> None:
    conn = ServerConnection()
    for byte in b"GET /\r\n":
        assert not conn.eof_sent
        conn.receive_data(bytes([byte]))
    assert b"".join(conn.data_to_send()).startswith(b"HTTP/1.1 400 ")


def test_a_valid_request_line_alone_waits_for_the_headers() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\n")
    assert conn.data_to_send() == []
    assert not conn.eof_sent


def test_repeated_equal_content_length_is_accepted() -> None:
    conn = ServerConnection()
    conn.receive_data(head("Content-Length: 1\r\nContent-Length: 1\r\n") + b"x")
    [request] = conn.events_received()
    assert isinstance(request, Request)
    assert request.body == b"x"


def test_http_1_0_reaches_the_hook_but_never_upgrades() -> None:
    # Health checkers (HAProxy, nginx upstreams) often speak HTTP/1.0: the
    # request is parsed so process_request can answer it...
    conn = ServerConnection()
    conn.receive_data(
        b"GET /healthz HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    [request] = conn.events_received()
    assert isinstance(request, Request)
    assert request.version == "HTTP/1.0"
    # ... but RFC 6455 section 4.1 requires HTTP/1.1 for the handshake.
    response = conn.accept(request)
    assert response.status == 400
    assert b"HTTP/1.1" in response.body
