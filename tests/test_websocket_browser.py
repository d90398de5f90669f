"""``hubbub.WebSocket``: the browser's API on a background thread, against real servers."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import hubbub
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
from hubbub import WebSocket
from hubbub.browser import CloseEvent, ErrorEvent, Event, MessageEvent
from hubbub.exceptions import InvalidState, InvalidStatus, InvalidURI


@pytest.fixture(params=ECHO_SERVERS)
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    with echo_server(request.param) as port:
        yield f"ws://127.0.0.1:{port}/"


class Recorder:
    """Records every event of a WebSocket, and on which thread it ran.

    It is given to the constructor as every handler: a listener added after the
    constructor returns could miss the events of a connection that fails at once.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.threads: set[threading.Thread] = set()
        self.states: list[int] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread())
        self.states.append(event.target.ready_state)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def wait(self, kind: str, count: int = 1) -> None:
        wait_until(lambda: self.types.count(kind) >= count)


def open_ws(url: str, *args: Any, **options: Any) -> tuple[WebSocket, Recorder]:
    rec = Recorder()
    handlers = dict(on_open=rec, on_message=rec, on_error=rec, on_close=rec)
    ws = WebSocket(url, *args, **handlers, **{**FAST, **options})
    return ws, rec


def test_open_messages_close_in_order(url: str) -> None:
    ws, rec = open_ws(url)
    assert ws.ready_state == WebSocket.CONNECTING == 0
    with pytest.raises(InvalidState):
        ws.send("too early")
    rec.wait("open")
    assert ws.ready_state == WebSocket.OPEN == 1
    ws.send("text")
    ws.send(b"\x00binary")
    rec.wait("message", 2)
    ws.close(4000, "bye")
    # CLOSING at once; loopback may already have finished the closing handshake.
    assert ws.ready_state in (WebSocket.CLOSING, WebSocket.CLOSED)
    assert WebSocket.CLOSING == 2
    assert ws.wait_closed(5)
    assert ws.ready_state == WebSocket.CLOSED == 3
    assert rec.types == ["open", "message", "message", "close"]
    messages = [e for e in rec.events if isinstance(e, MessageEvent)]
    assert [m.data for m in messages] == ["text", b"\x00binary"]
    assert messages[0].origin == url.rstrip("/")
    close = rec.events[-1]
    assert isinstance(close, CloseEvent)
    # The code and reason are the server's, from its echo (RFC 6455 section 7.1.5-6):
    # websockets and ws echo the reason too, hubbub only the code.
    assert (close.code, close.was_clean) == (4000, True)
    assert close.reason in ("bye", "")
    # Listeners run on the WebSocket's own thread, one thread for all of them.
    assert len(rec.threads) == 1
    assert threading.current_thread() not in rec.threads
    assert rec.states == [1, 1, 1, 3]
    ws.send("after close")  # discarded silently, as in the browser


def test_server_closes(url: str) -> None:
    ws, rec = open_ws(url)
    rec.wait("open")
    ws.send("close 4001 server says bye")
    assert ws.wait_closed(5)
    assert rec.types == ["open", "close"]
    close = rec.events[-1]
    assert isinstance(close, CloseEvent)
    assert (close.code, close.reason, close.was_clean) == (4001, "server says bye", True)


def test_close_without_code(url: str) -> None:
    ws, rec = open_ws(url)
    rec.wait("open")
    ws.close()
    assert ws.wait_closed(5)
    close = rec.events[-1]
    assert isinstance(close, CloseEvent)
    # A close frame without a code is echoed without one: 1005 (RFC 6455 7.1.5).
    assert (close.code, close.was_clean) == (1005, True)


@pytest.mark.parametrize(
    ("binary_type", "kind"),
    [("bytes", bytes), ("bytearray", bytearray), ("memoryview", memoryview)],
)
def test_binary_type(binary_type: str, kind: type) -> None:
    with hubbub_server() as server:
        ws, rec = open_ws(f"ws://127.0.0.1:{server.port}")
        assert ws.binary_type == "bytes"
        ws.binary_type = binary_type
        rec.wait("open")
        ws.send(b"\x01\x02")
        ws.send("text stays str")
        rec.wait("message", 2)
        ws.close()
        assert ws.wait_closed(5)
    data = [e.data for e in rec.events if isinstance(e, MessageEvent)]
    assert type(data[0]) is kind
    assert bytes(data[0]) == b"\x01\x02"
    assert data[1] == "text stays str"
    with pytest.raises(ValueError, match="binary_type"):
        ws.binary_type = "blob"


def test_connection_refused_fires_error_then_close() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ws, rec = open_ws(f"ws://127.0.0.1:{port}")
    assert ws.wait_closed(5)
    assert rec.types == ["error", "close"]
    error, close = rec.events
    assert isinstance(error, ErrorEvent)
    assert isinstance(error.error, ConnectionRefusedError)
    assert isinstance(close, CloseEvent)
    assert (close.code, close.was_clean) == (1006, False)
    assert ws.ready_state == WebSocket.CLOSED
    # WHATWG: readyState is CLOSED (3) inside the error listener, not CONNECTING.
    assert rec.states == [3, 3]


def test_403_fires_error_then_close() -> None:
    with hubbub_server(respond(403)) as server:
        ws, rec = open_ws(f"ws://127.0.0.1:{server.port}")
        assert ws.wait_closed(5)
    assert rec.types == ["error", "close"]
    error = rec.events[0]
    assert isinstance(error, ErrorEvent)
    assert isinstance(error.error, InvalidStatus)
    assert "403" in error.message
    assert rec.events[1].code == 1006  # type: ignore[attr-defined]


def test_protocol_error_fires_error_then_close() -> None:
    # A text message, then a text frame with invalid UTF-8.
    with raw_server(b"\x81\x02ok" + b"\x81\x02\xc3\x28") as port:
        ws, rec = open_ws(f"ws://127.0.0.1:{port}")
        assert ws.wait_closed(5)
    assert rec.types == ["open", "message", "error", "close"]
    close = rec.events[-1]
    assert isinstance(close, CloseEvent)
    assert not close.was_clean
    assert close.code == 1006  # no close frame came back from this server
    assert rec.states == [1, 1, 3, 3]


def test_keepalive_timeout_error_sees_closed() -> None:
    # raw_server never answers the client's keepalive ping.
    with raw_server() as port:
        ws, rec = open_ws(f"ws://127.0.0.1:{port}", ping_interval=0.1, ping_timeout=0.1)
        assert ws.wait_closed(5)
    assert rec.types == ["open", "error", "close"]
    assert "keepalive" in rec.events[1].message  # type: ignore[attr-defined]
    # Not CLOSING (2): the error leads to close, so the state is already CLOSED.
    assert rec.states == [1, 3, 3]


def test_close_while_connecting_fails_the_connection() -> None:
    with hubbub_server() as server:
        ws, rec = open_ws(f"ws://127.0.0.1:{server.port}")
        ws.close()
        assert ws.ready_state in (WebSocket.CLOSING, WebSocket.CLOSED)
        assert ws.wait_closed(5)
    assert rec.types == ["error", "close"]
    assert rec.events[1].code == 1006  # type: ignore[attr-defined]


def test_close_arguments_are_checked() -> None:
    with hubbub_server() as server:
        ws, rec = open_ws(f"ws://127.0.0.1:{server.port}")
        rec.wait("open")
        for code in (999, 1001, 1011, 2999, 5000):
            with pytest.raises(ValueError, match="close code"):
                ws.close(code)
        with pytest.raises(ValueError, match="needs a close code"):
            ws.close(None, "why")
        with pytest.raises(ValueError, match="123 bytes"):
            ws.close(1000, "é" * 62)
        ws.close(3000, "é" * 61)
        assert ws.wait_closed(5)
    assert rec.events[-1].code == 3000  # type: ignore[attr-defined]


def test_invalid_url_and_protocols() -> None:
    with pytest.raises(InvalidURI):
        WebSocket("http://example.com/")
    with pytest.raises(ValueError, match="duplicate"):
        WebSocket("ws://127.0.0.1:1/", ["a", "a"])


def test_protocol_and_extensions() -> None:
    with websockets_server(subprotocols=["chat.v2", "chat.v1"]) as port:
        ws, rec = open_ws(f"ws://127.0.0.1:{port}", ["chat.v1"], compression="deflate")
        rec.wait("open")
        assert ws.protocol == "chat.v1"
        assert ws.extensions.startswith("permessage-deflate")
        assert ws.url == f"ws://127.0.0.1:{port}"
        assert ws.buffered_amount == 0
        ws.close()
        assert ws.wait_closed(5)


def test_handler_properties_and_listeners() -> None:
    calls: list[str] = []

    def first(event: Event) -> None:
        calls.append("first")

    def second(event: Event) -> None:
        calls.append("second")

    def failing(event: Event) -> None:
        calls.append("failing")
        raise RuntimeError("listener bug")

    opened = threading.Event()
    with hubbub_server() as server:
        ws = WebSocket(f"ws://127.0.0.1:{server.port}", on_open=lambda event: opened.set(), **FAST)
        ws.on_message = first
        ws.add_event_listener("message", failing)
        ws.add_event_listener("message", second)
        ws.add_event_listener("message", second)  # duplicate: ignored
        ws.on_message = lambda event: calls.append("replaced")  # keeps the first slot
        once: list[str] = []
        ws.add_event_listener("message", lambda e: once.append(e.data), once=True)
        assert ws.on_message is not first
        assert opened.wait(5)
        ws.send("1")
        wait_until(lambda: calls.count("second") == 1)
        ws.remove_event_listener("message", second)
        ws.on_message = None
        assert ws.on_message is None
        ws.send("2")
        wait_until(lambda: calls.count("failing") == 2)
        ws.close()
        assert ws.wait_closed(5)
    assert calls == ["replaced", "failing", "second", "failing"]
    assert once == ["1"]


def test_listener_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "hubbub.browser")
    with hubbub_server() as server:
        closed = threading.Event()
        ws = WebSocket(
            f"ws://127.0.0.1:{server.port}",
            on_open=lambda event: 1 / 0,
            on_close=lambda event: closed.set(),
            **FAST,
        )
        wait_until(lambda: "ZeroDivisionError" in caplog.text)
        ws.close()
        assert closed.wait(5)


def test_exported() -> None:
    assert hubbub.WebSocket is WebSocket
