"""Keepalive, opening and closing timeouts, with peers that go silent on purpose.

Intervals are a few tenths of a second; every wait is bounded by a deadline.
"""

from __future__ import annotations

import asyncio

import pytest
from asyncio_helpers import (
    FAST,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawPeer,
    RawServer,
    running_server,
    url,
    wait_until,
)

from hubbub.asyncio import ServerConnection, connect
from hubbub.exceptions import ConnectionClosedError, HandshakeTimeout
from hubbub.protocol.http11 import Request, Response


async def _read_until_close(peer: RawPeer, timeout: float = 3.0) -> tuple[int, int | None]:
    """Read frames, never answering pings; return (pings seen, close code)."""
    pings = 0
    while True:
        frame = await peer.read_frame(timeout)
        if frame.opcode == OP_PING:
            pings += 1
        elif frame.opcode == OP_CLOSE:
            return pings, frame.close_code


# --- keepalive -------------------------------------------------------------------------


@pytest.mark.both_loops
async def test_server_closes_a_peer_that_never_answers_pings_with_1011() -> None:
    ended: list[BaseException | None] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            async for _ in ws:
                pass
        except ConnectionClosedError as exc:
            ended.append(exc)
        else:
            ended.append(None)

    options = dict(ping_interval=0.1, ping_timeout=0.2)
    async with (
        running_server(handler, **options) as server,
        await RawPeer.open(server.port) as peer,
    ):
        await peer.handshake()
        loop = asyncio.get_running_loop()
        start = loop.time()
        pings, code = await _read_until_close(peer)
        elapsed = loop.time() - start
        assert code == 1011  # internal error: keepalive ping timeout
        assert pings >= 1
        assert 0.25 <= elapsed < 2
        # The server does not wait for an answer to its close: TCP is closed.
        assert await peer.read_to_eof() == b""
        # The handler's loop ended, with an error close.
        await wait_until(lambda: ended)
    exc = ended[0]
    assert isinstance(exc, ConnectionClosedError)
    assert exc.sent_code == 1011


async def test_keepalive_keeps_a_responsive_connection_open_and_measures_latency() -> None:
    async with (
        running_server(ping_interval=0.05, ping_timeout=0.1) as server,
        connect(url(server), **{**FAST, "ping_interval": 0.05, "ping_timeout": 0.1}) as ws,
    ):
        await wait_until(lambda: ws.latency > 0, timeout=2)
        await asyncio.sleep(0.3)  # several intervals and timeouts
        assert ws.ready_state == 1
        await ws.send("still there")
        assert await ws.recv() == "still there"
        (server_ws,) = server.connections
        assert server_ws.latency > 0


async def test_client_closes_a_server_that_never_answers_pings_with_1011() -> None:
    async with RawServer() as raw:
        options = {**FAST, "ping_interval": 0.1, "ping_timeout": 0.2}
        ws_task = asyncio.ensure_future(connect(raw.url, **options))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await ws_task
        received = asyncio.ensure_future(ws.recv())
        pings, code = await _read_until_close(peer)
        assert (pings >= 1, code) == (True, 1011)
        # Section 7.1.1: a client failing the connection may close TCP itself.
        assert await peer.read_to_eof() == b""
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(received, 2)
        assert info.value.sent_code == 1011


async def test_answered_pings_reset_the_deadline() -> None:
    """A peer that answers pings, however late within ping_timeout, stays connected."""
    async with (
        # Margins wide enough for a loaded 2-core CI machine: each pong comes
        # 0.05 s after its ping, far within the 2 s timeout.
        running_server(ping_interval=0.2, ping_timeout=2.0) as server,
        await RawPeer.open(server.port) as peer,
    ):
        await peer.handshake()
        for _ in range(4):
            frame = await peer.read_frame()
            assert frame.opcode == OP_PING
            await asyncio.sleep(0.05)
            await peer.send_frame(OP_PONG, frame.payload)
        await peer.send_text("alive")
        assert (await peer.read_frame_skipping_pings()).payload == b"alive"
        await peer.close_handshake()


# --- open_timeout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET / HTTP/1.1\r\nHost: localhost\r\n"],
    ids=["nothing", "half-request"],
)
async def test_server_drops_a_client_that_does_not_finish_the_handshake(sent: bytes) -> None:
    async with running_server(open_timeout=0.2) as server, await RawPeer.open(server.port) as peer:
        await peer.send(sent)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await peer.read_to_eof(timeout=2)
        assert 0.15 <= loop.time() - start < 1.5
        await wait_until(lambda: not server.connections)


async def test_slow_process_request_is_cut_by_open_timeout() -> None:
    connections: list[ServerConnection] = []

    async def process_request(ws: ServerConnection, request: Request) -> Response | None:
        connections.append(ws)
        await asyncio.sleep(0.3)
        return None

    async with running_server(open_timeout=0.1, process_request=process_request) as server:
        async with await RawPeer.open(server.port) as peer:
            await peer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await peer.read_to_eof() == b""
        # process_request returns into a closed connection: the task that ran
        # it must end quietly, not with an exception nobody retrieves.
        task = connections[0].handler_task
        assert task is not None
        await asyncio.wait_for(asyncio.shield(task), 2)
        assert task.exception() is None
        assert not server.connections


async def test_client_handshake_timeout() -> None:
    async with RawServer() as raw:
        loop = asyncio.get_running_loop()
        start = loop.time()
        attempt = asyncio.ensure_future(connect(raw.url, **{**FAST, "open_timeout": 0.2}))
        peer = await raw.accept()
        await peer.read_http()  # read the request, answer nothing
        with pytest.raises(HandshakeTimeout):
            await attempt
        assert 0.15 <= loop.time() - start < 1.5
        # The client dropped the connection.
        assert await peer.read_to_eof() == b""


async def test_client_handshake_timeout_with_wss_suggests_tls() -> None:
    # A plain server that ignores the ClientHello (not a hubbub one, which closes).
    writers: list[asyncio.StreamWriter] = []

    async def ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(ignore, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeTimeout, match="does not speak TLS on this port"):
            await connect(f"wss://127.0.0.1:{port}/", **{**FAST, "open_timeout": 0.2})
        for writer in writers:
            writer.close()
            await writer.wait_closed()


# --- close_timeout ----------------------------------------------------------------------


async def test_server_drops_a_peer_that_never_answers_its_close() -> None:
    closed_after: list[float] = []

    async def handler(ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ws.close(1000, "bye")
        closed_after.append(loop.time() - start)

    async with (
        running_server(handler, close_timeout=0.2) as server,
        await RawPeer.open(server.port) as peer,
    ):
        await peer.handshake()
        frame = await peer.read_frame()
        assert (frame.opcode, frame.close_code, frame.close_reason) == (OP_CLOSE, 1000, "bye")
        # Never answer: the server closes TCP after close_timeout.
        await peer.read_to_eof(timeout=2)
        await wait_until(lambda: closed_after)
    assert 0.15 <= closed_after[0] < 1.5


async def test_client_drops_a_server_that_never_answers_its_close() -> None:
    async with RawServer() as raw:
        ws_task = asyncio.ensure_future(connect(raw.url, **{**FAST, "close_timeout": 0.2}))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await ws_task
        loop = asyncio.get_running_loop()
        start = loop.time()
        await ws.close()
        assert 0.15 <= loop.time() - start < 1.5
        assert ws.ready_state == 3
        assert ws.close_code == 1006  # no close frame came back (section 7.1.5)
        frame = await peer.read_frame()
        assert frame.opcode == OP_CLOSE
        assert await peer.read_to_eof() == b""


async def test_client_drops_a_server_that_answers_close_but_keeps_tcp_open() -> None:
    async with RawServer() as raw:
        ws_task = asyncio.ensure_future(connect(raw.url, **{**FAST, "close_timeout": 0.2}))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await ws_task
        await peer.send_close(1001, "later")
        frame = await peer.read_frame()
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1001)
        # The server should close TCP now (section 7.1.1); it does not.
        await asyncio.wait_for(ws.wait_closed(), 1.5)
        assert (ws.close_code, ws.close_reason) == (1001, "later")


async def test_text_after_close_frame_is_ignored() -> None:
    """Section 5.5.1: nothing the peer sends after its close frame is data."""
    async with running_server() as server, await RawPeer.open(server.port) as peer:
        await peer.handshake()
        await peer.send_close(1000)
        await peer.send_frame(OP_TEXT, b"too late")
        frame = await peer.read_frame()
        assert (frame.opcode, frame.close_code) == (OP_CLOSE, 1000)
        assert await peer.read_to_eof() == b""
