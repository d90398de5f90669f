"""send_frames_soon(): frames held until the end of the loop iteration, over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_broadcast import clients, hub, stuck_client, wait_connections

from hubbub.asyncio.held import held_writes
from hubbub.exceptions import ConnectionClosed
from hubbub.protocol import encode_shared_frame
from hubbub.protocol.frames import Opcode

pytestmark = pytest.mark.both_loops


def text(data: str) -> bytes:
    return encode_shared_frame(Opcode.TEXT, data.encode())


async def test_frames_of_one_iteration_leave_in_one_write_per_connection(
    held_flushes: list[list[tuple[Any, list[bytes]]]],
) -> None:
    async with hub(compression=None) as server:
        peers = await clients(server, 3)
        conns = await wait_connections(server, 3)
        before = conns[0].buffered_amount
        for n in range(4):  # four publications in one loop iteration
            for conn in conns:
                assert conn.send_frames_soon(text(f"pub {n}"))
        # Held: queued in each connection's output, nothing written yet.
        assert all(conn.protocol.pending_chunks == 4 for conn in conns)
        assert conns[0].buffered_amount == before
        for peer in peers:
            assert [await peer.recv() for _ in range(4)] == [f"pub {n}" for n in range(4)]
        # One flush for all three connections, one write each with every
        # frame, in order.
        (flushed,) = held_flushes
        assert [t for t, _ in flushed] == [conn.transport for conn in conns]
        assert all(chunks == [text(f"pub {n}") for n in range(4)] for _, chunks in flushed)
        for peer in peers:
            await peer.close()


async def test_held_frames_keep_their_place_among_the_other_writes() -> None:
    async with hub(compression=None) as server:
        (peer,) = await clients(server, 1)
        (conn,) = await wait_connections(server, 1)
        conn.send_nowait("before")  # written at once
        assert conn.send_frames_soon(text("held 1"))
        assert conn.send_frames_nowait(text("now"))  # writes what is held first
        assert conn.send_frames_soon(text("held 2"))
        await conn.send("sent")  # a send() writes what is held first too
        assert [await peer.recv() for _ in range(5)] == [
            "before",
            "held 1",
            "now",
            "held 2",
            "sent",
        ]
        await peer.close()


async def test_a_close_frame_never_overtakes_held_frames() -> None:
    async with hub(compression=None) as server:
        peers = await clients(server, 2)
        closing, failing = await wait_connections(server, 2)
        for conn in (closing, failing):
            assert conn.send_frames_soon(text("last words"))
        # In the same iteration: the close frames are queued after the held
        # frames (RFC 6455 section 5.5.1: no data after a close frame).
        closing.start_close(1001, "going away")
        failing.fail(1008, "policy")
        assert not closing.send_frames_soon(text("too late"))  # CLOSING: refused
        for peer in peers:
            assert await peer.recv() == "last words"
            with pytest.raises(ConnectionClosed):
                await peer.recv()
        codes = sorted(peer.close_code for peer in peers)
        assert codes == [1001, 1008]


async def test_held_frames_are_refused_where_a_shared_frame_is_wrong() -> None:
    async with hub(compression="deflate") as server:
        (peer,) = await clients(server, 1, compression="deflate")
        (conn,) = await wait_connections(server, 1)
        # RFC 7692 compresses per connection; section 5.1: a client masks.
        assert not conn.send_frames_soon(text("x"))
        assert not peer.send_frames_soon(text("x"))
        assert conn.protocol.pending_chunks == 0
        await peer.close()
        await conn.wait_closed()
        assert not conn.send_frames_soon(text("x"))  # closed


async def test_held_bytes_count_against_the_write_buffer_bound() -> None:
    high = 16 * 1024
    async with hub(compression=None, write_limit=high) as server:
        stuck = await asyncio.to_thread(stuck_client, server.port)
        try:
            (conn,) = await wait_connections(server, 1)
            big = b"\x82\x7e\x10\x00" + bytes(4096)  # a 4 KiB binary message
            accepted = 0
            for _ in range(1000):  # all in one loop iteration
                if not conn.send_frames_soon(big):
                    break
                accepted += 1
                # Never more held than the room below the high water mark.
                assert conn.protocol.pending_chunks * len(big) <= high
            else:
                raise AssertionError("never refused")
            # Held bytes were written once over the mark: the transport paused.
            assert conn.writing_paused
            before = conn.buffered_amount
            assert not conn.send_frames_soon(big, limit=before - 1)  # explicit bound
            await asyncio.sleep(0)  # the flush at the end of the iteration
            assert conn.protocol.pending_chunks == 0
            assert conn.buffered_amount <= high + 2 * len(big)
            assert accepted < 1000
        finally:
            stuck.close()


async def test_an_explicit_limit_counts_the_bytes_held() -> None:
    async with hub(compression=None) as server:
        (peer,) = await clients(server, 1)
        (conn,) = await wait_connections(server, 1)
        frame = text("x" * 100)
        # As send_frames_nowait: at most `limit` bytes before this call, held
        # ones included (nothing buffered, nothing held: accepted).
        assert conn.send_frames_soon(frame, limit=0)
        assert not conn.send_frames_soon(frame, limit=len(frame) - 1)  # one held: over
        assert conn.send_frames_soon(frame, limit=len(frame))
        assert [await peer.recv() for _ in range(2)] == ["x" * 100] * 2
        await peer.close()


class ListTransport:
    """A transport that keeps what is written (or fails to write it)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        if self.fail:
            raise RuntimeError("boom")
        self.written.append(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self.write(b"".join(chunks))


async def test_one_failing_write_does_not_keep_the_others_waiting() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    first, broken, last = ListTransport(), ListTransport(fail=True), ListTransport()
    outs: list[list[bytes]] = [[b"a", b"b"], [b"c"], [b"d"]]
    held = held_writes(loop)
    for transport, out in zip((first, broken, last), outs, strict=True):
        held.add(transport, out)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert (first.written, last.written) == ([b"ab"], [b"d"])
    assert [type(e["exception"]) for e in errors] == [RuntimeError]
    assert outs == [[], [], []]  # nothing left held, even where the write failed
    assert held.due == []
