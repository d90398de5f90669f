"""The core's public operations for adapters' fast paths (issue 14: no private reach-ins)."""

from __future__ import annotations

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_PING,
    OP_TEXT,
    client_frame,
    open_pair,
    parse_frames,
    sent_frames,
)

from hubbub.exceptions import LocalProtocolError
from hubbub.protocol import Connection, Side, encode_shared_frame
from hubbub.protocol.permessage_deflate import ServerPerMessageDeflateFactory


class Recorder:
    """A writer (see Connection.write_to) that remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []

    def write(self, data: bytes, /) -> None:
        self.calls.append(("write", [data]))

    def writelines(self, list_of_data: list[bytes], /) -> None:
        self.calls.append(("writelines", list(list_of_data)))


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_encode_shared_frame_is_what_a_server_sends(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    server = Connection(Side.SERVER)
    server.send_binary(payload)
    assert encode_shared_frame(OP_BINARY, payload) == b"".join(server.data_to_send())
    (frame,) = parse_frames(encode_shared_frame(OP_TEXT, b"hi"), masked=False)
    assert (frame.opcode, frame.fin, frame.payload) == (OP_TEXT, True, b"hi")


def test_encode_shared_frame_is_received_as_a_message() -> None:
    client = Connection(Side.CLIENT)
    client.receive_data(encode_shared_frame(OP_TEXT, "café".encode()))
    assert client.events_received() == ["café"]


def test_shares_frames_only_for_a_server_without_extensions() -> None:
    assert Connection(Side.SERVER).shares_frames
    assert not Connection(Side.CLIENT).shares_frames  # section 5.1: it masks
    deflate = ServerPerMessageDeflateFactory().process_request_params([], [])[1]
    assert not Connection(Side.SERVER, extensions=[deflate]).shares_frames


def test_sending_fragmented_until_the_last_frame() -> None:
    conn = Connection(Side.SERVER)
    assert not conn.sending_fragmented
    conn.send_text(b"frag", fin=False)
    assert conn.sending_fragmented
    conn.send_continuation(b"ment", fin=True)
    assert not conn.sending_fragmented


def test_write_to_hands_one_chunk_with_write_and_several_with_writelines() -> None:
    conn = Connection(Side.SERVER)
    writer = Recorder()
    conn.write_to(writer)
    assert writer.calls == []  # nothing queued: no call
    conn.send_text(b"one")
    assert conn.pending_chunks == 1
    conn.write_to(writer)
    conn.send_text(b"two")
    conn.send_binary(b"three")
    assert conn.pending_chunks == 2
    conn.write_to(writer)
    assert [name for name, _ in writer.calls] == ["write", "writelines"]
    assert conn.pending_chunks == 0
    assert conn.data_to_send() == []
    chunks = [chunk for _, call in writer.calls for chunk in call]
    frames = parse_frames(b"".join(chunks), masked=False)
    assert [f.payload for f in frames] == [b"one", b"two", b"three"]


def test_pending_events_is_what_events_received_returns() -> None:
    _, server = open_pair()
    assert not server.pending_events
    server.receive_data(client_frame(OP_TEXT, b"hello"))
    assert server.pending_events == ["hello"]
    assert server.events_received() == ["hello"]
    assert not server.pending_events


def test_large_frame_is_there_while_a_large_frame_arrives() -> None:
    _, server = open_pair()
    assert server.large_frame is None  # an idle connection holds no reader
    payload = b"x" * 200_000
    frame = client_frame(OP_BINARY, payload)
    server.receive_data(frame[:1000])
    assert server.large_frame is not None
    assert server.large_frame.missing == len(frame) - 1000
    server.receive_data(frame[1000:1500])
    assert server.large_frame.missing == len(frame) - 1500
    server.receive_data(frame[1500:] + client_frame(OP_TEXT, b"next"))
    assert server.large_frame is None
    assert server.events_received() == [payload, "next"]


def test_large_frame_read_directly_then_fed_the_rest() -> None:
    _, server = open_pair()
    payload = bytes(range(256)) * 1000
    frame = client_frame(OP_BINARY, payload)
    server.receive_data(frame[:1000])
    view = server.receive_buffer()
    assert view is not None
    assert server.large_frame is not None
    assert server.large_frame.reading_directly
    view[:5000] = frame[1000:6000]
    server.receive_buffer_updated(5000)
    # The rest comes through receive_data(): copied into the payload.
    server.receive_data(frame[6000:] + client_frame(OP_TEXT, b"after"))
    assert server.large_frame is None
    assert server.events_received() == [payload, "after"]


@pytest.mark.parametrize("data", [b"", b"small"])
def test_send_data_frame_refuses_a_control_opcode_even_on_the_fast_path(data: bytes) -> None:
    conn = Connection(Side.SERVER)
    with pytest.raises(LocalProtocolError, match="not a data opcode"):
        conn.send_data_frame(OP_PING, data)
    assert sent_frames(conn) == []


def test_write_shared_frames_writes_after_what_is_queued() -> None:
    conn = Connection(Side.SERVER)
    shared = encode_shared_frame(OP_TEXT, b"all")
    writer = Recorder()
    assert conn.write_shared_frames(writer, shared)
    assert writer.calls == [("write", [shared])]  # nothing queued: one write
    conn.send_text("mine")
    assert conn.write_shared_frames(writer, shared)
    # What was queued goes first, in the same call: the order of messages holds.
    assert writer.calls[1] == ("writelines", [b"\x81\x04mine", shared])
    assert conn.pending_chunks == 0


def connections_a_shared_frame_would_be_wrong_on() -> list[Connection]:
    deflate = ServerPerMessageDeflateFactory().process_request_params([], [])[1]
    fragmenting = Connection(Side.SERVER)
    fragmenting.send_text(b"frag", fin=False)  # section 5.4: nothing in between
    closing = Connection(Side.SERVER)
    closing.send_close()
    return [
        Connection(Side.CLIENT),  # section 5.1: a client masks every frame
        Connection(Side.SERVER, extensions=[deflate]),  # RFC 7692: per connection
        fragmenting,
        closing,
    ]


def test_write_shared_frames_refuses_when_the_frame_would_be_wrong() -> None:
    shared = encode_shared_frame(OP_TEXT, b"all")
    for conn in connections_a_shared_frame_would_be_wrong_on():
        queued = conn.pending_chunks
        writer = Recorder()
        assert not conn.write_shared_frames(writer, shared)
        assert writer.calls == []
        assert conn.pending_chunks == queued  # what was queued stays queued


def test_takes_shared_frames_follows_fragments_and_negotiation() -> None:
    """The writer's flag that send_message and broadcasts read instead of three checks."""
    conn = Connection(Side.SERVER)
    assert conn.writer.takes_shared_frames
    conn.send_text(b"frag", fin=False)
    assert not conn.writer.takes_shared_frames  # section 5.4: inside a fragmented message
    conn.send_continuation(b"ment", fin=True)
    assert conn.writer.takes_shared_frames
    assert not Connection(Side.CLIENT).writer.takes_shared_frames  # section 5.1: masks
    deflate = ServerPerMessageDeflateFactory().process_request_params([], [])[1]
    negotiated = Connection(Side.SERVER)
    negotiated.extensions = [deflate]  # what the opening handshake does, later
    assert not negotiated.writer.takes_shared_frames
    negotiated.extensions = []
    assert negotiated.writer.takes_shared_frames


def test_send_message_uses_extensions_negotiated_after_creation() -> None:
    # The opening handshake sets the extensions after the writer was made: a
    # small message must then be compressed (RFC 7692 section 6: RSV1 set),
    # not sent as the plain frame of a connection without extensions.
    deflate = ServerPerMessageDeflateFactory().process_request_params([], [])[1]
    conn = Connection(Side.SERVER)
    conn.extensions = [deflate]
    conn.send_message("hello " * 10)
    (wire,) = conn.data_to_send()
    assert wire[0] == 0xC1  # FIN, RSV1, text
    assert len(wire) < 2 + 60
    plain = Connection(Side.SERVER)
    plain.send_message("hello " * 10)
    assert plain.data_to_send() == [b"\x81\x3c" + b"hello " * 10]


def test_queue_shared_frames_keeps_them_ahead_of_later_control_frames() -> None:
    conn = Connection(Side.SERVER)
    shared = encode_shared_frame(OP_TEXT, b"all")
    conn.send_text("mine")
    assert conn.queue_shared_frames(shared)
    assert conn.queue_shared_frames(shared)
    conn.receive_data(client_frame(OP_PING, b"p"))  # its pong is queued after them
    conn.send_close(1001)
    assert parse_frames(b"".join(conn.data_to_send()), masked=False) == parse_frames(
        b"\x81\x04mine" + shared + shared + b"\x8a\x01p" + b"\x88\x02\x03\xe9", masked=False
    )


def test_queue_shared_frames_refuses_when_the_frame_would_be_wrong() -> None:
    shared = encode_shared_frame(OP_TEXT, b"all")
    for conn in connections_a_shared_frame_would_be_wrong_on():
        queued = conn.pending_chunks
        assert not conn.queue_shared_frames(shared)
        assert conn.pending_chunks == queued
