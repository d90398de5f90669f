"""permessage-deflate compression (RFC 7692 sections 6 and 7.2), on connection pairs.

Messages go through real client and server connections that negotiated the
extension in a real handshake; what is on the wire is parsed by the test
helpers and checked against plain :mod:`zlib`.
"""

from __future__ import annotations

import json
import os
import random
import zlib

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    ParsedFrame,
    assert_failed,
    frame_to,
    open_pair,
    parse_frames,
)

from hubbub.protocol import (
    ClientConnection,
    Connection,
    Frame,
    Opcode,
    Ping,
    ServerConnection,
    Side,
)
from hubbub.protocol.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

TAIL = b"\x00\x00\xff\xff"


def deflate_pair(
    server: dict[str, object] | None = None,
    client: dict[str, object] | None = None,
    max_size: int | None = 2**20,
) -> tuple[ClientConnection, ServerConnection]:
    """A client and a server that negotiated permessage-deflate with these options."""
    c = ClientConnection(
        "ws://example.com/",
        extensions=[ClientPerMessageDeflateFactory(**(client or {}))],  # type: ignore[arg-type]
        max_size=max_size,
    )
    s = ServerConnection(
        extensions=[ServerPerMessageDeflateFactory(**(server or {}))],  # type: ignore[arg-type]
        max_size=max_size,
    )
    open_pair(c, s)
    assert [type(e) for e in c.extensions] == [PerMessageDeflate]
    assert [type(e) for e in s.extensions] == [PerMessageDeflate]
    return c, s


def ext(conn: Connection) -> PerMessageDeflate:
    (extension,) = conn.extensions
    assert isinstance(extension, PerMessageDeflate)
    return extension


def deliver(
    source: Connection, destination: Connection, chunk_size: int | None = None
) -> tuple[list[ParsedFrame], list[object]]:
    """Move what ``source`` sent to ``destination``: the frames, and the events."""
    wire = b"".join(source.data_to_send())
    frames = parse_frames(wire, masked=source.side is Side.CLIENT)
    step = chunk_size or len(wire) or 1
    for i in range(0, len(wire), step):
        destination.receive_data(wire[i : i + step])
    return frames, destination.events_received()


def inflate(*payloads: bytes, wbits: int = 15) -> bytes:
    """Inflate message payloads the way RFC 7692 section 7.2.2 says, with plain zlib."""
    d = zlib.decompressobj(-wbits)
    return b"".join(d.decompress(p + TAIL) for p in payloads)


def chat(n: int, seed: int = 0) -> list[str]:
    """Realistic small JSON messages."""
    rng = random.Random(seed)
    words = ["hello", "world", "price", "update", "user", "joined", "left", "the", "room"]
    return [
        json.dumps(
            {
                "type": "chat",
                "user": f"user{rng.randint(1, 50)}",
                "text": " ".join(rng.choices(words, k=rng.randint(3, 20))),
                "id": rng.randint(1, 10**9),
            }
        )
        for _ in range(n)
    ]


DIRECTIONS = pytest.mark.parametrize("direction", ["client->server", "server->client"])


def ends(
    pair: tuple[ClientConnection, ServerConnection], direction: str
) -> tuple[Connection, Connection]:
    client, server = pair
    return (client, server) if direction == "client->server" else (server, client)


# --- round trips ------------------------------------------------------------------------


@DIRECTIONS
def test_text_and_binary_round_trip_compressed(direction: str) -> None:
    sender, receiver = ends(deflate_pair(), direction)
    text = "café " * 100
    sender.send_text(text)
    sender.send_binary(bytes(range(256)) * 8)
    frames, events = deliver(sender, receiver)
    assert events == [text, bytes(range(256)) * 8]
    assert [(f.opcode, f.rsv1, f.fin) for f in frames] == [
        (OP_TEXT, True, True),
        (OP_BINARY, True, True),
    ]
    assert len(frames[0].payload) < 100
    # What we sent is plain RFC 7692 DEFLATE data.
    assert (
        inflate(frames[0].payload, frames[1].payload, wbits=12)
        == text.encode() + bytes(range(256)) * 8
    )


@DIRECTIONS
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_fragmented_message_round_trips(direction: str, chunk_size: int | None) -> None:
    sender, receiver = ends(deflate_pair(), direction)
    parts = ["".join(random.Random(i).choices("abcdéf🙂 xyz", k=400)) for i in range(3)]
    sender.send_text(parts[0], fin=False)
    sender.send_continuation(parts[1], fin=False)
    sender.send_continuation(parts[2], fin=True)
    frames, events = deliver(sender, receiver, chunk_size)
    assert events == ["".join(parts)]
    # Section 6.1: RSV1 on the first frame only.
    assert [(f.opcode, f.rsv1, f.fin) for f in frames] == [
        (OP_TEXT, True, False),
        (OP_CONT, False, False),
        (OP_CONT, False, True),
    ]
    d = zlib.decompressobj(-12)
    joined = b"".join(f.payload for f in frames) + TAIL
    assert d.decompress(joined) == "".join(parts).encode()


@pytest.mark.parametrize("sizes", [[1], [3, 0, 1000], [64], [0, 5000]], ids=str)
def test_peer_cutting_compressed_payload_anywhere(sizes: list[int]) -> None:
    # What Autobahn's auto-fragmentation does (cases 12.x and 13.x): compress
    # the whole message, then cut the payload into frames of N octets, even
    # inside DEFLATE blocks or in the middle of the removed tail's neighbours.
    client, server = deflate_pair()
    rng = random.Random(len(sizes))
    for m in [*chat(20), " ".join(chat(200))]:
        c = zlib.compressobj(6, zlib.DEFLATED, -12)
        payload = (c.compress(m.encode()) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        pieces, pos = [], 0
        while pos < len(payload):
            size = rng.choice(sizes)
            pieces.append(payload[pos : pos + size])
            pos += size
        for i, piece in enumerate(pieces):
            fin = i == len(pieces) - 1
            opcode = OP_TEXT if i == 0 else OP_CONT
            server.receive_data(frame_to(server, opcode, piece, rsv1=i == 0, fin=fin))
        assert server.events_received() == [m]
    assert server.close_exc is None
    assert client.close_exc is None


@DIRECTIONS
def test_fragmented_binary_with_empty_last_fragment(direction: str) -> None:
    sender, receiver = ends(deflate_pair(), direction)
    sender.send_binary(b"x" * 1000, fin=False)
    sender.send_continuation(b"", fin=True)
    sender.send_binary(b"y" * 1000)  # the window must still be in step
    frames, events = deliver(sender, receiver)
    assert events == [b"x" * 1000, b"y" * 1000]
    # Section 7.2.3.6: an empty final fragment is an empty stored block, 0x00.
    assert frames[1].payload == b"\x00"


@DIRECTIONS
def test_control_frames_are_never_compressed(direction: str) -> None:
    sender, receiver = ends(deflate_pair(), direction)
    sender.send_text("a" * 500, fin=False)
    sender.send_ping(b"p" * 100)
    sender.send_continuation("b" * 500, fin=True)
    frames, events = deliver(sender, receiver)
    assert [(f.opcode, f.rsv1) for f in frames] == [
        (OP_TEXT, True),
        (OP_PING, False),
        (OP_CONT, False),
    ]
    assert frames[1].payload == b"p" * 100
    assert events == [Ping(b"p" * 100), "a" * 500 + "b" * 500]


@DIRECTIONS
def test_many_messages_round_trip_with_context_takeover(direction: str) -> None:
    sender, receiver = ends(deflate_pair(), direction)
    messages = chat(300)
    for m in messages:
        sender.send_text(m)
    frames, events = deliver(sender, receiver)
    assert events == messages
    wire = sum(len(f.payload) for f in frames)
    assert wire < 0.5 * sum(len(m) for m in messages)


@DIRECTIONS
def test_large_messages(direction: str) -> None:
    sender, receiver = ends(deflate_pair(max_size=None), direction)
    text = " ".join(chat(20000))  # ~2 MB of JSON
    blob = os.urandom(300_000)
    sender.send_text(text)
    sender.send_binary(blob)
    sender.send_binary(blob[:65536], fin=False)
    for i in range(65536, len(blob), 65536):
        sender.send_continuation(blob[i : i + 65536], fin=i + 65536 >= len(blob))
    frames, events = deliver(sender, receiver)
    assert events == [text, blob, blob]
    assert len(frames[0].payload) < len(text) // 3


# --- context takeover -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "client", "direction", "takeover"),
    [
        ({}, {}, "server->client", True),
        ({}, {}, "client->server", True),
        ({"server_no_context_takeover": True}, {}, "server->client", False),
        ({}, {"server_no_context_takeover": True}, "server->client", False),
        ({"client_no_context_takeover": True}, {}, "client->server", False),
        ({}, {"client_no_context_takeover": True}, "client->server", False),
    ],
)
def test_context_takeover_honoured_or_reset(
    server: dict[str, object], client: dict[str, object], direction: str, takeover: bool
) -> None:
    sender, receiver = ends(deflate_pair(server, client), direction)
    message = chat(1)[0]
    for _ in range(3):
        sender.send_text(message)
    frames, events = deliver(sender, receiver)
    assert events == [message] * 3
    sizes = [len(f.payload) for f in frames]
    if takeover:
        # The repeats are back references into the previous message.
        assert sizes[1] < 10
        assert sizes[2] < 10 < sizes[0]
    else:
        assert sizes[0] == sizes[1] == sizes[2]
        assert inflate(frames[2].payload) == message.encode()  # decodes on its own


def test_rfc_7692_examples_decode() -> None:
    client, _server = deflate_pair(client={"client_max_window_bits": None})
    examples = [
        bytes.fromhex("f248cdc9c90700"),  # 7.2.3.1: "Hello"
        bytes.fromhex("f200110000"),  # 7.2.3.2: "Hello" again, from the shared window
        bytes.fromhex("000500faff48656c6c6f00"),  # 7.2.3.3: a stored block
        bytes.fromhex("f24805000000ffffcac9c90700"),  # 7.2.3.5: two blocks
        bytes.fromhex("f348cdc9c9070000"),  # 7.2.3.4: a block with BFINAL set
        bytes.fromhex("f200110000"),  # after BFINAL: a new stream, same window
    ]
    for payload in examples:
        client.receive_data(frame_to(client, OP_TEXT, payload, rsv1=True))
    assert client.events_received() == ["Hello"] * len(examples)
    assert client.close_exc is None


def test_encoder_produces_rfc_7692_examples() -> None:
    # "Hello" compresses to 7 bytes: only a kept compressor, which cannot take
    # a message back, sends it compressed.
    options = {"min_size": 0, "server_max_window_bits": None, "keep_zlib_objects": True}
    client, server = deflate_pair(server=options)
    server.send_text("Hello")
    server.send_text("Hello")
    frames, events = deliver(server, client)
    assert events == ["Hello", "Hello"]
    # Sections 7.2.3.1 and 7.2.3.2, byte for byte.
    assert [f.payload.hex() for f in frames] == ["f248cdc9c90700", "f200110000"]


@pytest.mark.parametrize("bits", [9, 12, 15])
def test_rebuilt_compressor_sends_the_same_bytes_as_a_kept_one(bits: int) -> None:
    # The theory of operation's claim: a compressor rebuilt from the window with
    # a preset dictionary continues the stream as the kept one would (zlib's
    # deflate is deterministic, so here even byte for byte).
    messages = [*chat(200), " ".join(chat(100)), *chat(50, seed=3)]
    wires = []
    for keep in (False, True):
        client, server = deflate_pair(
            server={"keep_zlib_objects": keep, "server_max_window_bits": bits}
        )
        for m in messages:
            server.send_text(m)
        frames, events = deliver(server, client)
        assert events == messages
        wires.append([f.payload for f in frames])
    assert wires[0] == wires[1]


# --- what goes uncompressed ---------------------------------------------------------------


@DIRECTIONS
def test_messages_below_min_size_go_uncompressed(direction: str) -> None:
    sender, receiver = ends(deflate_pair(), direction)
    sender.send_text("a" * 31)
    sender.send_text("a" * 32)
    frames, events = deliver(sender, receiver)
    assert events == ["a" * 31, "a" * 32]
    assert [f.rsv1 for f in frames] == [False, True]
    assert frames[0].payload == b"a" * 31


def test_min_size_zero_compresses_everything_that_shrinks() -> None:
    client, server = deflate_pair(server={"min_size": 0})
    server.send_text("aaaaaaaaaaaaaaaaaaaa")
    frames, events = deliver(server, client)
    assert frames[0].rsv1
    assert len(frames[0].payload) < 20
    assert events == ["a" * 20]


@DIRECTIONS
def test_per_message_opt_out(direction: str) -> None:
    sender, receiver = ends(deflate_pair(), direction)
    text = "compressible " * 40
    sender.send_text(text)
    sender.send_text(text, compress=False)
    sender.send_binary(text.encode(), fin=False, compress=False)
    sender.send_continuation(text, fin=True)
    sender.send_text(text)  # compressed again, from the window of message 1
    frames, events = deliver(sender, receiver)
    assert events == [text, text, text.encode() * 2, text]
    assert [f.rsv1 for f in frames] == [True, False, False, False, True]
    assert frames[1].payload == frames[2].payload == frames[3].payload == text.encode()
    assert len(frames[4].payload) < 10


@pytest.mark.parametrize("keep", [False, True])
def test_incompressible_data(keep: bool) -> None:
    client, server = deflate_pair(server={"keep_zlib_objects": keep})
    noise = os.urandom(20_000)
    server.send_binary(noise)
    server.send_text("compressible " * 40)
    frames, events = deliver(server, client)
    assert events == [noise, "compressible " * 40]
    if keep:
        # A kept compressor cannot take the message back: it goes compressed.
        assert frames[0].rsv1
        assert len(frames[0].payload) > len(noise)
    else:
        # Nothing gained: sent as it is, and the peer does not inflate it.
        assert not frames[0].rsv1
        assert frames[0].payload == noise
    assert frames[1].rsv1


# --- window sizes -----------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 9, 10, 12, 15])
def test_window_bits_are_respected(bits: int) -> None:
    # A peer inflating with exactly 2**bits bytes of window fails with
    # "invalid distance too far back" if we ever reach farther.
    client, server = deflate_pair(
        server={"server_max_window_bits": None, "client_max_window_bits": None},
        client={"server_max_window_bits": bits, "client_max_window_bits": bits},
    )
    rng = random.Random(bits)
    chunk = bytes(rng.randrange(256) for _ in range(200))
    text = " ".join(chat(400, seed=bits)).encode()
    # Repeats at distances 200 to 40000: tempting matches beyond small windows.
    data = (chunk + text[:300]) * 4 + chunk * 3 + text[:40000] + chunk * 2
    for sender, receiver in ((server, client), (client, server)):
        assert ext(sender).local_max_window_bits == bits
        sender.send_binary(data)
        sender.send_binary(data[::-1])
        frames, events = deliver(sender, receiver)
        assert events == [data, data[::-1]]
        assert [f.rsv1 for f in frames] == [True, True]
        assert inflate(*(f.payload for f in frames), wbits=bits) == data + data[::-1]


# --- invalid data -----------------------------------------------------------------------


@pytest.fixture
def server() -> ServerConnection:
    return deflate_pair()[1]


def test_rsv1_on_continuation_frame_fails(server: ServerConnection) -> None:
    payload = zlib.compressobj(wbits=-15).compress(b"abc")
    server.receive_data(frame_to(server, OP_TEXT, payload, rsv1=True, fin=False))
    server.receive_data(frame_to(server, OP_CONT, b"\x00", rsv1=True))
    assert_failed(server, 1002)


def test_rsv1_on_control_frame_fails(server: ServerConnection) -> None:
    server.receive_data(frame_to(server, OP_PING, b"", rsv1=True))
    assert_failed(server, 1002)


def test_invalid_deflate_data_fails(server: ServerConnection) -> None:
    server.receive_data(frame_to(server, OP_BINARY, b"\xff\xff\xff\xff", rsv1=True))
    assert_failed(server, 1002)


def test_data_after_final_block_fails(server: ServerConnection) -> None:
    c = zlib.compressobj(wbits=-15)
    final = c.compress(b"Hello") + c.flush(zlib.Z_FINISH)
    server.receive_data(frame_to(server, OP_TEXT, final + b"more", rsv1=True))
    assert_failed(server, 1002)


def test_invalid_utf8_inside_compressed_text_fails_1007(server: ServerConnection) -> None:
    c = zlib.compressobj(wbits=-15)
    payload = (c.compress(b"abc\xff" * 20) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    server.receive_data(frame_to(server, OP_TEXT, payload, rsv1=True))
    assert_failed(server, 1007)


@pytest.mark.parametrize("keep", [False, True])
def test_empty_compressed_payload_is_an_empty_message(keep: bool) -> None:
    _client, server = deflate_pair(server={"keep_zlib_objects": keep})
    server.receive_data(frame_to(server, OP_TEXT, b"", rsv1=True))
    server.receive_data(frame_to(server, OP_TEXT, bytes.fromhex("f248cdc9c90700"), rsv1=True))
    assert server.events_received() == ["", "Hello"]


# --- memory -----------------------------------------------------------------------------


def test_idle_connection_keeps_no_zlib_object() -> None:
    client, server = deflate_pair()
    for sender, receiver in ((client, server), (server, client)):
        assert ext(sender)._encoder is None
        assert ext(sender)._decoder is None
        sender.send_text(chat(1)[0])
        deliver(sender, receiver)
    for e in (ext(client), ext(server)):
        assert e._encoder is None
        assert e._decoder is None
        # What remains: the windows, at most 2**12 bytes each.
        assert 0 < len(e._out_history) <= 4096
        assert 0 < len(e._in_history) <= 4096


def test_no_context_takeover_keeps_nothing() -> None:
    client, server = deflate_pair(
        server={"server_no_context_takeover": True}, client={"client_no_context_takeover": True}
    )
    client.send_text("x" * 1000)
    deliver(client, server)
    server.send_text("y" * 1000)
    deliver(server, client)
    for e in (ext(client), ext(server)):
        assert (e._encoder, e._decoder, e._out_history, e._in_history) == (None, None, b"", b"")


@pytest.mark.parametrize("keep", [False, True])
def test_no_context_takeover_drops_zlib_objects_even_when_keeping_them(keep: bool) -> None:
    nct = {"server_no_context_takeover": True, "client_no_context_takeover": True}
    client, server = deflate_pair(server={**nct, "keep_zlib_objects": keep}, client=nct)
    server.send_text("x" * 1000)
    deliver(server, client)
    client.send_text("y" * 1000)
    assert deliver(client, server)[1] == ["y" * 1000]
    assert ext(server)._encoder is None
    assert ext(server)._decoder is None


def test_final_fragment_is_an_empty_block_if_zlib_flushes_nothing() -> None:
    # zlib emits an empty stored block on every sync flush that follows a
    # compress() call; a compressor that emits nothing must still end the
    # message with one (section 7.2.3.6), or the peer's inflater would read
    # the appended tail as a block header.
    class Silent:
        def compress(self, data: bytes) -> bytes:
            return b""

        def flush(self, mode: int) -> bytes:
            return b""

    extension = PerMessageDeflate(keep_zlib_objects=True)
    extension.encode(Frame(Opcode.BINARY, b"a" * 100, False))
    extension._encoder = Silent()  # type: ignore[assignment]
    assert extension.encode(Frame(Opcode.CONTINUATION, b"", True)).data == b"\x00"


def test_keep_zlib_objects_and_compact() -> None:
    client, server = deflate_pair(
        server={"keep_zlib_objects": True}, client={"keep_zlib_objects": True}
    )
    message = chat(1)[0]
    server.send_text(message)
    deliver(server, client)
    assert ext(server)._encoder is not None
    assert ext(client)._decoder is not None
    ext(server).compact()
    ext(client).compact()
    assert ext(server)._encoder is None
    assert ext(client)._decoder is None
    server.send_text(message)
    frames, events = deliver(server, client)
    assert events == [message]
    assert len(frames[0].payload) < 10  # the window survived compact()


def test_compact_leaves_message_in_progress_alone() -> None:
    client, server = deflate_pair(server={"keep_zlib_objects": True})
    server.send_text("a" * 100, fin=False)
    ext(server).compact()
    server.send_continuation("b" * 100, fin=True)
    assert deliver(server, client)[1] == ["a" * 100 + "b" * 100]
    # A peer may cut a compressed message anywhere, even inside a block: the
    # receiving side's inflater must survive compact() in the middle.
    data = " ".join(chat(50)).encode()
    c = zlib.compressobj(6, zlib.DEFLATED, -12)
    payload = (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    server.receive_data(frame_to(server, OP_BINARY, payload[:1001], rsv1=True, fin=False))
    ext(server).compact()
    server.receive_data(frame_to(server, OP_CONT, payload[1001:]))
    assert server.events_received() == [data]


def test_release_on_eof_frees_windows() -> None:
    client, server = deflate_pair()
    client.send_text(chat(1)[0])
    deliver(client, server)
    server.receive_eof()
    e = ext(server)
    assert (e._encoder, e._decoder, e._out_history, e._in_history) == (None, None, b"", b"")
