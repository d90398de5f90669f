"""RFC 6455 section 5.6 (data frames) and the max_size limit (close code 1009)."""

from __future__ import annotations

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_CONT,
    OP_TEXT,
    assert_failed,
    assert_failure_event,
    feed,
    frame_to,
    sent_frames,
)

from hubbub.exceptions import InvalidState, LocalProtocolError, PayloadTooBig
from hubbub.protocol import DEFAULT_MAX_SIZE, Connection, Side, State

MiB = 2**20


class TestMessages:
    @pytest.mark.parametrize("text", ["", "a", "ünïcödé", "😀" * 1000, "x" * 70_000])
    @pytest.mark.parametrize("chunk_size", [None, 1, 4096])
    def test_text_is_str(self, conn: Connection, text: str, chunk_size: int | None) -> None:
        if chunk_size == 1 and len(text) > 1000:
            chunk_size = 7  # keep the test fast
        (event,) = feed(conn, frame_to(conn, OP_TEXT, text.encode()), chunk_size)
        assert type(event) is str
        assert event == text

    @pytest.mark.parametrize("payload", [b"", b"\x00", bytes(range(256)), b"\xff" * 70_000])
    def test_binary_is_bytes(self, conn: Connection, payload: bytes) -> None:
        (event,) = feed(conn, frame_to(conn, OP_BINARY, payload))
        assert type(event) is bytes
        assert event == payload

    def test_binary_need_not_be_utf8(self, conn: Connection) -> None:
        assert feed(conn, frame_to(conn, OP_BINARY, b"\xc0\xaf")) == [b"\xc0\xaf"]

    def test_send_text_accepts_str_and_bytes(self, conn: Connection) -> None:
        conn.send_text("é")
        conn.send_text("é".encode())
        assert [f.payload for f in sent_frames(conn)] == ["é".encode()] * 2

    def test_send_binary_accepts_bytes_like(self, conn: Connection) -> None:
        conn.send_binary(b"a")
        conn.send_binary(bytearray(b"b"))
        conn.send_binary(memoryview(b"xcx")[1:2])
        assert [(f.opcode, f.payload) for f in sent_frames(conn)] == [
            (OP_BINARY, b"a"),
            (OP_BINARY, b"b"),
            (OP_BINARY, b"c"),
        ]

    @pytest.mark.parametrize(
        "message", ["", "é", "x" * 125, "ü" * 600, "y" * 2000, b"", b"\x00\xff", b"z" * 70_000]
    )
    def test_send_message_sends_one_whole_frame(
        self, conn: Connection, message: str | bytes
    ) -> None:
        # Small server messages take the one-piece path (speedups.message_frame),
        # the others send_data_frame: the frames on the wire are the same.
        conn.send_message(message)
        (sent,) = sent_frames(conn)
        is_text = isinstance(message, str)
        payload = message.encode() if isinstance(message, str) else message
        assert (sent.opcode, sent.fin, sent.payload) == (
            OP_TEXT if is_text else OP_BINARY,
            True,
            payload,
        )
        assert sent.masked is (conn.side is Side.CLIENT)  # section 5.1

    def test_send_message_inside_a_fragmented_message_is_refused(self, conn: Connection) -> None:
        conn.send_text("a", fin=False)
        with pytest.raises(LocalProtocolError):
            conn.send_message("b")  # section 5.4: no other data frame in between
        conn.send_continuation("c", fin=True)
        conn.send_message("d")
        assert [(f.opcode, f.payload) for f in sent_frames(conn)] == [
            (OP_TEXT, b"a"),
            (OP_CONT, b"c"),
            (OP_TEXT, b"d"),
        ]

    def test_send_message_after_close_is_refused(self, conn: Connection) -> None:
        conn.send_close()
        with pytest.raises(InvalidState):
            conn.send_message("late")


class TestMaxSize:
    def test_default_is_one_mebibyte(self) -> None:
        assert MiB == DEFAULT_MAX_SIZE
        assert Connection(Side.SERVER).max_size == MiB

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
    def test_exactly_max_size_is_accepted(self, conn: Connection, opcode: int) -> None:
        (event,) = feed(conn, frame_to(conn, opcode, b"a" * MiB))
        assert len(event) == MiB  # type: ignore[arg-type]

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
    def test_one_byte_more_fails_with_1009(self, conn: Connection, opcode: int) -> None:
        assert feed(conn, frame_to(conn, opcode, b"a" * (MiB + 1))) == []
        assert_failed(conn, 1009)
        assert isinstance(conn.close_exc, PayloadTooBig)

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
    def test_checked_from_the_header_before_the_payload(
        self, conn: Connection, opcode: int
    ) -> None:
        # A hostile peer announcing 2**62 bytes is refused at once, before
        # any of the payload is buffered.
        header = frame_to(conn, opcode, b"", declared_length=2**62)
        conn.receive_data(header)
        assert_failed(conn, 1009)

    def test_fragmented_message_over_the_limit(self, conn: Connection) -> None:
        conn.max_size = 1000
        data = frame_to(conn, OP_BINARY, b"a" * 600, fin=False)
        data += frame_to(conn, OP_CONT, b"b" * 400, fin=False)
        conn.receive_data(data)
        assert conn.events_received() == []
        assert conn.state is State.OPEN
        # The header of the third fragment is enough to know.
        conn.receive_data(frame_to(conn, OP_CONT, b"c", fin=True)[:2])
        assert_failed(conn, 1009)

    @pytest.mark.parametrize("chunk_size", [None, 1, 100])
    def test_fragmented_text_over_the_limit(self, conn: Connection, chunk_size: int | None) -> None:
        conn.max_size = 1000
        data = frame_to(conn, OP_TEXT, b"a" * 999, fin=False)
        data += frame_to(conn, OP_CONT, b"b" * 2, fin=True)
        assert feed(conn, data, chunk_size) == []
        assert_failed(conn, 1009)

    def test_fragmented_text_at_the_limit(self, conn: Connection) -> None:
        conn.max_size = 1000
        data = frame_to(conn, OP_TEXT, b"a" * 999, fin=False)
        data += frame_to(conn, OP_CONT, b"b", fin=True)
        assert feed(conn, data, 10) == ["a" * 999 + "b"]

    def test_limit_applies_per_message(self, conn: Connection) -> None:
        conn.max_size = 10
        data = b"".join(frame_to(conn, OP_BINARY, b"x" * 10) for _ in range(100))
        assert feed(conn, data) == [b"x" * 10] * 100

    def test_none_means_no_limit(self) -> None:
        conn = Connection(Side.CLIENT, max_size=None)
        (event,) = feed(conn, frame_to(conn, OP_BINARY, b"z" * (3 * MiB)))
        assert event == b"z" * (3 * MiB)

    def test_custom_limit(self) -> None:
        conn = Connection(Side.SERVER, max_size=5)
        assert feed(conn, frame_to(conn, OP_TEXT, b"12345")) == ["12345"]
        assert feed(conn, frame_to(conn, OP_TEXT, b"123456")) == []
        assert_failed(conn, 1009)

    def test_deferred(self) -> None:
        conn = Connection(Side.SERVER, max_size=5, defer_failure=True)
        data = frame_to(conn, OP_TEXT, b"ok") + frame_to(conn, OP_TEXT, b"too long")
        events = feed(conn, data)
        assert events[0] == "ok"
        assert_failure_event(events, 1009)
        assert conn.data_to_send() == []
