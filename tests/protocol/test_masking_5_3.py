"""RFC 6455 sections 5.1 and 5.3: who masks, and how."""

from __future__ import annotations

from itertools import pairwise

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_TEXT,
    assert_failed,
    build_frame,
    close_payload,
    feed,
    sent_frames,
    xor_mask,
)

from hubbub.protocol import Connection, Side
from hubbub.protocol.frames import apply_mask, encode_frame


class TestReceiving:
    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE])
    def test_server_fails_on_an_unmasked_frame(self, server: Connection, opcode: int) -> None:
        # Section 5.1: "a server MUST close the connection upon receiving a
        # frame that is not masked ... with a status code of 1002".
        payload = close_payload(1000) if opcode == OP_CLOSE else b"x"
        assert feed(server, build_frame(opcode, payload)) == []
        assert_failed(server, 1002)

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY, OP_PING, OP_CLOSE])
    def test_client_fails_on_a_masked_frame(self, client: Connection, opcode: int) -> None:
        # Section 5.1: "A client MUST close a connection if it detects a masked frame."
        payload = close_payload(1000) if opcode == OP_CLOSE else b"x"
        assert feed(client, build_frame(opcode, payload, mask=b"abcd")) == []
        assert_failed(client, 1002)

    def test_masking_is_checked_before_the_payload_arrives(self, server: Connection) -> None:
        server.receive_data(build_frame(OP_BINARY, b"x" * 500)[:2])
        assert_failed(server, 1002)

    @pytest.mark.parametrize("key", [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04"])
    @pytest.mark.parametrize("chunk_size", [None, 1, 3, 7])
    def test_unmasking_in_any_pieces(
        self, server: Connection, key: bytes, chunk_size: int | None
    ) -> None:
        text = "Ωmega " * 50
        binary = bytes(range(256)) * 3
        data = build_frame(OP_TEXT, text.encode(), mask=key)
        data += build_frame(OP_BINARY, binary, mask=key)
        assert feed(server, data, chunk_size) == [text, binary]

    def test_each_frame_has_its_own_key(self, server: Connection) -> None:
        data = build_frame(OP_TEXT, b"one", mask=b"1234") + build_frame(
            OP_TEXT, b"two", mask=b"abcd"
        )
        assert feed(server, data) == ["one", "two"]


class TestSending:
    def test_client_masks_every_frame(self) -> None:
        client = Connection(Side.CLIENT)
        client.send_text("hello")
        client.send_binary(b"\x00" * 2000)
        client.send_ping(b"p")
        client.send_close(1000)
        frames = sent_frames(client)  # parse_frames asserts the mask bit
        assert [f.payload for f in frames] == [b"hello", b"\x00" * 2000, b"p", b"\x03\xe8"]
        assert all(f.masked for f in frames)

    def test_server_never_masks(self) -> None:
        server = Connection(Side.SERVER)
        server.send_text("hello")
        server.send_binary(b"\x00" * 2000)
        server.send_pong(b"p")
        assert all(not f.masked for f in sent_frames(server))

    def test_client_keys_are_unpredictable(self) -> None:
        # Section 5.3: a fresh key per frame, from a strong source of entropy.
        # 50 identical frames with 32-bit random keys collide with
        # probability ~3e-7.
        keys = set()
        for _ in range(50):
            (chunk,) = encode_frame(OP_BINARY, b"same", mask=True)
            keys.add(chunk[2:6])
        assert len(keys) == 50

    def test_masked_payload_differs_from_clear_text(self) -> None:
        payload = b"\x00" * 64
        (chunk,) = encode_frame(OP_BINARY, payload, mask=True)
        key = chunk[2:6]
        assert chunk[6:] == xor_mask(payload, key)


class TestApplyMask:
    @pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 8, 63, 64, 65, 1000, 4099])
    def test_matches_the_definition(self, size: int) -> None:
        data = bytes((i * 7) % 256 for i in range(size))
        key = b"\x9a\x01\xfe\x42"
        assert apply_mask(data, key) == xor_mask(data, key)
        assert apply_mask(apply_mask(data, key), key) == data

    @pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 5, 6, 7, 1001])
    def test_offset_continues_the_key(self, offset: int) -> None:
        data = bytes(range(200))
        key = b"WXYZ"
        whole = xor_mask(data, key)
        assert apply_mask(data[offset:], key, offset) == whole[offset:]

    def test_piecewise_equals_whole(self) -> None:
        data = bytes(range(256)) * 4
        key = b"\x11\x22\x33\x44"
        cuts = [0, 1, 2, 5, 9, 100, 513, 1024]
        pieces = [apply_mask(data[a:b], key, a) for a, b in pairwise(cuts)]
        assert b"".join(pieces) == xor_mask(data, key)

    def test_accepts_bytearray_and_memoryview(self) -> None:
        key = bytearray(b"abcd")
        assert apply_mask(bytearray(b"hello"), key) == xor_mask(b"hello", b"abcd")
        assert apply_mask(memoryview(b"hello"), bytes(key)) == xor_mask(b"hello", b"abcd")
