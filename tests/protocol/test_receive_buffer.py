"""Reading a large binary frame straight into its message: ``receive_buffer()``.

While a large binary frame arrives (64 KiB or more, with more than 4 KiB of it
still missing once its header is in), an adapter may read into a view of the missing part of the
payload and report with ``receive_buffer_updated()``; the message must be the
same as with ``receive_data()`` alone, masked (section 5.3) or not, however
the bytes are cut and whatever follows. Frames are built here by hand.
"""

from __future__ import annotations

import os
import random
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from protocol_testing import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    assert_failed,
    property_settings,
    sent_frames,
)

from hubbub.protocol import Connection, Ping, Side, State
from hubbub.protocol.permessage_deflate import PerMessageDeflate

KEY = b"\x37\xfa\x21\x3d"
LARGE = 65536
"""Frames of this size and more may be read directly ..."""
MISSING = 4096
"""... when more than this many bytes are missing once the header is in."""


def xor(data: bytes, key: bytes) -> bytes:
    """Section 5.3, as one big-integer XOR (fast enough for megabytes)."""
    n = len(data)
    if not n:
        return b""
    pad = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big")


def frame(side: Side, opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A frame as the peer of a ``side`` connection sends it (section 5.2)."""
    b0 = (0x80 if fin else 0) | opcode
    masked = side is Side.SERVER  # toward a server, frames are masked
    bit = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head = bytes([b0, bit | n])
    elif n < 65536:
        head = bytes([b0, bit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, bit | 127]) + n.to_bytes(8, "big")
    return head + KEY + xor(payload, KEY) if masked else head + payload


def header_len(side: Side, n: int) -> int:
    return (2 if n < 126 else 4 if n < 65536 else 10) + (4 if side is Side.SERVER else 0)


def write_direct(conn: Connection, data: bytes, rng: random.Random | None = None) -> int:
    """Write ``data`` through ``receive_buffer()`` while there is one, in random pieces.

    Returns how many bytes went in that way.
    """
    rng = rng or random.Random(0)
    pos = 0
    while pos < len(data):
        view = conn.receive_buffer()
        if view is None:
            break
        n = min(len(view), len(data) - pos, rng.randint(1, 100_000))
        view[:n] = data[pos : pos + n]
        view.release()
        conn.receive_buffer_updated(n)
        pos += n
    return pos


def arriving(side: Side, size: int) -> tuple[Connection, bytes, bytes]:
    """A connection that got the header and the first bytes of a large binary frame.

    Returns the connection, the frame's payload and the whole frame (of which
    the first 100 bytes were received).
    """
    payload = os.urandom(size)
    wire = frame(side, OP_BINARY, payload)
    conn = Connection(side)
    conn.receive_data(wire[:100])
    return conn, payload, wire


def plain(side: Side, wire: bytes, **kwargs: object) -> list[object]:
    """The events of ``wire`` fed by ``receive_data()`` alone, in one call."""
    conn = Connection(side, **kwargs)  # type: ignore[arg-type]
    conn.receive_data(wire)
    return conn.events_received()


sides = pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT], ids=["server", "client"])


# --- the direct path -----------------------------------------------------------------


@sides
@pytest.mark.parametrize("size", [LARGE + 1, 70_000, 300_000, 2**20])
def test_large_frame_read_directly(side: Side, size: int) -> None:
    payload = os.urandom(size)
    wire = frame(side, OP_BINARY, payload)
    conn = Connection(side)
    first = header_len(side, size) + 1000 if size > LARGE + 1000 else header_len(side, size)
    conn.receive_data(wire[:first])
    assert conn.events_received() == []
    view = conn.receive_buffer()
    assert view is not None
    assert len(view) == len(wire) - first
    assert not view.readonly
    view.release()
    assert write_direct(conn, wire[first:], random.Random(size)) == len(wire) - first
    events = conn.events_received()
    assert events == [payload]
    assert type(events[0]) is bytes
    assert events == plain(side, wire)
    assert conn.receive_buffer() is None
    assert conn.state is State.OPEN


@sides
def test_header_arriving_byte_by_byte(side: Side) -> None:
    payload = os.urandom(100_000)
    wire = frame(side, OP_BINARY, payload)
    conn = Connection(side)
    hlen = header_len(side, len(payload))
    for i in range(hlen):
        assert conn.receive_buffer() is None  # the header is not complete
        conn.receive_data(wire[i : i + 1])
    view = conn.receive_buffer()
    assert view is not None
    assert len(view) == len(payload)
    view.release()
    write_direct(conn, wire[hlen:])
    assert conn.events_received() == [payload]


@sides
def test_buffer_asked_for_after_more_pieces_arrived(side: Side) -> None:
    """Pieces held by receive_data() before the first receive_buffer() are kept."""
    payload = os.urandom(200_000)
    wire = frame(side, OP_BINARY, payload)
    conn = Connection(side)
    for start, end in pairwise([0, 20, 5_000, 9_000]):
        conn.receive_data(wire[start:end])
    assert conn.events_received() == []
    view = conn.receive_buffer()
    assert view is not None
    assert len(view) == len(wire) - 9_000
    view.release()
    write_direct(conn, wire[9_000:])
    assert conn.events_received() == [payload]


@sides
def test_small_frame_after_the_large_one(side: Side) -> None:
    payload = os.urandom(150_000)
    large = frame(side, OP_BINARY, payload)
    small = frame(side, OP_TEXT, b"after")
    conn = Connection(side)
    conn.receive_data(large[:500])
    assert write_direct(conn, large[500:] + small) == len(large) - 500
    assert conn.receive_buffer() is None
    conn.receive_data(small)
    assert conn.events_received() == [payload, "after"]


@sides
def test_receive_data_finishes_the_frame_and_parses_what_follows(side: Side) -> None:
    """The rest, then a small frame and another large frame's head, in one receive_data()."""
    first, second = os.urandom(120_000), os.urandom(90_000)
    wire = (
        frame(side, OP_BINARY, first)
        + frame(side, OP_TEXT, "é".encode())
        + frame(side, OP_BINARY, second)
        + frame(side, OP_BINARY, b"tail")
    )
    conn = Connection(side)
    conn.receive_data(wire[:1000])
    view = conn.receive_buffer()
    assert view is not None
    view[:50_000] = wire[1000:51_000]
    view.release()
    conn.receive_buffer_updated(50_000)
    assert conn.events_received() == []
    end_second_head = len(frame(side, OP_BINARY, first)) + 20 + 3000
    conn.receive_data(wire[51_000:end_second_head])
    assert conn.events_received() == [first, "é"]
    view = conn.receive_buffer()
    assert view is not None  # the second large frame, read directly in turn
    view.release()
    written = write_direct(conn, wire[end_second_head:])
    assert conn.events_received() == [second]
    conn.receive_data(wire[end_second_head + written :])
    assert conn.events_received() == [b"tail"]
    assert plain(side, wire) == [first, "é", second, b"tail"]


@sides
@pytest.mark.parametrize("as_type", [bytes, bytearray, memoryview])
def test_mixing_receive_buffer_and_receive_data(side: Side, as_type: type) -> None:
    payload = os.urandom(400_000)
    wire = frame(side, OP_BINARY, payload) + frame(side, OP_PING, b"p")
    conn = Connection(side)
    conn.receive_data(wire[:100])
    rng = random.Random(7)
    pos = 100
    direct = data = 0
    while pos < len(wire):
        n = rng.randint(1, 40_000)
        view = conn.receive_buffer()
        if view is not None and rng.random() < 0.5:
            n = min(n, len(view))
            view[:n] = wire[pos : pos + n]
            view.release()
            conn.receive_buffer_updated(n)
            direct += 1
        else:
            if view is not None:
                view.release()
            conn.receive_data(as_type(wire[pos : pos + n]))
            data += 1
        pos += n
    assert direct
    assert data
    events = conn.events_received()
    assert events == [payload, Ping(b"p")]
    assert events == plain(side, wire)


@sides
def test_one_update_for_several_reads_into_the_same_view(side: Side) -> None:
    payload = os.urandom(100_000)
    wire = frame(side, OP_BINARY, payload)
    hlen = header_len(side, len(payload))
    conn = Connection(side)
    conn.receive_data(wire[:hlen])
    view = conn.receive_buffer()
    assert view is not None
    view[:30_000] = wire[hlen : hlen + 30_000]
    view[30_000:60_000] = wire[hlen + 30_000 : hlen + 60_000]
    view.release()
    conn.receive_buffer_updated(60_000)
    view = conn.receive_buffer()
    assert view is not None
    assert len(view) == 40_000
    view[:] = wire[hlen + 60_000 :]
    view.release()
    conn.receive_buffer_updated(40_000)
    assert conn.events_received() == [payload]


@sides
def test_fragmented_binary_message_with_large_continuations(side: Side) -> None:
    parts = [os.urandom(100_000), b"small", os.urandom(80_000), os.urandom(70_000)]
    wire = (
        frame(side, OP_BINARY, parts[0], fin=False)
        + frame(side, OP_CONT, parts[1], fin=False)
        + frame(side, OP_PING, b"between")
        + frame(side, OP_CONT, parts[2], fin=False)
        + frame(side, OP_CONT, parts[3])
    )
    conn = Connection(side)
    pos = 0
    reads = 0
    while pos < len(wire):
        view = conn.receive_buffer()
        if view is None:
            conn.receive_data(wire[pos : pos + 50])
            pos += 50
            continue
        view.release()
        pos += write_direct(conn, wire[pos:], random.Random(pos))
        reads += 1
    assert reads == 3  # each large frame, continuations included
    events = conn.events_received()
    assert events == [Ping(b"between"), b"".join(parts)]
    assert events == plain(side, wire)


# --- when there is no buffer ------------------------------------------------------------


@sides
def test_no_buffer_before_any_frame(side: Side) -> None:
    conn = Connection(side)
    assert conn.receive_buffer() is None
    conn.receive_data(frame(side, OP_BINARY, b"x" * 1000))
    assert conn.receive_buffer() is None
    assert conn.events_received() == [b"x" * 1000]


@sides
@pytest.mark.parametrize(
    ("size", "first", "direct"),
    [
        (LARGE - 1, 0, False),
        (LARGE, 0, True),  # a 64 KiB echo's frames: read directly since session 6
        (LARGE, LARGE - MISSING - 1, True),
        (LARGE, LARGE - MISSING, False),  # a few KiB missing: buffered
        (2 * LARGE, 2 * LARGE - MISSING, False),
    ],
)
def test_threshold(side: Side, size: int, first: int, direct: bool) -> None:
    wire = frame(side, OP_BINARY, bytes(size))
    conn = Connection(side)
    conn.receive_data(wire[: header_len(side, size) + first])
    view = conn.receive_buffer()
    assert (view is not None) is direct
    if view is not None:
        assert len(view) == size - first
        view.release()
    conn.receive_data(wire[header_len(side, size) + first :])
    assert conn.events_received() == [bytes(size)]


@sides
def test_no_buffer_for_a_small_frame_in_progress(side: Side) -> None:
    payload = os.urandom(60_000)
    wire = frame(side, OP_BINARY, payload)
    conn = Connection(side)
    conn.receive_data(wire[:10])
    assert conn.receive_buffer() is None
    conn.receive_data(wire[10:])
    assert conn.events_received() == [payload]


@sides
def test_no_buffer_for_large_text_frames(side: Side) -> None:
    text = "ü" * 100_000
    wire = frame(side, OP_TEXT, text.encode(), fin=False) + frame(side, OP_CONT, text.encode())
    conn = Connection(side)
    for i in range(0, len(wire), 30_000):
        assert conn.receive_buffer() is None
        conn.receive_data(wire[i : i + 30_000])
    assert conn.receive_buffer() is None
    assert conn.events_received() == [text + text]


@sides
def test_no_buffer_with_permessage_deflate(side: Side) -> None:
    payload = os.urandom(200_000)
    wire = frame(side, OP_BINARY, payload)  # uncompressed (RSV1 clear): still no buffer
    conn = Connection(side, extensions=[PerMessageDeflate()])
    for i in range(0, len(wire), 20_000):
        conn.receive_data(wire[i : i + 20_000])
        assert conn.receive_buffer() is None
    assert conn.events_received() == [payload]


@sides
def test_max_size_fails_with_1009_without_a_buffer(side: Side) -> None:
    wire = frame(side, OP_BINARY, bytes(200_000))
    conn = Connection(side, max_size=100_000)
    conn.receive_data(wire[:1000])
    assert conn.receive_buffer() is None
    assert_failed(conn, 1009)
    conn.receive_data(wire[1000:])
    assert conn.events_received() == []


@sides
def test_max_size_counts_the_whole_fragmented_message(side: Side) -> None:
    first = frame(side, OP_BINARY, bytes(60_000), fin=False)
    second = frame(side, OP_CONT, bytes(70_000))
    conn = Connection(side, max_size=100_000)
    conn.receive_data(first + second[:500])
    assert conn.receive_buffer() is None
    assert_failed(conn, 1009)


@sides
def test_max_size_reached_exactly_is_fine(side: Side) -> None:
    payload = os.urandom(100_000)
    wire = frame(side, OP_BINARY, payload)
    conn = Connection(side, max_size=100_000)
    conn.receive_data(wire[:20])
    write_direct(conn, wire[20:])
    assert conn.events_received() == [payload]


# --- receive_buffer_updated errors, failure and EOF ------------------------------------


@sides
def test_update_without_a_direct_read_is_refused(side: Side) -> None:
    conn = Connection(side)
    with pytest.raises(ValueError, match="do not fit"):
        conn.receive_buffer_updated(1)
    # A large frame is arriving but nobody asked for its buffer.
    conn.receive_data(frame(side, OP_BINARY, bytes(100_000))[:100])
    with pytest.raises(ValueError, match="do not fit"):
        conn.receive_buffer_updated(1)


@sides
@pytest.mark.parametrize("nbytes", [0, -1, -100_000])
def test_update_of_nothing_or_less_is_refused(side: Side, nbytes: int) -> None:
    conn, payload, wire = arriving(side, 100_000)
    view = conn.receive_buffer()
    assert view is not None
    view.release()
    with pytest.raises(ValueError, match="do not fit"):
        conn.receive_buffer_updated(nbytes)
    # Nothing changed: the frame still completes.
    write_direct(conn, wire[100:])
    assert conn.events_received() == [payload]


@sides
def test_update_past_the_frame_is_refused(side: Side) -> None:
    conn, payload, wire = arriving(side, 100_000)
    view = conn.receive_buffer()
    assert view is not None
    missing = len(view)
    view.release()
    with pytest.raises(ValueError, match="do not fit"):
        conn.receive_buffer_updated(missing + 1)
    write_direct(conn, wire[100:])
    assert conn.events_received() == [payload]
    with pytest.raises(ValueError, match="do not fit"):
        conn.receive_buffer_updated(1)  # the frame is over


@sides
def test_eof_in_the_middle(side: Side) -> None:
    conn, _payload, wire = arriving(side, 200_000)
    view = conn.receive_buffer()
    assert view is not None
    view[:5000] = wire[100:5100]
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.close_code == 1006
    assert conn.receive_buffer() is None
    conn.receive_buffer_updated(5000)  # a read that ended meanwhile: ignored
    conn.receive_buffer_updated(10**9)
    conn.receive_data(wire[5100:])
    view.release()
    assert conn.events_received() == []
    assert conn.state is State.CLOSED


@sides
def test_local_failure_in_the_middle(side: Side) -> None:
    """After fail(), a read already under way may still be reported, and is dropped."""
    conn, _payload, wire = arriving(side, 200_000)
    view = conn.receive_buffer()
    assert view is not None
    conn.fail(1011)
    assert conn.receive_buffer() is None
    view[: len(view)] = wire[100:]
    conn.receive_buffer_updated(len(view))
    view.release()
    assert conn.events_received() == []
    (close,) = sent_frames(conn)
    assert (close.opcode, close.close[0]) == (OP_CLOSE, 1011)
    assert conn.eof_sent


# --- property ----------------------------------------------------------------------------


@given(
    side=st.sampled_from([Side.SERVER, Side.CLIENT]),
    size=st.integers(LARGE + 1, 300_000),
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.floats(0, 1), max_size=12),
    direct_share=st.floats(0, 1),
    before=st.booleans(),
    after=st.booleans(),
)
@property_settings
def test_same_events_as_receive_data(
    side: Side,
    size: int,
    seed: int,
    cuts: list[float],
    direct_share: float,
    before: bool,
    after: bool,
) -> None:
    rng = random.Random(seed)
    payload = rng.randbytes(size)
    wire = frame(side, OP_BINARY, payload)
    if before:
        wire = frame(side, OP_TEXT, b"before") + wire
    if after:
        wire += frame(side, OP_BINARY, b"after") + frame(side, OP_BINARY, rng.randbytes(70_000))
    points = sorted({int(c * len(wire)) for c in cuts} | {0, len(wire)})
    conn = Connection(side)
    for start, end in pairwise(points):
        pos = start
        while pos < end:
            view = conn.receive_buffer()
            if view is not None and rng.random() < direct_share:
                n = min(len(view), end - pos)
                view[:n] = wire[pos : pos + n]
                view.release()
                conn.receive_buffer_updated(n)
                pos += n
            else:
                if view is not None:
                    view.release()
                conn.receive_data(wire[pos:end])
                pos = end
    events = conn.events_received()
    assert events == plain(side, wire)
    assert payload in events
    assert conn.receive_buffer() is None


# --- found by these tests, fixed ---------------------------------------------------


@sides
def test_receive_data_of_nothing_during_a_direct_read(side: Side) -> None:
    conn, payload, wire = arriving(side, 100_000)
    view = conn.receive_buffer()
    assert view is not None
    view.release()
    conn.receive_data(b"")  # accepted (and ignored) on every other path
    conn.receive_data(wire[100:])
    assert conn.events_received() == [payload]


@sides
def test_payload_that_cannot_be_allocated_leaves_the_connection_consistent(side: Side) -> None:
    # With max_size=None the peer chooses the length: 2**62 bytes can never be
    # allocated (more than the address space), so this fails at once, safely.
    conn = Connection(side, max_size=None)
    head = frame(side, OP_BINARY, b"")[:1] + bytes([(0x80 if side is Side.SERVER else 0) | 127])
    head += (2**62).to_bytes(8, "big") + (KEY if side is Side.SERVER else b"")
    conn.receive_data(head + bytes(1000))
    try:
        view = conn.receive_buffer()
    except MemoryError:
        view = None  # acceptable: the adapter may fall back to receive_data()
    assert view is None
    conn.receive_data(bytes(1000))  # the copying path must still work
    assert conn.state is State.OPEN
    assert conn.events_received() == []
