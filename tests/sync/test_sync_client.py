"""The blocking client against real servers: websockets, our asyncio server, Node's ws."""

from __future__ import annotations

import collections
import errno
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from client_peers import (
    ECHO_SERVERS,
    FAST,
    echo_server,
    hubbub_server,
    raw_server,
    respond,
    wait_until,
    websockets_server,
)
from hubbub.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeTimeout,
    InvalidStatus,
    InvalidURI,
)
from hubbub.sync.client import connect


@pytest.fixture(params=ECHO_SERVERS)
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    with echo_server(request.param) as port:
        yield f"ws://127.0.0.1:{port}/echo"


def test_text_and_binary(url: str) -> None:
    with connect(url, **FAST) as ws:
        ws.send("héllo")
        assert ws.recv(timeout=5) == "héllo"
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv(timeout=5) == b"\x00\xff" * 1000
        ws.send(bytearray(b"ba"))
        assert ws.recv(timeout=5) == b"ba"
        ws.send(["frag", "mented"])
        assert ws.recv(timeout=5) == "fragmented"
        ws.send([b"a", memoryview(b"b")])
        assert ws.recv(timeout=5) == b"ab"
        assert ws.state == 1
    assert ws.state == 3
    assert ws.close_code == 1000


def test_server_closes_with_error_code(url: str) -> None:
    with connect(url, **FAST) as ws:
        ws.send("close 4001 go away")
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=5)
    assert info.value.code == 4001
    assert info.value.reason == "go away"
    assert ws.close_code == 4001


def test_iteration_ends_on_normal_close(url: str) -> None:
    with connect(url, **FAST) as ws:
        ws.send("one")
        ws.send("two")
        ws.send("close 1000 done")
        assert list(ws) == ["one", "two"]
    assert (ws.close_code, ws.close_reason) == (1000, "done")
    with pytest.raises(ConnectionClosedOK):
        ws.recv()
    with pytest.raises(ConnectionClosedOK):
        ws.send("too late")


def test_client_close_code(url: str) -> None:
    ws = connect(url, **FAST)
    ws.close(4000, "bye")
    # The server echoes the close frame (RFC 6455 section 5.5.1).
    assert ws.close_code == 4000
    assert ws.state == 3


def test_ping_returns_latency(url: str) -> None:
    with connect(url, **FAST) as ws:
        latency = ws.ping(timeout=5)
        assert 0 < latency < 5
        assert ws.latency == latency
        assert 0 < ws.ping(b"custom", timeout=5) < 5


def test_recv_timeout() -> None:
    with hubbub_server() as server, connect(f"ws://127.0.0.1:{server.port}", **FAST) as ws:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.1)
        assert time.monotonic() - started < 2
        ws.send("still works")
        assert ws.recv(timeout=5) == "still works"


def test_send_from_many_threads() -> None:
    """Frames of concurrent senders never interleave: every message comes back intact."""
    threads, per_thread = 8, 50
    with hubbub_server() as server, connect(f"ws://127.0.0.1:{server.port}", **FAST) as ws:

        def sender(n: int) -> None:
            for i in range(per_thread):
                if i % 2:
                    ws.send(f"{n}-{i}-" + "x" * (i * 37))
                else:
                    ws.send([f"{n}-", f"{i}-", "y" * i])

        workers = [threading.Thread(target=sender, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        received = [ws.recv(timeout=10) for _ in range(threads * per_thread)]
        for worker in workers:
            worker.join()
    expected = collections.Counter(
        f"{n}-{i}-" + ("x" * (i * 37) if i % 2 else "y" * i)
        for n in range(threads)
        for i in range(per_thread)
    )
    assert collections.Counter(received) == expected


def test_subprotocol_and_headers() -> None:
    seen: dict[str, Any] = {}

    def process_request(connection: Any, request: Any) -> None:
        seen["x-token"] = request.headers.get("X-Token")
        seen["agent"] = request.headers.get("User-Agent")

    with (
        websockets_server(
            subprotocols=["chat.v2", "chat.v1"], process_request=process_request
        ) as port,
        connect(
            f"ws://127.0.0.1:{port}",
            subprotocols=["chat.v1"],
            additional_headers=[("X-Token", "abc")],
            **FAST,
        ) as ws,
    ):
        assert ws.subprotocol == "chat.v1"
        assert ws.request is not None
        assert ws.response is not None
        assert ws.response.status == 101
    assert seen["x-token"] == "abc"
    assert seen["agent"].startswith("hubbub/")


def test_compression_deflate() -> None:
    with (
        websockets_server() as port,
        connect(f"ws://127.0.0.1:{port}", compression="deflate", **FAST) as ws,
    ):
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        message = "compress me " * 500
        ws.send(message)
        assert ws.recv(timeout=5) == message


def test_max_size() -> None:
    with (
        websockets_server() as port,
        connect(f"ws://127.0.0.1:{port}", max_size=1000, **FAST) as ws,
    ):
        ws.send("x" * 2000)  # echoed back: too big for us
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=5)
    assert info.value.sent_code == 1009


def test_max_queue_pauses_reading() -> None:
    """With max_queue messages unread, the reader stops; nothing is lost when it resumes."""
    with (
        hubbub_server() as server,
        connect(f"ws://127.0.0.1:{server.port}", max_queue=2, compression=None, **FAST) as ws,
    ):
        # Messages larger than one read (64 KiB), so that a read adds one at most
        # (uncompressed: deflate would shrink them to a few hundred bytes).
        messages = [f"{i:03}" + "x" * 100_000 for i in range(30)]
        sender = threading.Thread(target=lambda: [ws.send(m) for m in messages])
        sender.start()
        time.sleep(0.3)
        assert len(ws._messages) <= 3
        assert [ws.recv(timeout=5) for _ in messages] == messages
        sender.join()


def test_403_rejection() -> None:
    with hubbub_server(respond(403)) as server, pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{server.port}", **FAST)
    assert info.value.response.status == 403


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError) as info:
        connect(f"ws://127.0.0.1:{port}", **FAST)
    # Like the asyncio client's message, it says where (issue 18, finding 7).
    assert f"127.0.0.1:{port}" in str(info.value)
    assert info.value.errno == errno.ECONNREFUSED


def test_invalid_uri() -> None:
    with pytest.raises(InvalidURI):
        connect("http://example.com")


def test_open_timeout() -> None:
    """A server that accepts TCP but never answers the handshake."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(HandshakeTimeout) as info:
            connect(f"ws://127.0.0.1:{port}", open_timeout=0.2, proxy=None)
        assert time.monotonic() - started < 2
        assert "TLS" not in str(info.value)


def test_open_timeout_with_wss_suggests_tls() -> None:
    """A server that never answers a ClientHello: the message names the likely cause."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(HandshakeTimeout, match="does not speak TLS on this port"):
            connect(f"wss://127.0.0.1:{port}", open_timeout=0.2, proxy=None)


def test_keepalive_ping_timeout() -> None:
    """A server that completes the handshake and then never answers pings: 1011."""
    with raw_server() as port:
        ws = connect(
            f"ws://127.0.0.1:{port}",
            ping_interval=0.05,
            ping_timeout=0.1,
            close_timeout=0.2,
            proxy=None,
        )
        try:
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(timeout=5)
            assert info.value.sent_code == 1011
        finally:
            ws.close()


def test_messages_before_a_protocol_error_are_delivered() -> None:
    """Frames right behind the 101, then invalid UTF-8: messages first, then 1007."""
    frames = b"\x81\x05hello" + b"\x82\x02\x00\x01" + b"\x81\x02\xc3\x28"
    with raw_server(frames) as port:
        ws = connect(f"ws://127.0.0.1:{port}", **FAST)
        assert ws.recv(timeout=5) == "hello"
        assert ws.recv(timeout=5) == b"\x00\x01"
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=5)
        assert info.value.sent_code == 1007
        ws.close()


def test_close_with_a_full_queue() -> None:
    """Unread messages do not keep close() from completing the closing handshake."""
    with hubbub_server() as server:
        ws = connect(f"ws://127.0.0.1:{server.port}", max_queue=1, **FAST)
        for i in range(20):
            ws.send(f"unread {i}")
        wait_until(lambda: len(ws._messages) >= 1)
        started = time.monotonic()
        ws.close()
        assert time.monotonic() - started < 1.0  # well under close_timeout (2 s)
        assert ws.close_code == 1000
