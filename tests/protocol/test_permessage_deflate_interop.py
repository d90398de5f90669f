"""permessage-deflate against other implementations.

* plain :mod:`zlib` used the way other libraries use it: one compressor or
  decompressor kept for the whole connection, or a DEFLATE stream ended with
  BFINAL per message (RFC 7692 section 7.2.3.4);
* the ``websockets`` library's sans-I/O protocol, a real peer: full handshake
  and frames, in both roles, with its own permessage-deflate.
"""

from __future__ import annotations

import json
import os
import random
import zlib

import pytest
from protocol_testing import OP_BINARY, OP_CONT, OP_TEXT, frame_to, open_pair, parse_frames

from hubbub.protocol import (
    ClientConnection,
    Connection,
    Frame,
    Opcode,
    Request,
    Response,
    ServerConnection,
    State,
)
from hubbub.protocol.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

pytest.importorskip("websockets")
from websockets import frames as ws_frames
from websockets.client import ClientProtocol
from websockets.extensions import permessage_deflate as ws_deflate
from websockets.protocol import State as WSState
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

TAIL = b"\x00\x00\xff\xff"


def messages(n: int, seed: int = 0) -> list[bytes]:
    """Small JSON messages with a few large ones, to overflow every window."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "price", "update", "room", "user", "joined"]
    out = []
    for i in range(n):
        k = 2000 if i % 50 == 49 else rng.randint(3, 30)
        out.append(json.dumps({"i": i, "w": rng.choices(words, k=k)}).encode())
    return out


def pair(
    server_options: dict[str, object], client_options: dict[str, object] | None = None
) -> tuple[ClientConnection, ServerConnection]:
    return open_pair(
        ClientConnection(
            "ws://example.com/",
            extensions=[ClientPerMessageDeflateFactory(**(client_options or {}))],  # type: ignore[arg-type]
            max_size=None,
        ),
        ServerConnection(
            extensions=[ServerPerMessageDeflateFactory(**server_options)],  # type: ignore[arg-type]
            max_size=None,
        ),
    )


# --- plain zlib as the peer ---------------------------------------------------------------


@pytest.mark.parametrize("peer_bits", [9, 12, 15])
def test_we_inflate_a_peer_that_keeps_one_compressor(peer_bits: int) -> None:
    # The server lets the client use up to 15 bits; the peer picks its own.
    _client, server = pair({"client_max_window_bits": None}, {"client_max_window_bits": True})
    c = zlib.compressobj(6, zlib.DEFLATED, -peer_bits)
    sent = messages(200)
    for m in sent:
        payload = (c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        server.receive_data(frame_to(server, OP_BINARY, payload, rsv1=True))
    assert server.events_received() == sent
    assert server.close_exc is None


def test_we_inflate_a_peer_that_ends_every_message_with_bfinal() -> None:
    # Section 7.2.3.4: a new DEFLATE stream per message, still sharing the
    # window (a preset dictionary on the peer's side).
    _client, server = pair({"client_max_window_bits": None}, {"client_max_window_bits": True})
    window = b""
    sent = messages(60)
    for m in sent:
        c = zlib.compressobj(6, zlib.DEFLATED, -15, **({"zdict": window} if window else {}))
        payload = c.compress(m) + c.flush(zlib.Z_FINISH) + b"\x00"
        server.receive_data(frame_to(server, OP_TEXT, payload, rsv1=True))
        window = (window + m)[-32768:]
    assert server.events_received() == [m.decode() for m in sent]


@pytest.mark.parametrize(
    "options", [{}, {"keep_zlib_objects": True}, {"server_max_window_bits": 9}]
)
def test_a_peer_that_keeps_one_decompressor_inflates_us(options: dict[str, object]) -> None:
    _client, server = pair({"min_size": 0, **options})
    (ext,) = server.extensions
    assert isinstance(ext, PerMessageDeflate)
    bits = ext.local_max_window_bits
    sent = messages(200)
    for i, m in enumerate(sent):
        if i % 7 == 3:
            server.send_binary(m[:10], fin=False)
            server.send_continuation(m[10:], fin=True)
        else:
            server.send_binary(m, compress=i % 11 != 5)
    d = zlib.decompressobj(-bits)
    received: list[bytes] = []
    parts: list[bytes] = []
    compressed = False
    for f in parse_frames(b"".join(server.data_to_send()), masked=False):
        if f.opcode != OP_CONT:
            compressed = f.rsv1  # section 6.1: the first frame tells
        parts.append(
            d.decompress(f.payload + (TAIL if f.fin else b"")) if compressed else f.payload
        )
        if f.fin:
            received.append(b"".join(parts))
            parts = []
    assert received == sent


# --- websockets as the peer -----------------------------------------------------------------


def pump(source: Connection | ServerProtocol | ClientProtocol, destination: object) -> None:
    for chunk in source.data_to_send():
        if chunk:
            destination.receive_data(chunk)  # type: ignore[attr-defined]


def ws_messages(peer: ServerProtocol | ClientProtocol) -> list[str | bytes]:
    """Reassemble the messages among the frames ``websockets`` received."""
    out: list[str | bytes] = []
    parts: list[bytes] = []
    kind = Opcode.TEXT
    for event in peer.events_received():
        if not isinstance(event, ws_frames.Frame) or event.opcode.value >= 8:
            continue
        if event.opcode is not ws_frames.Opcode.CONT:
            kind = Opcode(event.opcode.value)
        parts.append(event.data)
        if event.fin:
            data = b"".join(parts)
            out.append(data.decode() if kind is Opcode.TEXT else data)
            parts = []
    return out


def exchange(ours: Connection, peer: ServerProtocol | ClientProtocol) -> None:
    """Messages both ways: single frames, fragments, text, binary, big and small."""
    sent = [m.decode() for m in messages(120)]
    big = os.urandom(50_000) + b"z" * 200_000
    for m in sent:
        peer.send_text(m.encode())
        ours.send_text(m)
    peer.send_binary(big[:1000], fin=False)
    peer.send_continuation(big[1000:], fin=True)
    ours.send_binary(big[:1000], fin=False)
    ours.send_continuation(big[1000:], fin=True)
    ours.send_text(sent[0], compress=False)
    pump(peer, ours)
    pump(ours, peer)
    assert ours.events_received() == [*sent, big]
    assert ws_messages(peer) == [*sent, big, sent[0]]
    assert ours.close_exc is None
    assert peer.state is WSState.OPEN  # it failed nothing


WS_CLIENT_OPTIONS = {
    "default": {},
    "server window 10": {"server_max_window_bits": 10},
    "client window 9": {"client_max_window_bits": 9},
    "client no takeover": {"client_no_context_takeover": True},
    "server no takeover": {"server_no_context_takeover": True},
    "all four": {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
        "server_max_window_bits": 11,
        "client_max_window_bits": 11,
    },
}
OUR_SERVER_OPTIONS = {
    "default": {},
    "15 bits": {"server_max_window_bits": None, "client_max_window_bits": None},
    "keep objects": {"keep_zlib_objects": True, "min_size": 0},
}


@pytest.mark.parametrize("ws_options", WS_CLIENT_OPTIONS.values(), ids=WS_CLIENT_OPTIONS.keys())
@pytest.mark.parametrize("our_options", OUR_SERVER_OPTIONS.values(), ids=OUR_SERVER_OPTIONS.keys())
def test_our_server_with_websockets_client(
    ws_options: dict[str, object], our_options: dict[str, object]
) -> None:
    peer = ClientProtocol(
        parse_uri("ws://example.com/"),
        extensions=[ws_deflate.ClientPerMessageDeflateFactory(**ws_options)],  # type: ignore[arg-type]
        max_size=None,
    )
    peer.send_request(peer.connect())
    ours = ServerConnection(
        extensions=[ServerPerMessageDeflateFactory(**our_options)],  # type: ignore[arg-type]
        max_size=None,
    )
    pump(peer, ours)
    (request,) = ours.events_received()
    assert isinstance(request, Request)
    ours.send_response(ours.accept(request))
    pump(ours, peer)
    peer.events_received()
    assert peer.handshake_exc is None
    assert [e.name for e in peer.extensions] == ["permessage-deflate"]
    assert [type(e) for e in ours.extensions] == [PerMessageDeflate]
    exchange(ours, peer)


WS_SERVER_OPTIONS = {
    "default": {},
    "server window 9": {"server_max_window_bits": 9},
    "client window 10": {"client_max_window_bits": 10},
    "server no takeover": {"server_no_context_takeover": True},
    "client no takeover": {"client_no_context_takeover": True},
}
OUR_CLIENT_OPTIONS = {
    "default": {},
    "request server window 11": {"server_max_window_bits": 11},
    "client window unlimited": {"client_max_window_bits": True},
    "client window 9": {"client_max_window_bits": 9},
    "no takeover either way": {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
    },
}


@pytest.mark.parametrize("ws_options", WS_SERVER_OPTIONS.values(), ids=WS_SERVER_OPTIONS.keys())
@pytest.mark.parametrize("our_options", OUR_CLIENT_OPTIONS.values(), ids=OUR_CLIENT_OPTIONS.keys())
def test_our_client_with_websockets_server(
    ws_options: dict[str, object], our_options: dict[str, object]
) -> None:
    peer = ServerProtocol(
        extensions=[ws_deflate.ServerPerMessageDeflateFactory(**ws_options)],  # type: ignore[arg-type]
        max_size=None,
    )
    ours = ClientConnection(
        "ws://example.com/",
        extensions=[ClientPerMessageDeflateFactory(**our_options)],  # type: ignore[arg-type]
        max_size=None,
    )
    ours.send_request()
    pump(ours, peer)
    (request,) = peer.events_received()
    peer.send_response(peer.accept(request))  # type: ignore[arg-type]
    pump(peer, ours)
    (response,) = ours.events_received()
    assert isinstance(response, Response)
    assert ours.state is State.OPEN, ours.handshake_exc
    assert [type(e) for e in ours.extensions] == [PerMessageDeflate]
    exchange(ours, peer)


@pytest.mark.parametrize("takeover", [True, False])
def test_frame_level_round_trip_with_websockets_extension(takeover: bool) -> None:
    # The two extensions face each other directly, frame by frame.
    theirs = ws_deflate.PerMessageDeflate(not takeover, not takeover, 10, 10)
    ours = PerMessageDeflate(
        local_no_context_takeover=not takeover,
        remote_no_context_takeover=not takeover,
        local_max_window_bits=10,
        remote_max_window_bits=10,
        min_size=0,
    )
    for m in messages(100, seed=7):
        half = len(m) // 2
        # websockets -> us, in two fragments.
        a = theirs.encode(ws_frames.Frame(ws_frames.Opcode.BINARY, m[:half], fin=False))
        b = theirs.encode(ws_frames.Frame(ws_frames.Opcode.CONT, m[half:], fin=True))
        assert (a.rsv1, b.rsv1) == (True, False)
        got = ours.decode(Frame(Opcode.BINARY, a.data, False, True)).data
        got += ours.decode(Frame(Opcode.CONTINUATION, b.data, True)).data
        assert got == m
        # us -> websockets, in two fragments.
        c = ours.encode(Frame(Opcode.TEXT, m[:half], False))
        d = ours.encode(Frame(Opcode.CONTINUATION, m[half:], True))
        assert (c.rsv1, d.rsv1) == (True, False)
        back = theirs.decode(
            ws_frames.Frame(ws_frames.Opcode.TEXT, c.data, fin=False, rsv1=True)
        ).data
        back += theirs.decode(ws_frames.Frame(ws_frames.Opcode.CONT, d.data, fin=True)).data
        assert back == m
