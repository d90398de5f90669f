"""RFC 6455 section 5.4: fragmented messages, received and sent."""

from __future__ import annotations

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    assert_failed,
    close_payload,
    feed,
    fragments,
    frame_to,
    sent_frames,
)

from hubbub.exceptions import LocalProtocolError
from hubbub.protocol import CloseReceived, Connection, Ping, Pong, Side, State


class TestReceiving:
    @pytest.mark.parametrize(
        "parts", [[b"a", b"b"], [b"ab", b"", b"c"], [b"", b""], [b"", b"", b"", b"abc"]]
    )
    @pytest.mark.parametrize("chunk_size", [None, 1, 5])
    def test_binary(self, conn: Connection, parts: list[bytes], chunk_size: int | None) -> None:
        assert feed(conn, fragments(conn, OP_BINARY, parts), chunk_size) == [b"".join(parts)]

    @pytest.mark.parametrize("chunk_size", [None, 1, 5])
    def test_text_split_inside_characters(self, conn: Connection, chunk_size: int | None) -> None:
        raw = "añ€😀".encode()  # 1-, 2-, 3- and 4-byte characters
        parts = [raw[:2], raw[2:4], raw[4:7], raw[7:8], raw[8:]]
        assert feed(conn, fragments(conn, OP_TEXT, parts), chunk_size) == ["añ€😀"]

    def test_messages_after_a_fragmented_one(self, conn: Connection) -> None:
        data = fragments(conn, OP_TEXT, [b"a", b"b"]) + frame_to(conn, OP_BINARY, b"c")
        data += fragments(conn, OP_BINARY, [b"d", b"e", b"f"]) + frame_to(conn, OP_TEXT, b"g")
        assert feed(conn, data) == ["ab", b"c", b"def", "g"]

    def test_continuation_without_a_message(self, conn: Connection) -> None:
        assert feed(conn, frame_to(conn, OP_CONT, b"x")) == []
        assert_failed(conn, 1002)

    def test_continuation_after_a_complete_message(self, conn: Connection) -> None:
        data = frame_to(conn, OP_TEXT, b"a") + frame_to(conn, OP_CONT, b"b")
        assert feed(conn, data) == ["a"]
        assert_failed(conn, 1002)

    @pytest.mark.parametrize("first", [OP_TEXT, OP_BINARY])
    @pytest.mark.parametrize("second", [OP_TEXT, OP_BINARY])
    def test_new_message_inside_a_fragmented_one(
        self, conn: Connection, first: int, second: int
    ) -> None:
        data = frame_to(conn, first, b"a", fin=False) + frame_to(conn, second, b"b")
        assert feed(conn, data) == []
        assert_failed(conn, 1002)

    def test_new_message_detected_on_the_header(self, conn: Connection) -> None:
        conn.receive_data(frame_to(conn, OP_TEXT, b"a", fin=False))
        conn.receive_data(frame_to(conn, OP_TEXT, b"b" * 300)[:2])
        assert_failed(conn, 1002)

    @pytest.mark.parametrize("chunk_size", [None, 1])
    def test_control_frames_interleaved(self, conn: Connection, chunk_size: int | None) -> None:
        # Section 5.4: "Control frames MAY be injected in the middle of a
        # fragmented message."
        data = frame_to(conn, OP_TEXT, "é".encode()[:1], fin=False)
        data += frame_to(conn, OP_PING, b"1")
        data += frame_to(conn, OP_CONT, "é".encode()[1:], fin=False)
        data += frame_to(conn, OP_PONG, b"2")
        data += frame_to(conn, OP_CONT, b"!", fin=True)
        assert feed(conn, data, chunk_size) == [Ping(b"1"), Pong(b"2"), "é!"]
        (pong,) = sent_frames(conn)
        assert (pong.opcode, pong.payload) == (OP_PONG, b"1")

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
    def test_ten_thousand_one_byte_fragments(self, conn: Connection, opcode: int) -> None:
        # There is no limit on the number of fragments, only on the size.
        parts = [b"x"] * 10_000
        data = fragments(conn, opcode, parts)
        expected = "x" * 10_000 if opcode == OP_TEXT else b"x" * 10_000
        assert feed(conn, data) == [expected]
        assert conn.state is State.OPEN

    def test_ten_thousand_fragments_in_small_chunks(self, conn: Connection) -> None:
        data = fragments(conn, OP_TEXT, ["€".encode()] * 10_000)
        assert feed(conn, data, chunk_size=1000) == ["€" * 10_000]

    def test_empty_fragments_do_not_count_as_messages(self, conn: Connection) -> None:
        data = fragments(conn, OP_BINARY, [b""] * 100)
        assert feed(conn, data) == [b""]

    def test_close_inside_a_fragmented_message(self, conn: Connection) -> None:
        # Section 5.4 allows a close frame between fragments: it is answered
        # like any close, and the unfinished message is dropped.
        data = frame_to(conn, OP_TEXT, b"part", fin=False)
        data += frame_to(conn, OP_CLOSE, close_payload(1000, "bye"))
        data += frame_to(conn, OP_CONT, b"ignored")
        assert feed(conn, data) == [CloseReceived(1000, "bye")]
        (reply,) = sent_frames(conn)
        assert reply.close == (1000, "")
        assert conn.close_exc is None


class TestSending:
    def test_fragmented_text(self, conn: Connection) -> None:
        conn.send_text("ab", fin=False)
        conn.send_ping(b"mid")  # control frames may be sent between fragments
        conn.send_continuation("cd", fin=False)
        conn.send_continuation(b"ef", fin=True)
        frames = sent_frames(conn)
        assert [(f.opcode, f.payload, f.fin) for f in frames] == [
            (OP_TEXT, b"ab", False),
            (OP_PING, b"mid", True),
            (OP_CONT, b"cd", False),
            (OP_CONT, b"ef", True),
        ]

    def test_fragmented_binary_then_new_message(self, conn: Connection) -> None:
        conn.send_binary(b"a", fin=False)
        conn.send_continuation(b"b", fin=True)
        conn.send_text("c")
        assert [(f.opcode, f.fin) for f in sent_frames(conn)] == [
            (OP_BINARY, False),
            (OP_CONT, True),
            (OP_TEXT, True),
        ]

    def test_continuation_without_a_message_is_a_local_error(self, conn: Connection) -> None:
        with pytest.raises(LocalProtocolError):
            conn.send_continuation(b"x", fin=True)
        assert conn.data_to_send() == []
        # Nothing was sent: the connection is still usable.
        conn.send_text("ok")
        assert [f.payload for f in sent_frames(conn)] == [b"ok"]

    @pytest.mark.parametrize("start", ["text", "binary"])
    def test_new_message_while_fragmenting_is_a_local_error(
        self, conn: Connection, start: str
    ) -> None:
        conn.send_binary(b"a", fin=False)
        send = conn.send_text if start == "text" else conn.send_binary
        with pytest.raises(LocalProtocolError):
            send(b"b")
        conn.send_continuation(b"c", fin=True)
        assert [(f.opcode, f.payload) for f in sent_frames(conn)] == [
            (OP_BINARY, b"a"),
            (OP_CONT, b"c"),
        ]
        assert conn.state is State.OPEN

    def test_round_trip_between_client_and_server(self) -> None:
        client, server = Connection(Side.CLIENT), Connection(Side.SERVER)
        client.send_text("\u03b1", fin=False)
        client.send_continuation("\u03b2", fin=False)
        client.send_continuation("", fin=True)
        for chunk in client.data_to_send():
            server.receive_data(chunk)
        assert server.events_received() == ["\u03b1\u03b2"]
