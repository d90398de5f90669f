"""RFC 6455 section 5.2: the base framing protocol, read and written."""

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
    frame_to,
    parse_frames,
    sent_frames,
)

from hubbub.exceptions import InvalidState
from hubbub.protocol import CloseReceived, Connection, Ping, Pong, Side, State
from hubbub.protocol.frames import Opcode, apply_mask, encode_frame, encode_header

RESERVED_OPCODES = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]


class TestEveryOpcode:
    def test_text(self, conn: Connection) -> None:
        assert feed(conn, frame_to(conn, OP_TEXT, "héllo".encode())) == ["héllo"]
        assert sent_frames(conn) == []

    def test_binary(self, conn: Connection) -> None:
        assert feed(conn, frame_to(conn, OP_BINARY, b"\x00\xff")) == [b"\x00\xff"]

    def test_continuation_after_a_first_fragment(self, conn: Connection) -> None:
        data = frame_to(conn, OP_BINARY, b"ab", fin=False) + frame_to(conn, OP_CONT, b"cd")
        assert feed(conn, data) == [b"abcd"]

    def test_ping(self, conn: Connection) -> None:
        assert feed(conn, frame_to(conn, OP_PING, b"hi")) == [Ping(b"hi")]
        (pong,) = sent_frames(conn)
        assert (pong.opcode, pong.payload) == (OP_PONG, b"hi")

    def test_pong(self, conn: Connection) -> None:
        assert feed(conn, frame_to(conn, OP_PONG, b"hi")) == [Pong(b"hi")]
        assert sent_frames(conn) == []

    def test_close(self, conn: Connection) -> None:
        events = feed(conn, frame_to(conn, OP_CLOSE, close_payload(1000, "bye")))
        assert events == [CloseReceived(1000, "bye")]
        (reply,) = sent_frames(conn)
        assert reply.close == (1000, "")

    @pytest.mark.parametrize("opcode", RESERVED_OPCODES)
    def test_reserved_opcode_fails_with_1002(self, conn: Connection, opcode: int) -> None:
        assert feed(conn, frame_to(conn, opcode, b"x")) == []
        assert_failed(conn, 1002)

    @pytest.mark.parametrize("opcode", RESERVED_OPCODES)
    def test_reserved_opcode_fails_on_the_first_two_bytes(
        self, conn: Connection, opcode: int
    ) -> None:
        # Section 5.2: an unknown opcode fails the connection; no need to wait
        # for the payload (or the rest of the header).
        frame = frame_to(conn, opcode, b"x" * 1000)
        conn.receive_data(frame[:2])
        assert_failed(conn, 1002)

    def test_reserved_opcode_after_valid_frames(self, conn: Connection) -> None:
        data = frame_to(conn, OP_TEXT, b"a") + frame_to(conn, 0x3) + frame_to(conn, OP_TEXT, b"b")
        assert feed(conn, data) == ["a"]
        assert_failed(conn, 1002)


class TestPayloadLength:
    @pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 1000, 65535, 65536, 100_000])
    def test_minimal_lengths(self, conn: Connection, size: int) -> None:
        payload = bytes(i % 251 for i in range(size))
        assert feed(conn, frame_to(conn, OP_BINARY, payload)) == [payload]

    @pytest.mark.parametrize(
        ("size", "form"), [(0, 16), (5, 16), (125, 16), (5, 64), (126, 64), (65535, 64)]
    )
    def test_non_minimal_lengths_are_read(self, conn: Connection, size: int, form: int) -> None:
        # The RFC asks senders for the minimal encoding, but does not ask
        # receivers to fail on a longer one; like most stacks we accept it.
        payload = b"z" * size
        assert feed(conn, frame_to(conn, OP_BINARY, payload, length_form=form)) == [payload]

    @pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
    def test_every_split_of_the_header_and_payload(self, conn: Connection, size: int) -> None:
        frame = frame_to(conn, OP_BINARY, b"q" * size)
        for cut in {1, 2, 3, 4, 5, 8, 9, 10, 11, 13, 14, len(frame) - 1} & set(range(len(frame))):
            c = Connection(conn.side)
            c.receive_data(frame[:cut])
            assert c.events_received() == []
            c.receive_data(frame[cut:])
            assert c.events_received() == [b"q" * size], cut

    def test_64_bit_length_with_the_most_significant_bit_set(self, conn: Connection) -> None:
        # Section 5.2: "the most significant bit MUST be 0".
        conn.max_size = None
        conn.receive_data(frame_to(conn, OP_BINARY, b"", declared_length=2**63))
        assert_failed(conn, 1002)

    def test_largest_64_bit_length_is_too_big_not_invalid(self, conn: Connection) -> None:
        conn.receive_data(frame_to(conn, OP_BINARY, b"", declared_length=2**63 - 1))
        assert_failed(conn, 1009)

    def test_frame_arriving_byte_by_byte(self, conn: Connection) -> None:
        sizes = (0, 1, 126, 300)
        data = b"".join(frame_to(conn, OP_BINARY, b"%c" % (n % 256) * n) for n in sizes)
        assert feed(conn, data, chunk_size=1) == [b"", b"\x01", b"\x7e" * 126, b"\x2c" * 300]

    def test_many_frames_in_one_chunk(self, conn: Connection) -> None:
        data = b"".join(frame_to(conn, OP_TEXT, str(i).encode()) for i in range(1000))
        assert feed(conn, data) == [str(i) for i in range(1000)]

    def test_empty_receive_data(self, conn: Connection) -> None:
        conn.receive_data(b"")
        assert conn.events_received() == []
        assert conn.data_to_send() == []

    def test_bytearray_and_memoryview_input(self, conn: Connection) -> None:
        frame = frame_to(conn, OP_BINARY, b"abc")
        conn.receive_data(bytearray(frame[:3]))
        conn.receive_data(memoryview(frame)[3:])
        assert conn.events_received() == [b"abc"]


class TestReservedBits:
    @pytest.mark.parametrize("bit", ["rsv1", "rsv2", "rsv3"])
    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE])
    def test_without_extension_fails_with_1002(
        self, conn: Connection, bit: str, opcode: int
    ) -> None:
        # Section 5.2: "MUST be 0 unless an extension is negotiated that
        # defines meanings for non-zero values."
        conn.receive_data(frame_to(conn, opcode, b"", **{bit: True}))
        assert conn.events_received() == []
        assert_failed(conn, 1002)

    def test_on_a_continuation_frame(self, conn: Connection) -> None:
        data = frame_to(conn, OP_TEXT, b"a", fin=False) + frame_to(conn, OP_CONT, b"b", rsv2=True)
        assert feed(conn, data) == []
        assert_failed(conn, 1002)


class TestWritingFrames:
    @pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
    def test_lengths_are_minimal_and_payload_intact(self, conn: Connection, size: int) -> None:
        payload = bytes(i % 256 for i in range(size))
        conn.send_binary(payload)
        (frame,) = sent_frames(conn)  # parse_frames checks the minimal encoding
        assert (frame.opcode, frame.payload, frame.fin) == (OP_BINARY, payload, True)
        assert (frame.rsv1, frame.rsv2, frame.rsv3) == (False, False, False)

    def test_every_send_method(self, conn: Connection) -> None:
        conn.send_text("é")
        conn.send_binary(bytearray(b"\x01"))
        conn.send_text(b"raw", fin=False)
        conn.send_continuation("more", fin=True)
        conn.send_ping(b"p")
        conn.send_pong(b"q")
        conn.send_close(1001, "away")
        frames = sent_frames(conn)
        assert [(f.opcode, f.payload, f.fin) for f in frames] == [
            (OP_TEXT, "é".encode(), True),
            (OP_BINARY, b"\x01", True),
            (OP_TEXT, b"raw", False),
            (OP_CONT, b"more", True),
            (OP_PING, b"p", True),
            (OP_PONG, b"q", True),
            (OP_CLOSE, close_payload(1001, "away"), True),
        ]

    @pytest.mark.parametrize("size", [0, 10, 1023, 1024, 5000])
    @pytest.mark.parametrize("fin", [True, False])
    @pytest.mark.parametrize("rsv1", [True, False])
    def test_encode_frame_unmasked(self, size: int, fin: bool, rsv1: bool) -> None:
        payload = b"x" * size
        data = b"".join(encode_frame(Opcode.BINARY, payload, fin=fin, rsv1=rsv1))
        (frame,) = parse_frames(data, masked=False)
        assert (frame.payload, frame.fin, frame.rsv1) == (payload, fin, rsv1)

    def test_encode_frame_large_payload_is_not_copied(self) -> None:
        payload = b"y" * 4096
        chunks = encode_frame(Opcode.BINARY, payload)
        assert chunks[1] is payload

    @pytest.mark.parametrize("size", [1023, 1024, 70000])
    def test_encode_frame_masked_large_payload_is_copied_once(self, size: int) -> None:
        # Section 5.3: the client's payload is masked into one new buffer; a
        # large one is not joined to its header (a second copy).
        payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        chunks = encode_frame(Opcode.BINARY, payload, mask=True)
        assert len(chunks) == (1 if size < 1024 else 2)
        (frame,) = parse_frames(b"".join(chunks), masked=True)
        assert frame.payload == payload
        if size >= 1024:
            header = chunks[0]
            assert len(header) == (4 if size < 65536 else 10) + 4
            assert chunks[1] == apply_mask(payload, header[-4:])

    def test_encode_header(self) -> None:
        assert encode_header(OP_TEXT, 5, True, False, None) == b"\x81\x05"
        assert encode_header(OP_BINARY, 126, False, True, None) == b"\x42\x7e\x00\x7e"
        assert encode_header(OP_PING, 0, True, False, b"abcd") == b"\x89\x80abcd"
        head = encode_header(OP_BINARY, 2**32, True, False, None)
        assert head == b"\x82\x7f" + (2**32).to_bytes(8, "big")


def test_example_frames_of_section_5_7() -> None:
    """The exact bytes of the examples in section 5.7."""
    client = Connection(Side.CLIENT)
    server = Connection(Side.SERVER)
    # A single-frame unmasked text message, to a client.
    assert feed(client, bytes.fromhex("810548656c6c6f")) == ["Hello"]
    # A single-frame masked text message, to a server.
    assert feed(server, bytes.fromhex("818537fa213d7f9f4d5158")) == ["Hello"]
    # A fragmented unmasked text message.
    assert feed(client, bytes.fromhex("010348656c80026c6f")) == ["Hello"]
    # Unmasked ping, and masked pong with the same payload.
    assert feed(client, bytes.fromhex("890548656c6c6f")) == [Ping(b"Hello")]
    assert feed(server, bytes.fromhex("8a8537fa213d7f9f4d5158")) == [Pong(b"Hello")]
    # 256 bytes and 64 KiB binary messages in a single unmasked frame.
    assert feed(client, bytes.fromhex("827e0100") + b"\xaa" * 256) == [b"\xaa" * 256]
    big = bytes.fromhex("827f0000000000010000") + b"\xbb" * 65536
    assert feed(client, big) == [b"\xbb" * 65536]
    assert client.state is State.OPEN


def test_a_bare_connection_has_no_opening_handshake() -> None:
    # Only ServerConnection and ClientConnection know section 4; a bare core
    # created CONNECTING says so instead of parsing HTTP as frames.
    conn = Connection(Side.SERVER, state=State.CONNECTING)
    with pytest.raises(InvalidState, match="no opening handshake"):
        conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
