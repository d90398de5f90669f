"""The accelerator's building blocks: C and pure Python against simple references.

Each function is checked against an obvious reference written here, for both
implementations (the C one only when it was built), so the two cannot drift.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub import speedups

try:
    from hubbub import _speedups
except ImportError:  # built without a compiler
    _speedups = None  # type: ignore[assignment]

IMPLS: list[Any] = [pytest.param("py", id="py")]
if _speedups is not None:
    IMPLS.append(pytest.param("c", id="c"))


def impl(kind: str, name: str) -> Callable[..., Any]:
    if kind == "c":
        assert _speedups is not None
        return getattr(_speedups, name)  # type: ignore[no-any-return]
    return getattr(speedups, "py_" + name)  # type: ignore[no-any-return]


def ref_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


def ref_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    key: bytes | None = None,
    rsv: int = 0,
    form: int | None = None,
) -> bytes:
    """Build a frame by hand (RFC 6455 section 5.2), independently of the library."""
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mbit = 0x80 if key is not None else 0
    if form is None:
        form = 0 if n < 126 else 1 if n < 65536 else 2
    if form == 0:
        head = bytes([b0, mbit | n])
    elif form == 1:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if key is None:
        return head + payload
    return head + key + ref_mask(payload, key)


# --- masking ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", IMPLS)
@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 1000, 4099])
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 6])
def test_apply_mask_sizes_and_offsets(kind: str, n: int, offset: int) -> None:
    data = os.urandom(n)
    key = b"\x01\x9a\xff\x3c"
    assert impl(kind, "apply_mask")(data, key, offset) == ref_mask(data, key, offset)


@pytest.mark.parametrize("kind", IMPLS)
@given(
    data=st.binary(max_size=300), key=st.binary(min_size=4, max_size=4), offset=st.integers(0, 9)
)
@settings(max_examples=200, deadline=None)
def test_apply_mask_is_xor(kind: str, data: bytes, key: bytes, offset: int) -> None:
    fn = impl(kind, "apply_mask")
    masked = fn(data, key, offset)
    assert masked == ref_mask(data, key, offset)
    assert fn(masked, key, offset) == data  # masking is its own inverse


@pytest.mark.parametrize("kind", IMPLS)
def test_apply_mask_accepts_buffers_and_pieces(kind: str) -> None:
    fn = impl(kind, "apply_mask")
    key = b"abcd"
    data = os.urandom(1001)
    whole = fn(data, key)
    # Unmasking piece by piece with the right offsets gives the same result.
    pieces = fn(bytearray(data[:5]), key, 0) + fn(memoryview(data)[5:600], key, 5)
    pieces += fn(data[600:], bytearray(key), 600)
    assert pieces == whole


@pytest.mark.parametrize("kind", IMPLS)
def test_apply_mask_rejects_bad_keys(kind: str) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        impl(kind, "apply_mask")(b"data", b"abc")
    with pytest.raises(ValueError, match=">= 0"):
        impl(kind, "apply_mask")(b"data", b"abcd", -1)


@pytest.mark.parametrize("kind", IMPLS)
def test_mask_inplace(kind: str) -> None:
    buf = bytearray(os.urandom(200))
    original = bytes(buf)
    impl(kind, "mask_inplace")(buf, 10, 150, b"wxyz", 3)
    assert buf[:10] == original[:10]
    assert buf[150:] == original[150:]
    assert bytes(buf[10:150]) == ref_mask(original[10:150], b"wxyz", 3)
    with pytest.raises(ValueError, match="range"):
        impl(kind, "mask_inplace")(buf, 10, 300, b"wxyz")


@pytest.mark.parametrize("kind", IMPLS)
@given(
    chunks=st.lists(st.binary(max_size=70), min_size=1, max_size=6),
    data=st.data(),
    key=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
)
@settings(max_examples=200, deadline=None)
def test_unmask_join_is_slice_of_join_then_xor(
    kind: str, chunks: list[bytes], data: st.DataObject, key: bytes | None
) -> None:
    joined = b"".join(chunks)
    start = data.draw(st.integers(0, len(joined)))
    length = data.draw(st.integers(0, len(joined) - start))
    pieces: list[Any] = [bytearray(c) if i % 2 else c for i, c in enumerate(chunks)]
    got = impl(kind, "unmask_join")(pieces, start, length, key)
    wanted = joined[start : start + length]
    assert got == (wanted if key is None else ref_mask(wanted, key))
    assert type(got) is bytes


@pytest.mark.parametrize("kind", IMPLS)
def test_unmask_join_rejects_short_chunks_and_bad_arguments(kind: str) -> None:
    unmask_join = impl(kind, "unmask_join")
    with pytest.raises(ValueError, match="fewer bytes"):
        unmask_join([b"abc", b"de"], 2, 4, None)
    with pytest.raises(ValueError, match=">= 0"):
        unmask_join([b"abc"], -1, 1, None)
    with pytest.raises(ValueError, match="4 bytes"):
        unmask_join([b"abcdef"], 0, 2, b"xyz")


# --- parse_messages ------------------------------------------------------------------

KEY = b"\x37\xfa\x21\x3d"
INCOMPLETE = b"<incomplete>"


@pytest.mark.parametrize("kind", IMPLS)
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_parse_messages_takes_whole_messages(kind: str, masked: bool) -> None:
    key = KEY if masked else None
    payloads: list[str | bytes] = ["hi", b"\x00\x01", "é" * 70, b"x" * 300, "", b"", "a" * 70000]
    wire = b""
    for p in payloads:
        wire += frame(
            1 if isinstance(p, str) else 2, p.encode() if isinstance(p, str) else p, key=key
        )
    for buffer in (wire, bytearray(wire), memoryview(wire)):
        events: list[Any] = []
        pos = impl(kind, "parse_messages")(buffer, 0, masked, -1, events)
        assert pos == len(wire)
        assert events == payloads
        assert [type(e) for e in events] == [type(p) for p in payloads]


@pytest.mark.parametrize("kind", IMPLS)
@pytest.mark.parametrize(
    "stopper",
    [
        frame(1, b"frag", fin=False, key=KEY),  # fragmented
        frame(0, b"cont", key=KEY),  # continuation
        frame(9, b"ping", key=KEY),  # control frame
        frame(8, b"\x03\xe8", key=KEY),  # close
        frame(1, b"rsv", rsv=0x40, key=KEY),  # RSV1 without an extension
        frame(3, b"", key=KEY),  # reserved opcode
        frame(1, b"unmasked"),  # a server requires masking
        frame(1, b"\xff\xfe", key=KEY),  # invalid UTF-8
        frame(2, b"x" * 101, key=KEY),  # over max_size
        INCOMPLETE + frame(2, b"x" * 50, key=KEY)[:-1],
        INCOMPLETE + frame(2, b"x" * 50, key=KEY)[:1],  # header
        INCOMPLETE + frame(2, b"x" * 50, key=KEY)[:4],  # mask
        INCOMPLETE + frame(2, b"x" * 200, key=KEY)[:3],  # extended length
    ],
)
def test_parse_messages_stops_at_other_frames(kind: str, stopper: bytes) -> None:
    head = frame(1, b"first", key=KEY) + frame(2, b"second", key=KEY)
    wire = b"junk" + head + stopper.removeprefix(INCOMPLETE)
    if not stopper.startswith(INCOMPLETE):  # what follows a whole frame is not taken either
        wire += frame(1, b"after", key=KEY)
    events: list[Any] = []
    pos = impl(kind, "parse_messages")(bytearray(wire), 4, True, 100, events)
    assert events == ["first", b"second"]
    assert pos == 4 + len(head)


@pytest.mark.parametrize("kind", IMPLS)
def test_parse_messages_length_forms(kind: str) -> None:
    # A small payload in the 16-bit and 64-bit forms is legal (section 5.2
    # only says the minimal form SHOULD be used... it is not checked).
    wire = frame(2, b"abc", key=KEY, form=1) + frame(1, b"def", key=KEY, form=2)
    events: list[Any] = []
    assert impl(kind, "parse_messages")(wire, 0, True, -1, events) == len(wire)
    assert events == [b"abc", "def"]
    huge = bytes([0x82, 0xFF]) + (2**63).to_bytes(8, "big") + KEY
    assert impl(kind, "parse_messages")(huge, 0, True, -1, []) == 0


def test_parse_messages_c_checks_its_arguments() -> None:
    # The C function parses its arguments by hand (METH_FASTCALL, once per
    # read): each wrong one must still be an exception, never a crash.
    if _speedups is None:
        pytest.skip("the C accelerator is not built")
    parse = _speedups.parse_messages
    wire = frame(1, b"ok", key=KEY)
    with pytest.raises(TypeError, match="5 arguments"):
        parse(wire, 0, True, -1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="must be a list"):
        parse(wire, 0, True, -1, ())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse("text", 0, True, -1, [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse(wire, "0", True, -1, [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse(wire, 0, True, None, [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        parse(wire, len(wire) + 1, True, -1, [])
    events: list[Any] = []
    assert parse(wire, 0, 1, -1, events) == len(wire)  # any truth value for masked
    assert events == ["ok"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2, 8, 9]), st.binary(max_size=140), st.booleans(), st.booleans()
        ),
        max_size=8,
    ),
    st.booleans(),
    st.integers(0, 12),
)
@settings(max_examples=300, deadline=None)
def test_parse_messages_c_matches_python(
    frames: list[tuple[int, bytes, bool, bool]], masked: bool, cut: int
) -> None:
    if _speedups is None:
        pytest.skip("the C accelerator is not built")
    wire = b"".join(
        frame(op, data, fin=fin, key=(KEY if masked != flip else None))
        for op, data, fin, flip in frames
    )
    wire = wire[: max(0, len(wire) - cut)]
    ev_py: list[Any] = []
    ev_c: list[Any] = []
    pos_py = speedups.py_parse_messages(wire, 0, masked, 128, ev_py)
    pos_c = _speedups.parse_messages(wire, 0, masked, 128, ev_c)
    assert (pos_c, ev_c) == (pos_py, ev_py)


# --- message_frame -------------------------------------------------------------------


@pytest.mark.parametrize("kind", IMPLS)
@pytest.mark.parametrize("n", [0, 1, 125, 126, 65535, 65536, 70_000])
def test_message_frame_length_forms(kind: str, n: int) -> None:
    # Section 5.2: 7-bit length up to 125, then 16-bit, then 64-bit.
    message_frame = impl(kind, "message_frame")
    assert message_frame(b"b" * n) == frame(2, b"b" * n)
    assert message_frame("t" * n) == frame(1, b"t" * n)


@pytest.mark.parametrize("kind", IMPLS)
def test_message_frame_types(kind: str) -> None:
    message_frame = impl(kind, "message_frame")
    assert message_frame("é😀") == frame(1, "é😀".encode())
    assert message_frame(bytearray(b"ab")) == frame(2, b"ab")
    assert message_frame(memoryview(b"xabx")[1:3]) == frame(2, b"ab")
    with pytest.raises(TypeError, match="use str or bytes"):
        message_frame(42)
    with pytest.raises(UnicodeEncodeError):
        message_frame("\udc80")  # a lone surrogate has no UTF-8, as in str.encode()


@given(st.one_of(st.text(max_size=300), st.binary(max_size=70_000)))
@settings(max_examples=300, deadline=None)
def test_message_frame_c_matches_python_and_parses_back(message: str | bytes) -> None:
    if _speedups is None:
        pytest.skip("the C accelerator is not built")
    wire = _speedups.message_frame(message)
    assert wire == speedups.py_message_frame(message)
    # What a client's parser sees (unmasked server frame) is the message again.
    events: list[Any] = []
    assert speedups.py_parse_messages(wire, 0, False, -1, events) == len(wire)
    assert events == [message]


# --- write_chunks and broadcast_frames ---------------------------------------------


class RecordingWriter:
    """A transport's write/writelines, recording what they were given (copied)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []
        self.fail = fail

    def write(self, data: bytes) -> None:
        if self.fail:
            raise OSError("broken")
        self.calls.append(("write", [data]))

    def writelines(self, data: list[bytes]) -> None:
        if self.fail:
            raise OSError("broken")
        self.calls.append(("writelines", list(data)))


@pytest.mark.parametrize("kind", IMPLS)
@given(st.lists(st.binary(max_size=20), max_size=5), st.one_of(st.none(), st.binary(max_size=9)))
@settings(max_examples=100, deadline=None)
def test_write_chunks_one_call_then_empty(
    kind: str, queued_chunks: list[bytes], last: bytes | None
) -> None:
    write_chunks = impl(kind, "write_chunks")
    writer = RecordingWriter()
    queued = list(queued_chunks)
    if last is None:
        assert write_chunks(queued, writer) is None
    else:
        assert write_chunks(queued, writer, last) is None
    # The shared frames (last) go after what was queued: the order of messages.
    chunks = queued_chunks + ([] if last is None else [last])
    assert queued == []
    if not chunks:
        assert writer.calls == []  # nothing to write: no call at all
    elif len(chunks) == 1:
        assert writer.calls == [("write", chunks)]  # the transport joins nothing
    else:
        assert writer.calls == [("writelines", chunks)]


@pytest.mark.parametrize("kind", IMPLS)
def test_write_chunks_keeps_the_chunks_when_the_writer_fails(kind: str) -> None:
    write_chunks = impl(kind, "write_chunks")
    for queued in ([b"a"], [b"a", b"b"]):
        kept = list(queued)
        with pytest.raises(OSError, match="broken"):
            write_chunks(queued, RecordingWriter(fail=True))
        assert queued == kept


class ClearRecordingList(list[bytes]):
    """A list whose clear() records what it let go (as tests/wire_frames.py taps a core)."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__(chunks)
        self.cleared: list[bytes] = []

    def clear(self) -> None:
        self.cleared.extend(self)
        super().clear()


@pytest.mark.parametrize("kind", IMPLS)
def test_write_chunks_empties_a_list_subclass_by_its_clear(kind: str) -> None:
    # The core's outgoing list may be replaced by a subclass that watches what
    # is written (the interop tests' frame log): both implementations empty it
    # through its own clear(), never around it.
    write_chunks = impl(kind, "write_chunks")
    for chunks in ([b"a"], [b"a", b"b"]):
        queued = ClearRecordingList(chunks)
        writer = RecordingWriter()
        write_chunks(queued, writer, b"z")
        assert list(queued) == []
        assert queued.cleared == [*chunks, b"z"]
        assert [c for _, data in writer.calls for c in data] == [*chunks, b"z"]


def test_write_chunks_c_checks_its_arguments() -> None:
    if _speedups is None:
        pytest.skip("the C accelerator is not built")
    with pytest.raises(TypeError):
        _speedups.write_chunks((b"a",), RecordingWriter())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _speedups.write_chunks([b"a"])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _speedups.write_chunks([b"a"], RecordingWriter(), None, None)  # type: ignore[call-arg]


class Sink:
    """A connection's send_frames_nowait: takes frames while under its bound."""

    def __init__(self, buffered: int, paused: bool) -> None:
        self.buffered = buffered
        self.paused = paused
        self.got: list[tuple[bytes, int | None]] = []

    def send_frames_nowait(self, frames: bytes, *, limit: int | None = None) -> bool:
        self.got.append((frames, limit))
        return not self.paused if limit is None else self.buffered <= limit


@pytest.mark.parametrize("kind", IMPLS)
@given(
    st.lists(st.tuples(st.integers(0, 100), st.booleans()), max_size=8),
    st.one_of(st.none(), st.integers(0, 100)),
)
@settings(max_examples=100, deadline=None)
def test_broadcast_frames_calls_each_connection_once(
    kind: str, states: list[tuple[int, bool]], limit: int | None
) -> None:
    broadcast_frames = impl(kind, "broadcast_frames")
    sinks = [Sink(buffered, paused) for buffered, paused in states]
    # Any iterable: a server's connections are a set, a generator works too.
    sent, refused = broadcast_frames(iter(sinks), b"frame", limit)
    assert all(sink.got == [(b"frame", limit)] for sink in sinks)
    expected = [
        sink for sink in sinks if not (not sink.paused if limit is None else sink.buffered <= limit)
    ]
    assert refused == expected  # in order, the same objects
    assert sent == len(sinks) - len(expected)


@pytest.mark.parametrize("kind", IMPLS)
def test_broadcast_frames_stops_at_an_error(kind: str) -> None:
    broadcast_frames = impl(kind, "broadcast_frames")

    class Broken(Sink):
        def send_frames_nowait(self, frames: bytes, *, limit: int | None = None) -> bool:
            raise RuntimeError("boom")

    after = Sink(0, False)
    with pytest.raises(RuntimeError, match="boom"):
        broadcast_frames([Sink(0, False), Broken(0, False), after], b"f", None)
    assert after.got == []
    with pytest.raises(TypeError):
        broadcast_frames(42, b"f", None)


# --- choosing ----------------------------------------------------------------------


def test_environment_variable_forces_pure_python() -> None:
    code = "import hubbub.speedups as s; print(s.ACCELERATED, s.apply_mask is s.py_apply_mask)"
    env = dict(os.environ, HUBBUB_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "True"]
    env.pop("HUBBUB_NO_EXTENSIONS")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [str(_speedups is not None), str(_speedups is None)]


def test_core_uses_the_chosen_implementation() -> None:
    from hubbub.protocol import frames

    assert frames.apply_mask is speedups.apply_mask


# --- the core's hot paths (protocol/connection.py) ---------------------------------


@pytest.mark.parametrize("chunk", [1000, 65536, 100_000])
def test_large_frames_arriving_in_pieces(chunk: int) -> None:
    """A large binary frame is held back in pieces and joined once; nothing is lost."""
    from hubbub.protocol import Connection, Side

    conn = Connection(Side.SERVER, max_size=2**22)
    big = os.urandom(300_000)
    part1, part2 = os.urandom(100_000), os.urandom(90_000)
    wire = (
        frame(2, big, key=KEY)
        + frame(1, b"small", key=KEY)
        + frame(2, part1, fin=False, key=KEY)
        + frame(9, b"ping", key=KEY)  # a control frame between the fragments
        + frame(0, part2, key=KEY)
        + frame(1, "é".encode() * 50_000, key=KEY)
    )
    reusable = bytearray(chunk)
    events: list[Any] = []
    for i in range(0, len(wire), chunk):
        piece = wire[i : i + chunk]
        # The adapter may hand over a buffer it reuses: what is held must be a copy.
        reusable[: len(piece)] = piece
        conn.receive_data(memoryview(reusable)[: len(piece)])
        events += conn.events_received()
    data = [e for e in events if isinstance(e, (str, bytes))]
    assert data == [big, "small", part1 + part2, "é" * 50_000]
    assert conn.state == 1
    assert conn.reader.buffered == 0


def test_large_frame_over_max_size_fails_before_it_is_held() -> None:
    from hubbub.protocol import Connection, Side

    conn = Connection(Side.SERVER, max_size=100_000)
    wire = frame(2, bytes(200_000), key=KEY)
    conn.receive_data(wire[:1000])
    assert conn.close_sent is not None
    assert conn.close_sent.code == 1009  # section 7.4.1: message too big
    assert conn.large_frame is None  # nothing held


async def test_pipelined_echoes_are_written_together_and_in_order() -> None:
    """send() holds small frames while more messages wait; nothing is lost or reordered."""
    import asyncio

    from hubbub.asyncio import connect, serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def echo_later(ws: Any) -> None:
        # Echoes half the messages while the other half still waits in the
        # queue (so every send is held back), then never calls recv() again:
        # the call_soon flush must write them.
        first = await ws.recv()
        while len(ws._messages) < 9:
            await asyncio.sleep(0.01)
        for message in [first] + [await ws.recv() for _ in range(4)]:
            await ws.send(message)
        await asyncio.sleep(3600)

    for handler, count, expected in ((echo, 200, 200), (echo_later, 10, 5)):
        async with serve(handler, "127.0.0.1", 0, ping_interval=None, max_queue=1000) as server:
            ws = await connect(f"ws://127.0.0.1:{server.port}/", ping_interval=None)
            # One write of many frames: the server reads them in one go.
            ws.protocol.outgoing.extend(
                frame(1, f"message {i}".encode(), key=KEY) for i in range(count)
            )
            ws._flush()
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(expected)]
            assert got == [f"message {i}" for i in range(expected)]
            await ws.close()
