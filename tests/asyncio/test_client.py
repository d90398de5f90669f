"""connect(): the request on the wire and every way the opening handshake can fail."""

from __future__ import annotations

import asyncio
import socket

import pytest
from asyncio_helpers import (
    FAST,
    OP_CLOSE,
    OP_TEXT,
    RawServer,
    build_frame,
    running_server,
    url,
)

from hubbub.asyncio import connect, serve
from hubbub.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHeader,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
)


@pytest.mark.both_loops
async def test_runs_on_the_loop_it_is_parametrized_with(request: pytest.FixtureRequest) -> None:
    loop_module = type(asyncio.get_running_loop()).__module__
    assert ("uvloop" in loop_module) == ("[uvloop]" in request.node.name)


async def test_request_on_the_wire() -> None:
    async with RawServer() as raw:
        attempt = asyncio.ensure_future(
            connect(
                raw.url + "path?q=1",
                origin="https://app.example",
                subprotocols=["a", "b"],
                additional_headers=[("X-Token", "t0k3n")],
                **FAST,
            )
        )
        peer = await raw.accept()
        request = await peer.accept_handshake()
        ws = await attempt
        assert request.start_line == "GET /path?q=1 HTTP/1.1"
        headers = request.headers
        assert headers["host"] == f"127.0.0.1:{raw.port}"
        assert headers["upgrade"].lower() == "websocket"
        assert "upgrade" in headers["connection"].lower()
        assert headers["sec-websocket-version"] == "13"
        assert headers["origin"] == "https://app.example"
        assert headers["sec-websocket-protocol"] == "a, b"
        assert headers["x-token"] == "t0k3n"
        assert headers["user-agent"].startswith("hubbub/")
        assert ws.request is not None
        assert ws.request.path == "/path?q=1"
        await peer.close_handshake()
        await asyncio.wait_for(ws.wait_closed(), 1)


async def test_frames_right_behind_the_101_are_delivered() -> None:
    async with RawServer() as raw:
        attempt = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        request = await peer.read_http()
        from asyncio_helpers import accept_key

        response = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(request.headers['sec-websocket-key'])}\r\n\r\n"
        ).encode()
        # One write: the response, a message and a close frame.
        await peer.send(
            response + build_frame(OP_TEXT, b"early") + build_frame(OP_CLOSE, b"\x03\xe8bye")
        )
        ws = await attempt
        assert await ws.recv() == "early"
        frame = await peer.read_frame()
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1000)
        peer.close()
        with pytest.raises(ConnectionClosedOK) as info:
            await ws.recv()
        assert (info.value.code, info.value.reason) == (1000, "bye")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (dict(accept="d3JvbmcgYWNjZXB0IGtleSE="), InvalidHeader),
        (dict(extra=[("Sec-WebSocket-Protocol", "not-offered")]), NegotiationError),
        (dict(extra=[("Sec-WebSocket-Extensions", "x-unknown")]), NegotiationError),
        (dict(status="404 Not Found", extra=[("Content-Length", "0")]), InvalidStatus),
    ],
    ids=["accept", "subprotocol", "extension", "status"],
)
async def test_bad_handshake_answers_are_refused(answer: dict[str, object], error: type) -> None:
    async with RawServer() as raw:
        attempt = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        await peer.accept_handshake(**answer)  # type: ignore[arg-type]
        with pytest.raises(error):
            await attempt
        # The client closed the TCP connection it could not use.
        assert await peer.read_to_eof() == b""


async def test_rejection_body_is_in_the_error() -> None:
    async with running_server(origins=["https://only.example"]) as server:
        with pytest.raises(InvalidStatus) as info:
            await connect(url(server), origin="https://other.example", **FAST)
    assert "403" in str(info.value)
    assert "origin" in str(info.value).lower()


async def test_server_closing_during_the_handshake() -> None:
    async with RawServer() as raw:
        attempt = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        await peer.read_http()
        await peer.send(b"HTTP/1.1 101 Switching")
        peer.close()
        with pytest.raises(InvalidMessage):
            await attempt


async def test_connection_refused_and_invalid_uri() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await connect(f"ws://127.0.0.1:{port}/", **FAST)
    for bad in ("http://localhost/", "ws://", "ws://host/#fragment", "not a url"):
        with pytest.raises(InvalidURI):
            connect(bad)
    with pytest.raises(ValueError, match="compression"):
        connect("ws://localhost/", compression="brotli")


async def test_masked_frame_from_the_server_is_a_protocol_error() -> None:
    """Section 5.1: a client MUST close a connection that receives a masked frame."""
    async with RawServer() as raw:
        attempt = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await attempt
        await peer.send(build_frame(OP_TEXT, b"masked", mask=b"abcd"))
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.sent_code == 1002
        frame = await peer.read_frame()
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1002)


async def test_connect_and_serve_with_preexisting_sockets() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    async with serve(lambda ws: ws.send("via sock"), sock=listener, **FAST) as server:
        assert server.port == port
        client_sock = socket.create_connection(("127.0.0.1", port))
        async with connect("ws://example.test/", sock=client_sock, **FAST) as ws:
            assert await ws.recv() == "via sock"
            assert ws.request is not None
            assert ws.request.headers["Host"] == "example.test"


async def test_async_with_closes_the_connection_when_the_body_raises() -> None:
    async with running_server() as server:
        with pytest.raises(ZeroDivisionError):
            async with connect(url(server), **FAST) as ws:
                1 / 0  # noqa: B018
        assert ws.ready_state == 3
        assert ws.close_code == 1000


def test_unknown_client_option_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="max_queu"):
        connect("ws://127.0.0.1:1/", max_queu=3)
