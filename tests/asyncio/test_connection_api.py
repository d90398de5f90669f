"""The connection API over real loopback sockets: serve/connect, recv/send, ping, close.

Frames on the wire are checked with a :class:`RawServer` peer where the test is
about what the adapter sends (message types, fragmentation).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from asyncio_helpers import (
    FAST,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawServer,
    running_server,
    url,
    wait_until,
)

from hubbub.asyncio import ServerConnection, connect, serve
from hubbub.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    LocalProtocolError,
)

# --- serve and connect ---------------------------------------------------------------


@pytest.mark.both_loops
async def test_context_managers_echo_text_and_binary() -> None:
    async with running_server() as server, connect(url(server), **FAST) as ws:
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
        assert len(server.connections) == 1
    assert ws.ready_state == 3
    assert ws.close_code == 1000


@pytest.mark.both_loops
async def test_serve_and_connect_as_awaitables() -> None:
    server = await serve(lambda ws: ws.send("hi"), "127.0.0.1", 0, **FAST)
    address = url(server)
    try:
        ws = await connect(address, **FAST)
        assert await ws.recv() == "hi"
        # The handler returned: the server closes with 1000 (normal closure).
        with pytest.raises(ConnectionClosedOK) as info:
            await ws.recv()
        assert info.value.code == 1000
        await ws.close()
    finally:
        server.close()
        await server.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await connect(address, **FAST)


async def test_serve_forever_closes_the_server_when_cancelled() -> None:
    server = await serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, **FAST)
    task = asyncio.ensure_future(server.serve_forever())
    address = url(server)
    ws = await connect(address, **FAST)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Closing the server sent 1001 (going away) to the connection.
    with pytest.raises(ConnectionClosedOK) as info:
        await ws.recv()
    assert info.value.code == 1001
    with pytest.raises(ConnectionRefusedError):
        await connect(address, **FAST)


@pytest.mark.both_loops
async def test_async_for_ends_on_normal_close() -> None:
    received: list[str | bytes] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(message)
        done.set()

    async with running_server(handler) as server:
        async with connect(url(server), **FAST) as ws:
            for i in range(5):
                await ws.send(f"m{i}")
        await asyncio.wait_for(done.wait(), 2)
    assert received == [f"m{i}" for i in range(5)]


async def test_client_async_for_receives_until_server_closes() -> None:
    async def handler(ws: ServerConnection) -> None:
        for i in range(3):
            await ws.send(bytes([i]) * 3)

    async with running_server(handler) as server, connect(url(server), **FAST) as ws:
        got = [message async for message in ws]
    assert got == [b"\x00" * 3, b"\x01" * 3, b"\x02" * 3]


# --- what send() puts on the wire -----------------------------------------------------


async def test_send_types_map_to_opcodes() -> None:
    async with RawServer() as raw:
        ws_task = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await ws_task
        await ws.send("text")
        await ws.send(b"bytes")
        await ws.send(bytearray(b"bytearray"))
        await ws.send(memoryview(b"..memoryview..")[2:-2])
        frames = [await peer.read_frame() for _ in range(4)]
        assert [(f.opcode, f.payload, f.fin) for f in frames] == [
            (OP_TEXT, b"text", True),
            (OP_BINARY, b"bytes", True),
            (OP_BINARY, b"bytearray", True),
            (OP_BINARY, b"memoryview", True),
        ]
        # Section 5.3: every frame from a client is masked.
        assert all(f.masked for f in frames)
        assert (await peer.close_handshake(1000)).close_code == 1000
        await asyncio.wait_for(ws.wait_closed(), 0.5)


async def test_send_iterable_is_one_fragmented_message() -> None:
    async with RawServer() as raw:
        ws_task = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await ws_task
        await ws.send(["ab", "cd", "é"])
        # Bytes-like items are accepted, like bytes-like messages.
        await ws.send(iter([b"\x01", bytearray(b"\x02"), memoryview(b"\x03")]))  # type: ignore[arg-type]
        await ws.send(["single"])
        frames = [await peer.read_frame() for _ in range(7)]
        assert [(f.opcode, f.fin, f.payload) for f in frames] == [
            (OP_TEXT, False, b"ab"),
            (OP_CONT, False, b"cd"),
            (OP_CONT, True, "é".encode()),
            (OP_BINARY, False, b"\x01"),
            (OP_CONT, False, b"\x02"),
            (OP_CONT, True, b"\x03"),
            (OP_TEXT, True, b"single"),
        ]
        await ws.send([])  # nothing to send: no frame at all
        await ws.send("after")
        frame = await peer.read_frame()
        assert (frame.opcode, frame.payload) == (OP_TEXT, b"after")
        assert (await peer.close_handshake(1000)).close_code == 1000
        await asyncio.wait_for(ws.wait_closed(), 0.5)


async def test_send_async_iterable_is_one_fragmented_message() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one", b"two", b"three"):
            await asyncio.sleep(0)
            yield part

    async with running_server() as server, connect(url(server), **FAST) as ws:
        await ws.send(parts())
        assert await ws.recv() == b"onetwothree"


async def test_other_sends_wait_for_the_fragmented_message() -> None:
    release = asyncio.Event()

    async def slow_parts() -> AsyncIterator[str]:
        yield "first-"
        await release.wait()
        yield "last"

    async with RawServer() as raw:
        ws_task = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await ws_task
        fragmented = asyncio.ensure_future(ws.send(slow_parts()))
        await asyncio.sleep(0.01)
        other = asyncio.ensure_future(ws.send("other"))
        # Control frames may be interleaved with fragments (section 5.4).
        pinged = asyncio.ensure_future(ws.ping(b"p"))
        frame = await peer.read_frame()
        assert (frame.opcode, frame.payload) == (OP_PING, b"p")
        await peer.send_frame(OP_PONG, b"p")
        await asyncio.wait_for(pinged, 2)
        await asyncio.sleep(0.05)
        assert not other.done()
        release.set()
        await asyncio.wait_for(asyncio.gather(fragmented, other), 2)
        frames = [await peer.read_frame() for _ in range(3)]
        assert [(f.opcode, f.fin, f.payload) for f in frames] == [
            (OP_TEXT, False, b"first-"),
            (OP_CONT, True, b"last"),
            (OP_TEXT, True, b"other"),
        ]
        assert (await peer.close_handshake(1000)).close_code == 1000
        await asyncio.wait_for(ws.wait_closed(), 0.5)


async def test_send_rejects_other_types_and_mixed_fragments() -> None:
    async with running_server() as server, connect(url(server), **FAST) as ws:
        with pytest.raises(TypeError):
            await ws.send(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await ws.send({"key": "value"})  # a Mapping is not a message
        with pytest.raises(TypeError):
            await ws.send(["text", b"binary"])
        with pytest.raises(TypeError):
            await ws.send([1, 2])  # type: ignore[list-item]
        # Nothing was sent: the connection is still usable.
        await ws.send("still open")
        assert await ws.recv() == "still open"


async def test_send_mixing_types_after_a_fragment_was_sent_fails_the_connection() -> None:
    """A half-sent message cannot be completed: the connection is failed with 1011."""
    async with running_server() as server, connect(url(server), **FAST) as ws:
        with pytest.raises(TypeError):
            await ws.send(["a", "b", b"c"])
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.sent_code == 1011
        with pytest.raises(ConnectionClosed):
            await ws.send("more")


# --- recv ---------------------------------------------------------------------------------


async def test_recv_from_two_coroutines_is_a_concurrency_error() -> None:
    async with running_server() as server, connect(url(server), **FAST) as ws:
        first = asyncio.ensure_future(ws.recv())
        await asyncio.sleep(0.01)
        with pytest.raises(ConcurrencyError):
            await ws.recv()
        await ws.send("for the first")
        assert await asyncio.wait_for(first, 2) == "for the first"


async def test_cancelled_recv_leaves_the_connection_usable() -> None:
    async with running_server() as server, connect(url(server), **FAST) as ws:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.05)
        await ws.send("x")
        assert await ws.recv() == "x"


# --- ping ---------------------------------------------------------------------------------


@pytest.mark.both_loops
async def test_ping_returns_latency() -> None:
    async with running_server() as server, connect(url(server), **FAST) as ws:
        assert ws.latency == 0.0
        latency = await ws.ping()
        assert 0 < latency < 1
        assert ws.latency == latency
        assert 0 < await ws.ping("text payload") < 1
        assert 0 < await ws.ping(b"bytes payload") < 1


async def test_ping_payload_in_flight_twice_is_a_concurrency_error() -> None:
    async with RawServer() as raw:
        ws_task = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await ws_task
        first = asyncio.ensure_future(ws.ping(b"same"))
        await asyncio.sleep(0.01)
        with pytest.raises(ConcurrencyError):
            await ws.ping(b"same")
        # Section 5.5.3: a pong may answer only the latest ping; the earlier
        # pings are acknowledged by it too.
        second = asyncio.ensure_future(ws.ping(b"later"))
        await asyncio.sleep(0.01)
        await peer.send_frame(OP_PONG, b"unsolicited")  # a heartbeat: ignored
        await asyncio.sleep(0.01)
        assert not first.done()
        await peer.send_frame(OP_PONG, b"later")
        assert await asyncio.wait_for(first, 2) >= await asyncio.wait_for(second, 2) > 0
        assert (await peer.close_handshake(1000)).close_code == 1000
        await asyncio.wait_for(ws.wait_closed(), 0.5)


async def test_pending_ping_raises_when_the_connection_closes() -> None:
    async with RawServer() as raw:
        ws_task = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await ws_task
        pinged = asyncio.ensure_future(ws.ping())
        await peer.read_frame()
        peer.close()
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(pinged, 2)
        assert info.value.code == 1006
        with pytest.raises(ConnectionClosedError):
            await ws.ping()


# --- close ---------------------------------------------------------------------------------


@pytest.mark.both_loops
async def test_client_close_code_and_reason_reach_the_server() -> None:
    seen: list[ConnectionClosed] = []
    attributes: list[tuple[int | None, str]] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            seen.append(exc)
            attributes.append((ws.close_code, ws.close_reason))

    async with running_server(handler) as server:
        ws = await connect(url(server), **FAST)
        await ws.close(4321, "custom reason")
        assert ws.ready_state == 3
        await wait_until(lambda: seen)
    assert (seen[0].code, seen[0].reason) == (4321, "custom reason")
    assert attributes == [(4321, "custom reason")]
    # 4321 is not 1000 or 1001: not a normal closure.
    assert isinstance(seen[0], ConnectionClosedError)
    # The server echoed the code (section 5.5.1).
    assert ws.close_code == 4321


async def test_server_close_code_and_reason_reach_the_client() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close(1001, "going away")
        assert ws.ready_state == 3

    async with running_server(handler) as server, connect(url(server), **FAST) as ws:
        with pytest.raises(ConnectionClosedOK) as info:
            await ws.recv()
        assert (info.value.code, info.value.reason) == (1001, "going away")
        assert (ws.close_code, ws.close_reason) == (1001, "going away")


async def test_closing_handshake_on_the_wire() -> None:
    """Section 7.1.1: the client waits for the server to close TCP after the close frames."""
    async with RawServer() as raw:
        ws_task = asyncio.ensure_future(connect(raw.url, **FAST))
        peer = await raw.accept()
        await peer.accept_handshake()
        ws = await ws_task
        assert ws.ready_state == 1
        closing = asyncio.ensure_future(ws.close(1000, "bye"))
        frame = await peer.read_frame()
        assert (frame.opcode, frame.close_code, frame.close_reason) == (OP_CLOSE, 1000, "bye")
        assert ws.ready_state == 2
        await peer.send_close(1000, "ok")
        await asyncio.sleep(0.02)
        assert not closing.done()  # the client lets the server close TCP first
        peer.close()
        await asyncio.wait_for(closing, 2)
        assert ws.ready_state == 3
        assert (ws.close_code, ws.close_reason) == (1000, "ok")


async def test_close_twice_and_send_after_close() -> None:
    async with running_server() as server:
        ws = await connect(url(server), **FAST)
        await ws.close()
        await ws.close()  # a no-op
        with pytest.raises(ConnectionClosedOK):
            await ws.send("late")
        with pytest.raises(ConnectionClosedOK):
            await ws.recv()
        with pytest.raises(ConnectionClosedOK):
            await ws.ping()


async def test_abrupt_disconnect_is_connection_closed_error_1006() -> None:
    seen: list[BaseException] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            seen.append(exc)

    async with running_server(handler) as server:
        ws = await connect(url(server), **FAST)
        ws.transport.abort()
        await wait_until(lambda: seen)
        await ws.wait_closed()
    assert isinstance(seen[0], ConnectionClosedError)
    assert seen[0].code == 1006
    assert seen[0].sent_code is None


async def test_ready_state_from_connecting_to_closed() -> None:
    states: list[int] = []

    def process_request(ws: ServerConnection, request: object) -> None:
        states.append(ws.ready_state)

    async def handler(ws: ServerConnection) -> None:
        states.append(ws.ready_state)
        await ws.wait_closed()
        states.append(ws.ready_state)

    async with running_server(handler, process_request=process_request) as server:
        async with connect(url(server), **FAST) as ws:
            assert ws.ready_state == 1
        await wait_until(lambda: len(states) == 3)
    assert states == [0, 1, 3]


@pytest.mark.both_loops
async def test_one_mebibyte_messages_round_trip() -> None:
    """The largest message the default max_size accepts, both ways, through the write buffer."""
    text = "é" * (2**19)  # 1 MiB once encoded
    data = bytes(range(256)) * (2**12)
    async with running_server() as server, connect(url(server), **FAST) as ws:
        await ws.send(data)
        await ws.send(text)
        assert await ws.recv() == data
        assert await ws.recv() == text


async def test_invalid_close_and_ping_arguments_leave_the_connection_open() -> None:
    async with running_server() as server, connect(url(server), **FAST) as ws:
        with pytest.raises(LocalProtocolError):
            await ws.close(1005)  # section 7.4.1: never sent on the wire
        with pytest.raises(LocalProtocolError):
            await ws.close(1000, "x" * 124)  # section 5.5: 125 bytes of payload at most
        with pytest.raises(LocalProtocolError):
            await ws.ping(b"x" * 126)
        assert ws.ready_state == 1
        await ws.send("still open")
        assert await ws.recv() == "still open"
        await ws.close(1000, "x" * 123)
        assert ws.close_code == 1000
        assert ws.buffered_amount == 0
