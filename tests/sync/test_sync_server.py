"""The blocking server, with the websockets client and our own clients as peers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sync_helpers
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidStatus as WsInvalidStatus

from client_peers import FAST
from hubbub.exceptions import ConnectionClosedError, ConnectionClosedOK
from hubbub.protocol.http11 import Request, Response
from hubbub.sync.client import connect
from hubbub.sync.server import Server, ServerConnection, serve


def echo(ws: ServerConnection) -> None:
    for message in ws:
        if message == "fail":
            raise RuntimeError("handler failure")
        ws.send(message)


@contextlib.contextmanager
def running(handler: Callable[[ServerConnection], Any] = echo, **options: Any) -> Iterator[Server]:
    with sync_helpers.running(handler, **options) as server:
        yield server


def test_websockets_client() -> None:
    async def talk(port: int) -> list[Any]:
        async with ws_connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send("hello")
            text = await ws.recv()
            await ws.send(b"\x01\x02")
            data = await ws.recv()
            await ws.send(["a", "b"])
            fragmented = await ws.recv()
        return [text, data, fragmented, ws.close_code]

    with running() as server:
        assert asyncio.run(talk(server.port)) == ["hello", b"\x01\x02", "ab", 1000]


def test_sync_client_and_handler_error() -> None:
    with running() as server, connect(f"ws://127.0.0.1:{server.port}", **FAST) as ws:
        ws.send("ping?")
        assert ws.recv(timeout=5) == "ping?"
        ws.send("fail")
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=5)
    assert info.value.code == 1011


def test_shutdown_closes_with_going_away() -> None:
    with running() as server:
        ws = connect(f"ws://127.0.0.1:{server.port}", **FAST)
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    with pytest.raises(ConnectionClosedOK) as info:
        ws.recv(timeout=5)
    assert info.value.code == 1001


def test_shutdown_drops_connections_that_never_sent_a_request() -> None:
    # Browsers open spare connections ahead of time; shutting down must not
    # wait for their open_timeout.
    with running(open_timeout=8, close_timeout=8) as server:
        spare = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        time.sleep(0.3)  # the server accepts it and waits for the request
        start = time.monotonic()
    assert time.monotonic() - start < 3
    with spare:
        assert spare.recv(10) == b""


def test_process_request_rejects_and_health_check() -> None:
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path_only == "/private":
            return connection.respond(403, "no")
        return None

    async def rejected(port: int) -> int:
        with pytest.raises(WsInvalidStatus) as info:
            async with ws_connect(f"ws://127.0.0.1:{port}/private"):
                pass
        return info.value.response.status_code

    with running(process_request=process_request) as server:
        assert asyncio.run(rejected(server.port)) == 403
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
            assert r.status == 200
            assert r.read() == b"OK\n"


def test_subprotocol_negotiation() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(ws.subprotocol or "none")

    with (
        running(handler, subprotocols=["b", "a"]) as server,
        connect(f"ws://127.0.0.1:{server.port}", subprotocols=["a"], **FAST) as ws,
    ):
        assert ws.subprotocol == "a"
        assert ws.recv(timeout=5) == "a"


def test_many_clients_in_parallel() -> None:
    async def one(port: int, n: int) -> str:
        async with ws_connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send(f"client {n}")
            return str(await ws.recv())

    async def many(port: int) -> list[str]:
        return await asyncio.gather(*(one(port, n) for n in range(20)))

    with running() as server:
        assert asyncio.run(many(server.port)) == [f"client {n}" for n in range(20)]


def test_peer_disconnects_abruptly() -> None:
    closed = threading.Event()

    def handler(ws: ServerConnection) -> None:
        try:
            for _ in ws:
                pass
        except Exception:
            pass
        finally:
            closed.set()

    async def drop(port: int) -> None:
        ws = await ws_connect(f"ws://127.0.0.1:{port}")
        ws.transport.abort()
        with contextlib.suppress(WsConnectionClosed):
            await ws.wait_closed()

    with running(handler) as server:
        asyncio.run(drop(server.port))
        assert closed.wait(5)


def test_unknown_option_is_refused_without_leaking_the_socket() -> None:
    with pytest.raises(TypeError, match="write_limit"):
        serve(lambda ws: None, "127.0.0.1", 0, write_limit=10)  # asyncio only
