"""``hubbub.asyncio.WebSocket``: the browser's API on the running loop, against real servers."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import hubbub.asyncio
from client_peers import (
    ECHO_SERVERS,
    FAST,
    echo_server,
    hubbub_server,
    raw_server,
    respond,
    websockets_server,
)
from hubbub.asyncio import WebSocket
from hubbub.browser import CloseEvent, ErrorEvent, Event, MessageEvent
from hubbub.exceptions import InvalidState, InvalidStatus


@pytest.fixture(params=ECHO_SERVERS)
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    with echo_server(request.param) as port:
        yield f"ws://127.0.0.1:{port}/"


class Recorder:
    def __init__(self, ws: WebSocket) -> None:
        self.events: list[Event] = []
        self.threads: set[threading.Thread] = set()
        for kind in ("open", "message", "error", "close"):
            ws.add_event_listener(kind, self)

        self.states: list[int] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread())
        self.states.append(event.target.ready_state)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    async def wait(self, kind: str, count: int = 1, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.types.count(kind) < count:
            assert time.monotonic() < deadline, f"no {count} {kind} events: {self.types}"
            await asyncio.sleep(0.005)


def open_ws(url: str, *args: Any, **options: Any) -> tuple[WebSocket, Recorder]:
    ws = WebSocket(url, *args, **{**FAST, **options})
    return ws, Recorder(ws)


async def test_open_messages_close_in_order(url: str) -> None:
    ws, rec = open_ws(url)
    assert ws.ready_state == WebSocket.CONNECTING
    with pytest.raises(InvalidState):
        ws.send("too early")
    await rec.wait("open")
    assert ws.ready_state == WebSocket.OPEN
    ws.send("text")
    ws.send(b"\x00binary")
    await rec.wait("message", 2)
    ws.close(4000, "bye")
    # close() returns at once: nothing happens until the loop runs again.
    assert ws.ready_state == WebSocket.CLOSING
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.ready_state == WebSocket.CLOSED
    assert rec.types == ["open", "message", "message", "close"]
    assert [e.data for e in rec.events if isinstance(e, MessageEvent)] == ["text", b"\x00binary"]
    close = rec.events[-1]
    assert isinstance(close, CloseEvent)
    assert (close.code, close.was_clean) == (4000, True)
    # Listeners ran on the loop's thread.
    assert rec.threads == {threading.current_thread()}


async def test_server_closes(url: str) -> None:
    ws, rec = open_ws(url)
    await rec.wait("open")
    ws.send("close 4002 done")
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert rec.types == ["open", "close"]
    close = rec.events[-1]
    assert isinstance(close, CloseEvent)
    assert (close.code, close.reason, close.was_clean) == (4002, "done", True)


async def test_buffered_amount_counts_unsent_bytes() -> None:
    with hubbub_server() as server:
        ws, rec = open_ws(f"ws://127.0.0.1:{server.port}")
        await rec.wait("open")
        # send() never blocks: once the kernel's buffer is full (its size varies), the
        # rest waits in the transport, and buffered_amount says how much.
        sent = 0
        chunk = os.urandom(2**19)  # incompressible: permessage-deflate is on by default
        while ws.buffered_amount == 0 and sent < 256:
            ws.send(chunk)
            sent += 1
        assert ws.buffered_amount > 0
        await rec.wait("message", sent, timeout=30)
        assert ws.buffered_amount == 0
        ws.close()
        await asyncio.wait_for(ws.wait_closed(), 5)


async def test_coroutine_listeners_run_as_tasks() -> None:
    seen: list[str] = []

    async def on_message(event: MessageEvent) -> None:
        await asyncio.sleep(0)
        seen.append(str(event.data))

    with hubbub_server() as server:
        ws, rec = open_ws(f"ws://127.0.0.1:{server.port}")
        ws.on_message = on_message
        await rec.wait("open")
        ws.send("async listener")
        await rec.wait("message")
        ws.close()
        await asyncio.wait_for(ws.wait_closed(), 5)
        await asyncio.sleep(0.01)
    assert seen == ["async listener"]


async def test_connection_refused_fires_error_then_close() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ws, rec = open_ws(f"ws://127.0.0.1:{port}")
    await asyncio.wait_for(ws.wait_closed(), 5)
    assert rec.types == ["error", "close"]
    error, close = rec.events
    assert isinstance(error, ErrorEvent)
    assert isinstance(error.error, OSError)
    assert isinstance(close, CloseEvent)
    assert (close.code, close.was_clean) == (1006, False)
    # WHATWG: readyState is CLOSED (3) inside the error listener, not CONNECTING.
    assert rec.states == [3, 3]


async def test_403_fires_error_then_close() -> None:
    with hubbub_server(respond(403)) as server:
        ws, rec = open_ws(f"ws://127.0.0.1:{server.port}")
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert rec.types == ["error", "close"]
    assert isinstance(rec.events[0], ErrorEvent)
    assert isinstance(rec.events[0].error, InvalidStatus)
    assert rec.events[1].code == 1006  # type: ignore[attr-defined]


async def test_protocol_error_fires_error_then_close() -> None:
    with raw_server(b"\x82\x01A" + b"\x81\x02\xc3\x28") as port:
        ws, rec = open_ws(f"ws://127.0.0.1:{port}")
        ws.binary_type = "bytearray"
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert rec.types == ["open", "message", "error", "close"]
    assert rec.events[1].data == bytearray(b"A")  # type: ignore[attr-defined]
    assert rec.events[-1].was_clean is False  # type: ignore[attr-defined]
    assert rec.states == [1, 1, 3, 3]


async def test_keepalive_timeout_error_sees_closed() -> None:
    # raw_server never answers the client's keepalive ping.
    with raw_server() as port:
        ws, rec = open_ws(f"ws://127.0.0.1:{port}", ping_interval=0.1, ping_timeout=0.1)
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert rec.types == ["open", "error", "close"]
    # Not CLOSING (2): the error leads to close, so the state is already CLOSED.
    assert rec.states == [1, 3, 3]


async def test_close_while_connecting() -> None:
    with hubbub_server() as server:
        ws, rec = open_ws(f"ws://127.0.0.1:{server.port}")
        ws.close()
        assert ws.ready_state == WebSocket.CLOSING
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert rec.types == ["error", "close"]


async def test_protocol_and_extensions() -> None:
    with websockets_server(subprotocols=["chat.v1"]) as port:
        ws, rec = open_ws(f"ws://127.0.0.1:{port}", "chat.v1", compression="deflate")
        await rec.wait("open")
        assert ws.protocol == "chat.v1"
        assert ws.extensions.startswith("permessage-deflate")
        with pytest.raises(ValueError, match="close code"):
            ws.close(1001)
        ws.close()
        await asyncio.wait_for(ws.wait_closed(), 5)


def test_exported() -> None:
    assert hubbub.asyncio.WebSocket is WebSocket
