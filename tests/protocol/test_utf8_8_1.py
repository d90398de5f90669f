"""RFC 6455 section 8.1: text must be valid UTF-8, checked as it arrives (1007)."""

from __future__ import annotations

import pytest
from protocol_testing import (
    OP_CLOSE,
    OP_CONT,
    OP_TEXT,
    assert_failed,
    close_payload,
    feed,
    frame_to,
)

from hubbub.protocol import Connection, Side, State


def first_invalid_byte(data: bytes) -> int | None:
    """Index of the first byte that no valid UTF-8 text can have there.

    A reference written from the table of RFC 3629 section 4, independently of
    Python's codec: ``None`` when ``data`` is valid or a valid prefix.
    """
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            ranges = [(0x80, 0xBF)]
        elif b == 0xE0:
            ranges = [(0xA0, 0xBF), (0x80, 0xBF)]
        elif 0xE1 <= b <= 0xEC or 0xEE <= b <= 0xEF:
            ranges = [(0x80, 0xBF)] * 2
        elif b == 0xED:  # excludes the surrogates U+D800..U+DFFF
            ranges = [(0x80, 0x9F), (0x80, 0xBF)]
        elif b == 0xF0:
            ranges = [(0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)]
        elif 0xF1 <= b <= 0xF3:
            ranges = [(0x80, 0xBF)] * 3
        elif b == 0xF4:  # nothing above U+10FFFF
            ranges = [(0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)]
        else:
            return i
        for k, (lo, hi) in enumerate(ranges, start=1):
            if i + k >= n:
                return None
            if not lo <= data[i + k] <= hi:
                return i + k
        i += len(ranges) + 1
    return None


VALID = [
    "",
    "ascii",
    "κόσμε",
    "\u0080\u07ff\u0800\uffff\U00010000\U0010ffff",
    "\ud7ff\ue000\ufffd\ufeff",
    "Hello-µ@ßöäüàá-UTF-8!!",
]

# (name, bytes): the interesting cases of the Autobahn suite's section 6.
INVALID = [
    ("lone continuation", b"\x80"),
    ("continuation after ascii", b"abc\xbf"),
    ("C0 overlong", b"\xc0\xaf"),
    ("C1 overlong", b"\xc1\xbf"),
    ("E0 overlong", b"\xe0\x80\xaf"),
    ("F0 overlong", b"\xf0\x80\x80\xaf"),
    ("surrogate high", b"\xed\xa0\x80"),
    ("surrogate low", b"\xed\xbf\xbf"),
    ("surrogate pair", b"\xed\xa0\x80\xed\xb0\x80"),
    ("above U+10FFFF", b"\xf4\x90\x80\x80"),
    ("F5", b"\xf5\x80\x80\x80"),
    ("FE", b"\xfe"),
    ("FF", b"\xff"),
    ("truncated then ascii", b"\xce\x41"),
    ("truncated 3-byte then ascii", b"\xe2\x82A"),
    ("autobahn 6.4.1", "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"edited"),
    ("autobahn 6.3.1", "κόσμε".encode() + b"\xed\xa0\x80" + b"edited"),
]

TRUNCATED = [b"\xce", b"\xe2\x82", b"\xf0\x9f\x98", "é".encode() * 3 + b"\xf0"]


def test_reference_validator_agrees_with_python() -> None:
    for _, data in INVALID:
        assert first_invalid_byte(data) is not None
    for text in VALID:
        assert first_invalid_byte(text.encode()) is None
    for data in TRUNCATED:
        assert first_invalid_byte(data) is None


class TestValid:
    @pytest.mark.parametrize("text", VALID)
    @pytest.mark.parametrize("chunk_size", [None, 1, 2, 3])
    def test_whole_frame(self, conn: Connection, text: str, chunk_size: int | None) -> None:
        assert feed(conn, frame_to(conn, OP_TEXT, text.encode()), chunk_size) == [text]

    @pytest.mark.parametrize("text", VALID[1:])
    def test_fragmented_at_every_byte(self, conn: Connection, text: str) -> None:
        raw = text.encode()
        for cut in range(len(raw) + 1):
            c = Connection(conn.side)
            data = frame_to(c, OP_TEXT, raw[:cut], fin=False) + frame_to(c, OP_CONT, raw[cut:])
            assert feed(c, data) == [text]
            c = Connection(conn.side)
            assert feed(c, data, chunk_size=1) == [text]


class TestInvalid:
    @pytest.mark.parametrize(("name", "raw"), INVALID, ids=[n for n, _ in INVALID])
    @pytest.mark.parametrize("chunk_size", [None, 1])
    def test_fails_with_1007(
        self, conn: Connection, name: str, raw: bytes, chunk_size: int | None
    ) -> None:
        data = frame_to(conn, OP_TEXT, b"before") + frame_to(conn, OP_TEXT, raw)
        assert feed(conn, data, chunk_size) == ["before"]
        assert_failed(conn, 1007)

    @pytest.mark.parametrize(("name", "raw"), INVALID, ids=[n for n, _ in INVALID])
    def test_fails_fast_at_the_first_invalid_byte(
        self, conn: Connection, name: str, raw: bytes
    ) -> None:
        # Section 8.1 asks to fail when invalid UTF-8 is received; failing at
        # the first byte that cannot be part of valid text, while the frame is
        # still incomplete, spares reading the rest (Autobahn's "fail fast").
        bad = first_invalid_byte(raw)
        assert bad is not None
        payload = raw + b"x" * 1000  # the frame is far from complete at the bad byte
        frame = frame_to(conn, OP_TEXT, payload)
        header = len(frame) - len(payload)
        conn.receive_data(frame[: header + bad])
        assert conn.state is State.OPEN, "failed before the invalid byte"
        assert conn.data_to_send() == []
        conn.receive_data(frame[header + bad : header + bad + 1])
        assert_failed(conn, 1007)

    @pytest.mark.parametrize(("name", "raw"), INVALID, ids=[n for n, _ in INVALID])
    def test_fails_fast_in_a_continuation_frame(
        self, conn: Connection, name: str, raw: bytes
    ) -> None:
        bad = first_invalid_byte(raw)
        assert bad is not None
        conn.receive_data(frame_to(conn, OP_TEXT, b"start", fin=False))
        payload = raw + b"x" * 1000
        frame = frame_to(conn, OP_CONT, payload)
        header = len(frame) - len(payload)
        for i in range(header + bad):
            conn.receive_data(frame[i : i + 1])
        assert conn.state is State.OPEN
        conn.receive_data(frame[header + bad : header + bad + 1])
        assert_failed(conn, 1007)

    @pytest.mark.parametrize(("name", "raw"), INVALID, ids=[n for n, _ in INVALID])
    def test_split_across_fragments_at_every_byte(
        self, conn: Connection, name: str, raw: bytes
    ) -> None:
        for cut in range(len(raw) + 1):
            c = Connection(conn.side)
            data = frame_to(c, OP_TEXT, raw[:cut], fin=False) + frame_to(c, OP_CONT, raw[cut:])
            assert feed(c, data) == []
            assert_failed(c, 1007)

    @pytest.mark.parametrize("raw", TRUNCATED)
    def test_truncated_at_the_end_of_the_message(self, conn: Connection, raw: bytes) -> None:
        assert feed(conn, frame_to(conn, OP_TEXT, raw)) == []
        assert_failed(conn, 1007)

    @pytest.mark.parametrize("raw", TRUNCATED)
    def test_truncated_at_the_end_of_fragmented_message(self, conn: Connection, raw: bytes) -> None:
        data = frame_to(conn, OP_TEXT, raw, fin=False) + frame_to(conn, OP_CONT, b"", fin=True)
        assert feed(conn, data, chunk_size=1) == []
        assert_failed(conn, 1007)

    def test_across_a_frame_boundary(self, conn: Connection) -> None:
        # The first fragment ends with a valid prefix; the next frame's first
        # byte cannot continue it.
        conn.receive_data(frame_to(conn, OP_TEXT, b"ok\xce", fin=False))
        assert conn.state is State.OPEN
        frame = frame_to(conn, OP_CONT, b"A" + b"x" * 500)
        header = len(frame) - 501
        conn.receive_data(frame[: header + 1])
        assert_failed(conn, 1007)

    def test_invalid_utf8_is_1007_but_binary_is_fine(self) -> None:
        conn = Connection(Side.CLIENT)
        assert feed(conn, frame_to(conn, 0x2, b"\xff")) == [b"\xff"]
        feed(conn, frame_to(conn, OP_TEXT, b"\xff"))
        assert_failed(conn, 1007)

    def test_close_reason(self, conn: Connection) -> None:
        assert feed(conn, frame_to(conn, OP_CLOSE, close_payload(1000, b"\xed\xa0\x80"))) == []
        assert_failed(conn, 1007)
