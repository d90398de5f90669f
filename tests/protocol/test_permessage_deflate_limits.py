"""permessage-deflate and ``max_size``: the limit is on inflated bytes, checked while inflating.

A compressed message is never inflated whole before its size is known: the
extension asks zlib for at most one byte past the remaining budget, so a
decompression bomb costs about ``max_size`` of memory, not what it would
inflate to.
"""

from __future__ import annotations

import gc
import tracemalloc
import zlib

import pytest
from protocol_testing import OP_BINARY, OP_CONT, OP_TEXT, assert_failed, frame_to, open_pair

from hubbub.exceptions import PayloadTooBig
from hubbub.protocol import ClientConnection, Connection, Frame, Opcode, ServerConnection
from hubbub.protocol.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

MiB = 1 << 20
GiB = 1 << 30


def deflate_pair(max_size: int | None) -> tuple[ClientConnection, ServerConnection]:
    return open_pair(
        ClientConnection(
            "ws://example.com/", extensions=[ClientPerMessageDeflateFactory()], max_size=max_size
        ),
        ServerConnection(extensions=[ServerPerMessageDeflateFactory()], max_size=max_size),
    )


def compress(data: bytes, wbits: int = 12) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def bomb(size: int) -> bytes:
    """A message payload that inflates to ``size`` zero bytes (a multiple of 4 MiB).

    After a sync flush the compressor's state repeats, so every further 4 MiB
    of zeros compresses to the very same bytes: the payload is built without
    ever holding ``size`` bytes.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -12, 9)
    zeros = bytes(4 * MiB)
    first = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    middle = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    return (first + middle * (size // (4 * MiB) - 1))[:-4]


def test_bomb_builder_really_inflates_to_the_size() -> None:
    payload = bomb(16 * MiB)
    assert zlib.decompressobj(-12).decompress(payload + b"\x00\x00\xff\xff") == bytes(16 * MiB)


@pytest.mark.parametrize("side", ["server", "client"])
def test_one_gibibyte_bomb_fails_1009_within_about_max_size(side: str) -> None:
    client, server = deflate_pair(max_size=MiB)
    conn: Connection = server if side == "server" else client
    payload = bomb(GiB)
    assert len(payload) < MiB  # a frame under max_size, inflating to 1024 times more
    frame = frame_to(conn, OP_BINARY, payload, rsv1=True)
    del payload
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        conn.receive_data(frame)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert_failed(conn, 1009)
    assert isinstance(conn.close_exc, PayloadTooBig)
    assert conn.events_received() == []
    # Measured: 5 MiB. The core buffers and copies the 1 MiB frame (3 MiB);
    # zlib's output stops at max_size + 1 and its unconsumed input is a copy of
    # at most the frame. Inflating the bomb whole would take 1 GiB.
    assert peak < 6 * MiB, peak


def test_fragmented_bomb_fails_when_the_sum_exceeds_max_size() -> None:
    _client, server = deflate_pair(max_size=MiB)
    c = zlib.compressobj(9, zlib.DEFLATED, -12)
    quarter = bytes(MiB // 4)
    fragments = [c.compress(quarter) + c.flush(zlib.Z_SYNC_FLUSH) for _ in range(6)]
    server.receive_data(frame_to(server, OP_BINARY, fragments[0], rsv1=True, fin=False))
    for fragment in fragments[1:4]:
        server.receive_data(frame_to(server, OP_CONT, fragment, fin=False))
    assert server.close_exc is None  # exactly max_size so far
    server.receive_data(frame_to(server, OP_CONT, fragments[4], fin=False))
    assert_failed(server, 1009)
    assert server.events_received() == []


@pytest.mark.parametrize("fragmented", [False, True])
def test_message_of_exactly_max_size_is_accepted(fragmented: bool) -> None:
    limit = 100_000
    _client, server = deflate_pair(max_size=limit)
    data = b"abcdefgh" * (limit // 8)
    if fragmented:
        c = zlib.compressobj(6, zlib.DEFLATED, -12)
        head = c.compress(data[:60_000]) + c.flush(zlib.Z_SYNC_FLUSH)
        tail = (c.compress(data[60_000:]) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        server.receive_data(frame_to(server, OP_BINARY, head, rsv1=True, fin=False))
        server.receive_data(frame_to(server, OP_CONT, tail))
    else:
        server.receive_data(frame_to(server, OP_BINARY, compress(data), rsv1=True))
    assert server.events_received() == [data]
    assert server.close_exc is None


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_one_byte_over_max_size_fails_1009(opcode: int) -> None:
    limit = 100_000
    _client, server = deflate_pair(max_size=limit)
    server.receive_data(frame_to(server, opcode, compress(b"a" * (limit + 1)), rsv1=True))
    assert_failed(server, 1009)


def test_no_limit_inflates_everything() -> None:
    client, server = deflate_pair(max_size=None)
    server.send_binary(bytes(8 * MiB))
    for chunk in server.data_to_send():
        client.receive_data(chunk)
    assert client.events_received() == [bytes(8 * MiB)]


def test_extension_reports_the_whole_message_size_and_limit() -> None:
    ext = PerMessageDeflate()
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = Frame(Opcode.BINARY, c.compress(bytes(600)) + c.flush(zlib.Z_SYNC_FLUSH), False, True)
    assert ext.decode(first, max_size=1000).data == bytes(600)
    more = Frame(Opcode.CONTINUATION, c.compress(bytes(600)) + c.flush(zlib.Z_SYNC_FLUSH), True)
    with pytest.raises(PayloadTooBig) as info:
        ext.decode(more, max_size=400)
    assert (info.value.size, info.value.max_size, info.value.code) == (1001, 1000, 1009)


def test_zero_budget_allows_only_empty_output() -> None:
    # zlib reads max_length=0 as "no limit": a budget of 0 must still hold.
    ext = PerMessageDeflate()
    empty = Frame(Opcode.BINARY, compress(b""), True, True)
    assert ext.decode(empty, max_size=0).data == b""
    with pytest.raises(PayloadTooBig):
        ext.decode(Frame(Opcode.BINARY, compress(b"x" * 1000), True, True), max_size=0)
