"""The blocking adapter's ``process_response``, ``recv(decode=...)``, ``id``, streaming, logging.

The same conveniences as tests/asyncio/test_api_parity.py, over real sockets.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sync_helpers

from hubbub.exceptions import ConcurrencyError, InvalidStatus
from hubbub.protocol.http11 import Request, Response
from hubbub.sync.client import connect
from hubbub.sync.server import ServerConnection


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


def url(port: int, path: str = "/") -> str:
    return f"ws://127.0.0.1:{port}{path}"


def test_process_response_adds_a_header_to_the_101() -> None:
    def add_header(conn: ServerConnection, request: Request, response: Response) -> None:
        response.headers["X-Hook"] = request.path

    with (
        sync_helpers.running(echo, process_response=add_header) as server,
        connect(url(server.port, "/room"), proxy=None) as ws,
    ):
        assert ws.response is not None
        assert ws.response.headers["X-Hook"] == "/room"
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"


def test_process_response_replaces_the_response() -> None:
    def refuse(conn: ServerConnection, request: Request, response: Response) -> Response:
        return conn.respond(403, "no")

    with sync_helpers.running(echo, process_response=refuse) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(url(server.port), proxy=None)
        assert info.value.response.status == 403


def test_recv_decode() -> None:
    with sync_helpers.running(echo) as server, connect(url(server.port), proxy=None) as ws:
        ws.send("héllo")
        assert ws.recv(timeout=5, decode=False) == "héllo".encode()
        ws.send("héllo".encode())
        assert ws.recv(timeout=5, decode=True) == "héllo"
        ws.send(b"\xff")
        with pytest.raises(UnicodeDecodeError):
            ws.recv(timeout=5, decode=True)
        ws.send("still open")
        assert ws.recv(timeout=5) == "still open"


def test_connection_id_and_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hubbub")
    ids: list[uuid.UUID] = []

    def handler(ws: ServerConnection) -> None:
        ids.append(ws.id)
        ws.send(str(ws.id))
        ws.recv()

    with sync_helpers.running(handler) as server:
        with connect(url(server.port, "/x"), proxy=None) as ws:
            assert ws.recv(timeout=5) == str(ids[0])
            client_port = ws.local_address[1]
        assert ws.id != ids[0]
        assert ws.id.version == 4
        server.shutdown()  # the handler's thread is over: its lines are written
    server_lines = [r.getMessage() for r in caplog.records if r.name == "hubbub.server"]
    client_lines = [r.getMessage() for r in caplog.records if r.name == "hubbub.client"]
    assert f"connection {ids[0]} open: remote 127.0.0.1:{client_port}, /x" in server_lines[0]
    assert any(f"connection {ids[0]} closed:" in m and "received 1000" in m for m in server_lines)
    assert client_lines[0].startswith(f"connection {ws.id} open: remote 127.0.0.1:")


def test_logger_option_and_handler_errors(caplog: pytest.LogCaptureFixture) -> None:
    mine = logging.getLogger("tests.mine.sync")
    caplog.set_level(logging.INFO, "tests.mine.sync")
    ids: list[uuid.UUID] = []

    def failing(ws: ServerConnection) -> None:
        ids.append(ws.id)
        raise RuntimeError("boom")

    with sync_helpers.running(failing, logger=mine) as server:
        with connect(url(server.port), proxy=None, logger=mine) as ws:
            assert ws.wait_closed(5)
        server.shutdown()
    assert ws.close_code == 1011
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.mine.sync"]
    assert any(m.startswith(f"connection {ids[0]} handler failed (remote ") for m in messages)
    assert any(f"connection {ws.id} open" in m for m in messages)
    assert not [r for r in caplog.records if r.name.startswith("hubbub.")]


# --- recv_streaming (section 5.4) ---------------------------------------------------------


def _fragmenting(
    gate: threading.Event, *messages: list[str] | list[bytes], parsed: threading.Event | None = None
) -> Any:
    """A handler sending ``messages`` fragmented; the first one's third item waits for ``gate``.

    (The first frame leaves once the second item is known: the last frame
    must carry FIN.) Before waiting it pings the client: once the pong is
    back, the client parsed the first frame, and ``parsed`` is set.
    """

    def handler(ws: ServerConnection) -> None:
        def first(parts: list[str] | list[bytes]) -> Iterator[str | bytes]:
            for i, part in enumerate(parts):
                if i == 2:
                    ws.ping(timeout=5)  # a control frame between fragments (section 5.4)
                    if parsed is not None:
                        parsed.set()
                    assert gate.wait(5)
                yield part

        ws.send(first(messages[0]))
        for parts in messages[1:]:
            ws.send(parts)
        ws.wait_closed(5)

    return handler


def test_recv_streaming_yields_each_fragment_as_it_arrives() -> None:
    gate, parsed = threading.Event(), threading.Event()
    handler = _fragmenting(gate, ["héll", "o ", "wörld"], [b"x"], parsed=parsed)
    got: list[str | bytes] = []
    with (
        sync_helpers.running(handler, compression=None) as server,
        connect(url(server.port), proxy=None, compression=None) as ws,
    ):
        # The first frame is in before the application asks for the message:
        # it must come out now, not with the next frame (sent only after it).
        assert parsed.wait(5)
        for fragment in ws.recv_streaming():
            got.append(fragment)
            gate.set()  # the rest is sent only now
        assert got == ["héll", "o ", "wörld"]
        assert list(ws.recv_streaming(decode=True)) == ["x"]


def test_recv_after_streaming_and_an_abandoned_stream() -> None:
    gate = threading.Event()
    handler = _fragmenting(gate, ["a", "b", "c", "d"], ["e", "f"], ["g"])
    with (
        sync_helpers.running(handler) as server,
        connect(url(server.port), proxy=None) as ws,
    ):
        stream = ws.recv_streaming(decode=False)
        assert next(stream) == b"a"
        gate.set()
        assert next(stream) == b"b"
        # The application stops reading this message: the rest is dropped.
        # "e", "f" may have come while it streamed: recv() joins them.
        assert ws.recv(timeout=5) == "ef"
        with pytest.raises(ConcurrencyError):
            next(stream)
        assert ws.recv(timeout=5) == "g"
