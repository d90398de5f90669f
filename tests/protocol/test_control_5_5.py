"""RFC 6455 section 5.5: control frames (close, ping, pong)."""

from __future__ import annotations

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    assert_failed,
    close_payload,
    feed,
    frame_to,
    sent_frames,
)

from hubbub.exceptions import InvalidState, LocalProtocolError
from hubbub.protocol import CloseReceived, Connection, Ping, Pong, State


class TestLimits:
    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
    def test_125_bytes_is_the_maximum(self, conn: Connection, opcode: int) -> None:
        payload = close_payload(1000, "r" * 123) if opcode == OP_CLOSE else b"p" * 125
        events = feed(conn, frame_to(conn, opcode, payload))
        assert len(events) == 1
        assert conn.close_exc is None

    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
    @pytest.mark.parametrize("size", [126, 127, 65536])
    def test_more_than_125_bytes_fails_with_1002(
        self, conn: Connection, opcode: int, size: int
    ) -> None:
        payload = close_payload(1000, "r" * (size - 2)) if opcode == OP_CLOSE else b"p" * size
        assert feed(conn, frame_to(conn, opcode, payload)) == []
        assert_failed(conn, 1002)

    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
    def test_too_long_is_detected_from_the_header(self, conn: Connection, opcode: int) -> None:
        conn.receive_data(frame_to(conn, opcode, b"p" * 126)[:4])
        assert_failed(conn, 1002)

    @pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
    def test_fragmented_control_frame_fails_with_1002(self, conn: Connection, opcode: int) -> None:
        # Section 5.5: "All control frames ... MUST NOT be fragmented."
        assert feed(conn, frame_to(conn, opcode, b"", fin=False)) == []
        assert_failed(conn, 1002)

    def test_fragmented_control_frame_inside_a_fragmented_message(self, conn: Connection) -> None:
        data = frame_to(conn, OP_TEXT, b"a", fin=False) + frame_to(conn, OP_PING, b"", fin=False)
        assert feed(conn, data) == []
        assert_failed(conn, 1002)


class TestPing:
    @pytest.mark.parametrize("payload", [b"", b"\x00", b"ping", bytes(range(125))])
    def test_answered_with_a_pong_with_the_same_payload(
        self, conn: Connection, payload: bytes
    ) -> None:
        # Section 5.5.3: "A Pong frame sent in response to a Ping frame must
        # have identical Application data".
        assert feed(conn, frame_to(conn, OP_PING, payload)) == [Ping(payload)]
        (pong,) = sent_frames(conn)
        assert (pong.opcode, pong.payload, pong.fin) == (OP_PONG, payload, True)

    def test_each_ping_gets_its_pong(self, conn: Connection) -> None:
        data = b"".join(frame_to(conn, OP_PING, str(i).encode()) for i in range(5))
        assert feed(conn, data) == [Ping(str(i).encode()) for i in range(5)]
        assert [f.payload for f in sent_frames(conn)] == [str(i).encode() for i in range(5)]

    def test_answered_after_we_sent_close(self, conn: Connection) -> None:
        # Section 5.5.2: an endpoint MUST answer a ping "unless it already
        # received a Close frame"; having sent one is no excuse.
        conn.send_close(1000)
        conn.data_to_send()
        assert feed(conn, frame_to(conn, OP_PING, b"late")) == [Ping(b"late")]
        (pong,) = sent_frames(conn)
        assert (pong.opcode, pong.payload) == (OP_PONG, b"late")

    def test_not_answered_after_close_received(self, conn: Connection) -> None:
        data = frame_to(conn, OP_CLOSE, close_payload(1000)) + frame_to(conn, OP_PING, b"x")
        assert feed(conn, data) == [CloseReceived(1000, "")]
        assert [f.opcode for f in sent_frames(conn)] == [OP_CLOSE]

    def test_sending_a_ping(self, conn: Connection) -> None:
        conn.send_ping(b"x" * 125)
        (ping,) = sent_frames(conn)
        assert (ping.opcode, ping.payload) == (OP_PING, b"x" * 125)

    def test_ping_over_125_bytes_is_a_local_error(self, conn: Connection) -> None:
        with pytest.raises(LocalProtocolError):
            conn.send_ping(b"x" * 126)
        assert conn.data_to_send() == []
        assert conn.state is State.OPEN
        conn.send_ping(b"ok")
        assert [f.payload for f in sent_frames(conn)] == [b"ok"]

    def test_pong_over_125_bytes_is_a_local_error(self, conn: Connection) -> None:
        with pytest.raises(LocalProtocolError):
            conn.send_pong(b"x" * 126)
        assert conn.data_to_send() == []
        conn.send_binary(b"still usable")
        assert [f.opcode for f in sent_frames(conn)] == [OP_BINARY]


class TestPong:
    def test_unsolicited_pong_is_an_event(self, conn: Connection) -> None:
        # Section 5.5.3: "A Pong frame MAY be sent unsolicited."
        assert feed(conn, frame_to(conn, OP_PONG, b"beat")) == [Pong(b"beat")]
        assert sent_frames(conn) == []
        assert conn.state is State.OPEN

    def test_sending_a_pong(self, conn: Connection) -> None:
        conn.send_pong(b"beat")
        (pong,) = sent_frames(conn)
        assert (pong.opcode, pong.payload) == (OP_PONG, b"beat")

    def test_no_control_frames_once_closing(self, conn: Connection) -> None:
        conn.send_close()
        with pytest.raises(InvalidState):
            conn.send_ping()
        with pytest.raises(InvalidState):
            conn.send_pong()
