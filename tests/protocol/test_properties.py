"""Property tests: whatever the frames and however the bytes are cut, the same messages."""

from __future__ import annotations

import codecs
from itertools import pairwise

from hypothesis import assume, given
from hypothesis import strategies as st
from protocol_testing import (
    OP_CONT,
    OP_TEXT,
    assert_failed,
    build_frame,
    feed_chunks,
    property_settings,
)
from test_utf8_8_1 import first_invalid_byte

from hubbub.protocol import CloseReceived, Connection, Ping, Pong, Side, State
from hubbub.protocol.frames import Opcode, encode_frame

sides = st.sampled_from([Side.SERVER, Side.CLIENT])


@st.composite
def payloads(draw: st.DrawFn, max_small: int = 300) -> bytes:
    """Payloads of each length class: 7-bit, 16-bit and 64-bit lengths."""
    kind = draw(st.sampled_from(["7", "16", "64"]))
    if kind == "7":
        return draw(st.binary(max_size=125))
    # Big payloads are built from a short random pattern to stay cheap.
    size = draw(st.integers(126, 65535) if kind == "16" else st.integers(65536, 70000))
    pattern = draw(st.binary(min_size=1, max_size=16))
    return (pattern * (size // len(pattern) + 1))[:size]


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at random places (a few cuts, or every byte, or none)."""
    if len(data) > 2000:
        cuts = draw(st.lists(st.integers(0, len(data)), max_size=20))
    else:
        mode = draw(st.sampled_from(["none", "random", "bytes"]))
        if mode == "none":
            return [data]
        if mode == "bytes":
            return [data[i : i + 1] for i in range(len(data))]
        cuts = draw(st.lists(st.integers(0, len(data)), max_size=30))
    points = sorted({0, len(data), *cuts})
    return [data[a:b] for a, b in pairwise(points)]


def encode_for(receiver: Connection, opcode: int, data: bytes, fin: bool = True) -> bytes:
    """Encode with the library's encoder, masked when the receiver is a server."""
    return b"".join(encode_frame(opcode, data, fin=fin, mask=receiver.side is Side.SERVER))


@property_settings
@given(
    side=sides,
    opcode=st.sampled_from(list(Opcode)),
    payload=payloads(),
    fin=st.booleans(),
    data=st.data(),
)
def test_frame_round_trip(
    side: Side, opcode: Opcode, payload: bytes, fin: bool, data: st.DataObject
) -> None:
    """Any frame encode_frame makes, a Connection reads back (section 5.2)."""
    conn = Connection(side, max_size=None)
    stream = b""
    expected: list[object]
    if opcode in (Opcode.PING, Opcode.PONG):
        payload = payload[:125]
        stream = encode_for(conn, opcode, payload)
        expected = [Ping(payload) if opcode == Opcode.PING else Pong(payload)]
    elif opcode == Opcode.CLOSE:
        reason = data.draw(st.text(max_size=40))
        assume(len(reason.encode()) <= 123)
        code = data.draw(st.sampled_from([1000, 1001, 1011, 3000, 4999]))
        stream = encode_for(conn, opcode, code.to_bytes(2, "big") + reason.encode())
        expected = [CloseReceived(code, reason)]
    else:
        if opcode == Opcode.TEXT:
            text = data.draw(st.text(max_size=200))
            payload = text.encode() if len(payload) < 126 else payload.decode("latin-1").encode()
            message: object = payload.decode()
        else:
            message = payload
        if opcode == Opcode.CONTINUATION:
            # A continuation frame needs a message to continue.
            stream = encode_for(conn, Opcode.BINARY, b"", fin=False)
        stream += encode_for(conn, opcode, payload, fin=fin)
        if not fin:
            stream += encode_for(conn, OP_CONT, b"", fin=True)
        expected = [message]
    events = feed_chunks(conn, data.draw(chunkings(stream)))
    assert events == expected
    assert conn.close_exc is None


@property_settings
@given(
    side=sides,
    opcode=st.sampled_from([0x1, 0x2, 0x9]),
    payload=payloads(),
    rsv1=st.booleans(),
    data=st.data(),
)
def test_encode_frame_matches_the_hand_built_frame(
    side: Side, opcode: int, payload: bytes, rsv1: bool, data: st.DataObject
) -> None:
    """encode_frame produces the same bytes as the independent reference."""
    if opcode == 0x9:
        payload = payload[:125]
    fin = data.draw(st.booleans()) if opcode < 8 else True
    encoded = b"".join(encode_frame(opcode, payload, fin=fin, rsv1=rsv1))
    assert encoded == build_frame(opcode, payload, fin=fin, rsv1=rsv1)
    masked = b"".join(encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=True))
    header_size = len(encoded) - len(payload)
    key = masked[header_size : header_size + 4]
    assert masked == build_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=key)


@property_settings
@given(side=sides, text=st.text(max_size=300), data=st.data())
def test_text_split_anywhere(side: Side, text: str, data: st.DataObject) -> None:
    """Fragment boundaries anywhere (inside characters too), random chunking."""
    raw = text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=10))
    points = sorted({0, len(raw), *cuts})
    parts = [raw[a:b] for a, b in pairwise(points)] or [b""]
    conn = Connection(side)
    stream = b""
    for i, part in enumerate(parts):
        stream += encode_for(conn, OP_TEXT if i == 0 else OP_CONT, part, fin=i == len(parts) - 1)
        if data.draw(st.booleans()):
            stream += encode_for(conn, Opcode.PING, b"%d" % i)  # interleaved control frame
    events = feed_chunks(conn, data.draw(chunkings(stream)))
    messages = [e for e in events if not isinstance(e, Ping)]
    assert messages == [text]
    assert conn.state is State.OPEN


@property_settings
@given(
    side=sides,
    before=st.text(max_size=50),
    after=st.binary(max_size=50),
    bad=st.sampled_from(
        [
            b"\x80",
            b"\xc0\x80",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xff",
            b"\xe0\x9f\x80",
            b"\xf0\x8f\xbf\xbf",
            b"\xce",
            b"\xf8\x88\x80\x80\x80",
        ]
    ),
    data=st.data(),
)
def test_invalid_utf8_is_always_1007(
    side: Side, before: str, after: bytes, bad: bytes, data: st.DataObject
) -> None:
    """However the invalid text is fragmented and cut, the result is 1007."""
    raw = before.encode() + bad + after
    try:
        raw.decode()
    except UnicodeDecodeError:
        pass
    else:
        assume(False)  # "\xce" completed by a continuation byte: valid after all
    # The reference validator agrees: a bad byte, or else text cut short.
    if first_invalid_byte(raw) is None:
        codecs.getincrementaldecoder("utf-8")().decode(raw)  # no error but at the end
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=6))
    points = sorted({0, len(raw), *cuts})
    parts = [raw[a:b] for a, b in pairwise(points)]
    conn = Connection(side)
    valid_first = encode_for(conn, Opcode.BINARY, b"ok")
    stream = valid_first + b"".join(
        encode_for(conn, OP_TEXT if i == 0 else OP_CONT, p, fin=i == len(parts) - 1)
        for i, p in enumerate(parts)
    )
    events = feed_chunks(conn, data.draw(chunkings(stream)))
    assert events == [b"ok"]
    assert_failed(conn, 1007)


@property_settings
@given(
    messages=st.lists(
        st.one_of(st.text(max_size=100), st.binary(max_size=100), st.just(b"x" * 70000)),
        max_size=8,
    ),
    fragment=st.integers(1, 50),
    data=st.data(),
)
def test_client_to_server_and_back(
    messages: list[str | bytes], fragment: int, data: st.DataObject
) -> None:
    """Messages sent with the send methods arrive intact, both directions."""
    for sender_side in (Side.CLIENT, Side.SERVER):
        sender = Connection(sender_side)
        receiver = Connection(Side.SERVER if sender_side is Side.CLIENT else Side.CLIENT)
        for message in messages:
            raw = message.encode() if isinstance(message, str) else message
            if len(raw) <= fragment or not data.draw(st.booleans()):
                if isinstance(message, str):
                    sender.send_text(message)
                else:
                    sender.send_binary(message)
                continue
            size = max(fragment, len(raw) // 50)  # at most ~50 fragments
            pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
            if isinstance(message, str):
                sender.send_text(pieces[0], fin=False)
            else:
                sender.send_binary(pieces[0], fin=False)
            for i, piece in enumerate(pieces[1:], start=2):
                sender.send_continuation(piece, fin=i == len(pieces))
        stream = b"".join(sender.data_to_send())
        assert feed_chunks(receiver, data.draw(chunkings(stream))) == messages
