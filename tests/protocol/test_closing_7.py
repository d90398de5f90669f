"""RFC 6455 section 7: closing the connection, close codes, failing."""

from __future__ import annotations

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    assert_failed,
    assert_failure_event,
    close_payload,
    feed,
    frame_to,
    open_pair,
    sent_frames,
    transfer,
)

from hubbub.exceptions import InvalidState, LocalProtocolError, RemoteProtocolError
from hubbub.protocol import CloseCode, CloseReceived, Connection, Ping, Side, State
from hubbub.protocol.frames import parse_close, serialize_close

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
VALID_CODES += [3000, 3999, 4000, 4999]
INVALID_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


class TestReceivingClose:
    @pytest.mark.parametrize("code", VALID_CODES)
    def test_code_is_echoed(self, conn: Connection, code: int) -> None:
        # Section 5.5.1: the reply "typically echo[es] the status code it received".
        events = feed(conn, frame_to(conn, OP_CLOSE, close_payload(code, "why")))
        assert events == [CloseReceived(code, "why")]
        (reply,) = sent_frames(conn)
        assert reply.close == (code, "")
        assert conn.state is State.CLOSING
        assert conn.close_code == code
        assert conn.close_reason == "why"
        assert conn.close_exc is None

    @pytest.mark.parametrize("code", INVALID_CODES)
    def test_invalid_code_fails_with_1002(self, conn: Connection, code: int) -> None:
        assert feed(conn, frame_to(conn, OP_CLOSE, close_payload(code))) == []
        assert_failed(conn, 1002)

    def test_no_code(self, conn: Connection) -> None:
        # Section 7.1.5: no status code means 1005; the reply has none either.
        assert feed(conn, frame_to(conn, OP_CLOSE)) == [CloseReceived(1005, "")]
        (reply,) = sent_frames(conn)
        assert reply.payload == b""
        assert conn.close_code == 1005

    def test_one_byte_payload_fails_with_1002(self, conn: Connection) -> None:
        assert feed(conn, frame_to(conn, OP_CLOSE, b"\x03")) == []
        assert_failed(conn, 1002)

    @pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])
    def test_invalid_utf8_reason_fails_with_1007(self, conn: Connection, reason: bytes) -> None:
        assert feed(conn, frame_to(conn, OP_CLOSE, close_payload(1000, reason))) == []
        assert_failed(conn, 1007)

    def test_nothing_is_read_after_close(self, conn: Connection) -> None:
        # Section 5.5.1: after a close frame the peer sends nothing more; even
        # an invalid frame is not looked at.
        data = frame_to(conn, OP_CLOSE, close_payload(1000))
        data += frame_to(conn, OP_TEXT, b"late") + b"\xff\xff garbage"
        assert feed(conn, data) == [CloseReceived(1000, "")]
        conn.receive_data(frame_to(conn, OP_BINARY, b"later"))
        assert conn.events_received() == []
        assert [f.opcode for f in sent_frames(conn)] == [OP_CLOSE]
        assert conn.close_exc is None

    def test_in_the_middle_of_a_fragmented_message(self, conn: Connection) -> None:
        data = frame_to(conn, OP_BINARY, b"a", fin=False)
        data += frame_to(conn, OP_CLOSE, close_payload(1001, "going"))
        assert feed(conn, data) == [CloseReceived(1001, "going")]
        (reply,) = sent_frames(conn)
        assert reply.close == (1001, "")


class TestClosingHandshake:
    def test_server_receives_close_and_closes_tcp_first(self, server: Connection) -> None:
        feed(server, frame_to(server, OP_CLOSE, close_payload(1000)))
        # Section 7.1.1: "the underlying TCP connection ... SHOULD be closed
        # first by the server".
        assert server.eof_sent
        server.receive_eof()
        assert server.state is State.CLOSED
        assert server.close_code == 1000

    def test_client_receives_close_and_waits_for_the_server(self, client: Connection) -> None:
        feed(client, frame_to(client, OP_CLOSE, close_payload(1000)))
        assert not client.eof_sent
        assert client.close_expected()
        assert client.state is State.CLOSING
        client.receive_eof()
        assert client.state is State.CLOSED
        assert client.close_code == 1000

    def test_client_initiates(self) -> None:
        client, server = open_pair()
        client.send_close(1000, "done")
        assert client.state is State.CLOSING
        transfer(client, server)
        assert server.events_received() == [CloseReceived(1000, "done")]
        assert server.eof_sent
        transfer(server, client)
        assert client.events_received() == [CloseReceived(1000, "")]
        assert not client.eof_sent  # the client waits for the server's EOF
        client.receive_eof()
        server.receive_eof()
        assert (client.state, server.state) == (State.CLOSED, State.CLOSED)
        assert client.close_sent == CloseReceived(1000, "done")

    def test_server_initiates(self) -> None:
        client, server = open_pair()
        server.send_close(1001, "restart")
        assert not server.eof_sent
        transfer(server, client)
        assert client.events_received() == [CloseReceived(1001, "restart")]
        transfer(client, server)
        assert server.events_received() == [CloseReceived(1001, "")]
        assert server.eof_sent  # the server closes TCP once the exchange is done
        assert not client.eof_sent

    def test_simultaneous_close(self) -> None:
        client, server = open_pair()
        client.send_close(1000, "c")
        server.send_close(1000, "s")
        transfer(client, server)
        transfer(server, client)
        assert client.events_received() == [CloseReceived(1000, "s")]
        assert server.events_received() == [CloseReceived(1000, "c")]
        assert client.data_to_send() == []  # no second close frame
        assert server.data_to_send() == []
        assert server.eof_sent

    def test_eof_without_close_is_1006(self, conn: Connection) -> None:
        assert conn.close_code is None
        conn.receive_eof()
        assert conn.state is State.CLOSED
        assert conn.close_code == CloseCode.ABNORMAL_CLOSURE
        assert conn.close_reason == ""

    def test_eof_in_the_middle_of_a_frame(self, conn: Connection) -> None:
        conn.receive_data(frame_to(conn, OP_TEXT, b"unfinished")[:5])
        conn.receive_eof()
        conn.receive_eof()  # idempotent
        assert conn.events_received() == []
        assert conn.close_code == 1006
        conn.receive_data(b"ignored")
        assert conn.events_received() == []


class TestSendingClose:
    @pytest.mark.parametrize("code", VALID_CODES)
    def test_valid_codes(self, conn: Connection, code: int) -> None:
        conn.send_close(code, "r")
        (frame,) = sent_frames(conn)
        assert frame.close == (code, "r")
        assert conn.close_sent == CloseReceived(code, "r")

    @pytest.mark.parametrize("code", [1004, 1005, 1006, 1015, 999, 2000, 5000])
    def test_forbidden_codes_are_local_errors(self, conn: Connection, code: int) -> None:
        # Section 7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code
        # in a Close control frame by an endpoint".
        with pytest.raises(LocalProtocolError):
            conn.send_close(code)
        assert conn.data_to_send() == []
        assert conn.state is State.OPEN
        conn.send_close(1000)  # still usable
        assert sent_frames(conn)[0].close == (1000, "")

    def test_without_a_code(self, conn: Connection) -> None:
        conn.send_close(None)
        (frame,) = sent_frames(conn)
        assert frame.payload == b""
        assert conn.close_sent == CloseReceived(1005, "")

    def test_reason_without_a_code_is_a_local_error(self, conn: Connection) -> None:
        with pytest.raises(LocalProtocolError):
            conn.send_close(None, "why")
        assert conn.state is State.OPEN

    def test_reason_length_limit(self, conn: Connection) -> None:
        with pytest.raises(LocalProtocolError):
            conn.send_close(1000, "é" * 62)  # 124 bytes once encoded
        assert conn.data_to_send() == []
        conn.send_close(1000, "é" * 61 + "e")  # 123 bytes
        (frame,) = sent_frames(conn)
        assert len(frame.payload) == 125

    def test_unencodable_reason_is_a_local_error(self, conn: Connection) -> None:
        with pytest.raises(LocalProtocolError):
            conn.send_close(1000, "\ud800")
        assert conn.state is State.OPEN

    def test_twice_is_invalid_state(self, conn: Connection) -> None:
        conn.send_close()
        with pytest.raises(InvalidState):
            conn.send_close()

    @pytest.mark.parametrize("how", ["sent close", "received close", "eof", "failed"])
    def test_sending_after_close_is_invalid_state(self, conn: Connection, how: str) -> None:
        if how == "sent close":
            conn.send_close()
        elif how == "received close":
            conn.receive_data(frame_to(conn, OP_CLOSE))
        elif how == "eof":
            conn.receive_eof()
        else:
            conn.fail(1011)
        conn.data_to_send()
        with pytest.raises(InvalidState):
            conn.send_text("x")
        with pytest.raises(InvalidState):
            conn.send_binary(b"x")
        with pytest.raises(InvalidState):
            conn.send_continuation(b"x", fin=True)
        with pytest.raises(InvalidState):
            conn.send_ping()
        with pytest.raises(InvalidState):
            conn.send_pong()
        with pytest.raises(InvalidState):
            conn.send_close()
        assert conn.data_to_send() == []


class TestFail:
    def test_sends_close_and_eof(self, conn: Connection) -> None:
        conn.fail(1011, "internal")
        (frame,) = sent_frames(conn)
        assert frame.close == (1011, "internal")
        assert conn.eof_sent
        assert conn.state is State.CLOSING
        assert conn.close_sent == CloseReceived(1011, "internal")
        # Section 7.1.7: no more data is read, the peer's answer is not awaited.
        conn.receive_data(frame_to(conn, OP_TEXT, b"x"))
        assert conn.events_received() == []

    def test_long_reason_is_truncated_not_dropped(self, conn: Connection) -> None:
        conn.fail(1002, "é" * 100)
        (frame,) = sent_frames(conn)
        code, reason = frame.close
        assert code == 1002
        assert reason == "é" * 61  # 122 bytes: the 62nd "é" would not fit

    @pytest.mark.parametrize("code", [1005, 1006, 1015, 999])
    def test_forbidden_code_is_a_local_error(self, conn: Connection, code: int) -> None:
        with pytest.raises(LocalProtocolError):
            conn.fail(code)
        assert conn.state is State.OPEN
        assert not conn.eof_sent
        assert conn.data_to_send() == []
        # Nothing changed: the connection still reads.
        assert feed(conn, frame_to(conn, OP_TEXT, b"still")) == ["still"]

    def test_after_close_sent_only_closes_tcp(self, conn: Connection) -> None:
        conn.send_close(1000)
        conn.data_to_send()
        conn.fail(1002)
        assert conn.data_to_send() == []
        assert conn.eof_sent

    def test_remote_error_records_the_exception(self, conn: Connection) -> None:
        conn.receive_data(frame_to(conn, 0x3))
        assert isinstance(conn.close_exc, RemoteProtocolError)
        assert conn.close_exc.code == 1002
        assert conn.close_received is None
        assert conn.close_sent is not None
        assert conn.close_sent.code == 1002


class TestDeferFailure:
    def make(self, side: Side) -> Connection:
        return Connection(side, defer_failure=True)

    @pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
    @pytest.mark.parametrize("chunk_size", [None, 1])
    def test_failure_comes_after_earlier_messages(self, side: Side, chunk_size: int | None) -> None:
        conn = self.make(side)
        data = frame_to(conn, OP_TEXT, b"one") + frame_to(conn, OP_PING, b"p")
        data += frame_to(conn, OP_BINARY, b"two") + frame_to(conn, OP_CONT, b"bad")
        data += frame_to(conn, OP_TEXT, b"never")
        events = feed(conn, data, chunk_size)
        assert events[:3] == ["one", Ping(b"p"), b"two"]
        assert_failure_event(events, 1002)
        assert len(events) == 4
        # Nothing is sent but the pong: the adapter decides when to fail.
        assert [f.opcode for f in sent_frames(conn)] == [0xA]
        assert not conn.eof_sent
        assert conn.state is State.OPEN
        # Nothing is read after the failure.
        conn.receive_data(frame_to(conn, OP_TEXT, b"more"))
        assert conn.events_received() == []
        assert conn.close_exc is not None
        conn.fail(conn.close_exc.code, str(conn.close_exc))
        assert_failed(conn, 1002)

    def test_invalid_utf8(self) -> None:
        conn = self.make(Side.SERVER)
        data = frame_to(conn, OP_TEXT, b"ok") + frame_to(conn, OP_TEXT, b"\xff")
        events = feed(conn, data)
        assert events[0] == "ok"
        assert_failure_event(events, 1007)


class TestCloseCodec:
    def test_parse_close(self) -> None:
        assert parse_close(b"") == (1005, "")
        assert parse_close(b"\x03\xe8") == (1000, "")
        assert parse_close(b"\x0f\xa0h\xc3\xa9") == (4000, "hé")
        with pytest.raises(RemoteProtocolError) as info:
            parse_close(b"\x03")
        assert info.value.code == 1002
        with pytest.raises(RemoteProtocolError) as info:
            parse_close(b"\x03\xe8\xff")
        assert info.value.code == 1007

    def test_serialize_close(self) -> None:
        assert serialize_close(None) == b""
        assert serialize_close(1000) == b"\x03\xe8"
        assert serialize_close(CloseCode.GOING_AWAY, "x") == b"\x03\xe9x"
        for code in (1005, 1006, 1015):
            with pytest.raises(LocalProtocolError):
                serialize_close(code)
