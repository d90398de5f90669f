"""permessage-deflate (RFC 7692) against real peers: ``websockets`` and Node's ``ws``, both roles.

Every test runs for the four pairings of :data:`interop_peers.PAIRINGS` with compression on:
hubbub's default, ``websockets``' default, and ``perMessageDeflate: true`` for Node's ``ws``
(``peer.js --deflate``; ws's server leaves it off unless asked).

Round trips alone would pass without any compression, so each test also looks at the wire.
:class:`WireTap` parses the frames hubbub's connection writes and reads (from the bytes the
sans-I/O core hands out and is fed) and records RSV1 and payload sizes: a compressible message
must travel with RSV1 set on its first frame only (section 6) and be much smaller than its
payload; an opted-out or incompressible one without RSV1.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from interop_peers import (
    PAIRINGS,
    STEP_TIMEOUT,
    Connection,
    NodeRemote,
    Remote,
    WebsocketsRemote,
    open_pair,
)

from hubbub import CloseCode
from hubbub.exceptions import ConnectionClosedError
from hubbub.protocol.permessage_deflate import PerMessageDeflate
from wire_frames import FrameLog, WireFrame, tap

pytestmark = pytest.mark.peer

KiB = 2**10
MiB = 2**20

#: Compresses ~100:1, but not to nothing: a line with a counter, repeated.
COMPRESSIBLE_TEXT = "".join(f"{{'seq': {i}, 'msg': 'hello, wörld ✓'}}\n" for i in range(3000))
COMPRESSIBLE_BINARY = bytes(range(256)) * 400  # 100 KiB

PairFactory = Callable[..., AbstractAsyncContextManager[tuple[Connection, Remote]]]


def random_text(size: int, seed: int) -> str:
    """Text DEFLATE cannot shrink much: random code points from several scripts."""
    rng = random.Random(seed)
    alphabet = [chr(c) for c in (*range(0x21, 0x7F), *range(0x400, 0x4FF), *range(0x4E00, 0x5E00))]
    return "".join(rng.choices(alphabet, k=size))


# --- the wire ------------------------------------------------------------------------------


class WireTap:
    """Records the frames a hubbub connection sends and receives, as they are on the wire.

    It wraps the sans-I/O core's ``data_to_send`` and ``receive_data``: every byte the
    adapter writes to or reads from the socket goes through them. Install it while no frame
    is in flight (right after the handshake), so both streams start at a frame boundary.
    """

    def __init__(self, conn: Connection) -> None:
        self.sent = FrameLog()
        self.received = FrameLog()
        tap(conn.protocol, self.sent, self.received)


def assert_compressed(frames: list[WireFrame], size: int, *, ratio: float = 0.2) -> None:
    """One message, compressed: RSV1 on the first frame only, much smaller than ``size``."""
    assert frames, "no frame seen on the wire"
    assert frames[0].rsv1, f"first frame not compressed: {frames}"
    assert not any(f.rsv1 for f in frames[1:]), f"RSV1 on a continuation frame: {frames}"
    assert [f.fin for f in frames] == [False] * (len(frames) - 1) + [True]
    assert sum(f.length for f in frames) < size * ratio, f"{frames} for {size} bytes"


def assert_uncompressed(frames: list[WireFrame], size: int) -> None:
    assert frames, "no frame seen on the wire"
    assert not any(f.rsv1 for f in frames), f"compressed: {frames}"
    assert sum(f.length for f in frames) == size


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(params=PAIRINGS)
def pair(request: pytest.FixtureRequest) -> PairFactory:
    """``async with pair(**options) as (local, remote)``, Node's ws with perMessageDeflate."""
    pairing: str = request.param
    node_peer = request.getfixturevalue("node_peer") if "node" in pairing else None

    def factory(**options: Any) -> AbstractAsyncContextManager[tuple[Connection, Remote]]:
        return open_pair(pairing, node_peer, node_options=["--deflate"], **options)  # type: ignore[arg-type]

    return factory


async def recv(local: Connection) -> str | bytes:
    return await asyncio.wait_for(local.recv(), STEP_TIMEOUT)


def remote_extensions(remote: Remote) -> list[str]:
    """The extensions the peer says it negotiated, by name."""
    if isinstance(remote, NodeRemote):
        return [name for name in remote.extensions.split(",") if name]
    assert isinstance(remote, WebsocketsRemote)
    return [str(ext.name) for ext in remote.ws.protocol.extensions]


# --- tests ---------------------------------------------------------------------------------


async def test_deflate_is_negotiated_on_both_ends(pair: PairFactory) -> None:
    async with pair() as (local, remote):
        extensions = local.protocol.extensions
        assert len(extensions) == 1
        assert isinstance(extensions[0], PerMessageDeflate)
        assert remote_extensions(remote) == ["permessage-deflate"]


async def test_no_deflate_when_hubbub_disables_it(pair: PairFactory) -> None:
    """The control: the peers' side of negotiation really depends on ours."""
    async with pair(compression=None) as (local, remote):
        assert local.protocol.extensions == []
        assert remote_extensions(remote) == []
        tap = WireTap(local)
        await local.send(COMPRESSIBLE_TEXT)
        assert await remote.recv() == COMPRESSIBLE_TEXT
        assert_uncompressed(tap.sent.take(), len(COMPRESSIBLE_TEXT.encode()))


async def test_compressible_messages_travel_compressed_both_ways(pair: PairFactory) -> None:
    text_size = len(COMPRESSIBLE_TEXT.encode())
    async with pair() as (local, remote):
        tap = WireTap(local)
        for message, size in ((COMPRESSIBLE_TEXT, text_size), (COMPRESSIBLE_BINARY, 100 * KiB)):
            await remote.send(message)
            assert await recv(local) == message
            assert_compressed(tap.received.take(), size)
            await local.send(message)
            assert await remote.recv() == message
            assert_compressed(tap.sent.take(), size)


async def test_incompressible_messages_round_trip(pair: PairFactory) -> None:
    noise = os.urandom(64 * KiB)
    text = random_text(20_000, seed=3)
    async with pair() as (local, remote):
        tap = WireTap(local)
        for message in (noise, text):
            await remote.send(message)
            assert await recv(local) == message
            tap.received.take()
            await local.send(message)
            assert await remote.recv() == message
        # hubbub sends random bytes as they are: compressing them would not make them smaller.
        sent = tap.sent.take()
        assert sent[0] == WireFrame(fin=True, rsv1=False, opcode=2, length=len(noise))


async def test_one_mebibyte_messages(pair: PairFactory) -> None:
    """1 MiB (hubbub's default max_size) inflated, compressible or not, both kinds, both ways."""
    noise = os.urandom(MiB)
    text = ("0123456789abcdef" * (MiB // 16))[:-2] + "é"  # exactly 1 MiB of UTF-8
    async with pair() as (local, remote):
        tap = WireTap(local)
        for message in (noise, text):
            await remote.send(message)
            assert await recv(local) == message
            await local.send(message[::-1])
            assert await remote.recv() == message[::-1]
        assert_compressed(tap.sent.take()[1:], MiB, ratio=0.01)
        assert_compressed(tap.received.take()[1:], MiB, ratio=0.01)


async def test_fragmented_compressed_messages(pair: PairFactory) -> None:
    # Fragments of 4 KiB and more: ws compresses a message only from 1 KiB (its threshold).
    text_fragments = [
        COMPRESSIBLE_TEXT[:5000],
        COMPRESSIBLE_TEXT[5000:30000],
        COMPRESSIBLE_TEXT[30000:],
    ]
    binary_fragments = [COMPRESSIBLE_BINARY[:4096], b"", COMPRESSIBLE_BINARY[4096:]]
    async with pair() as (local, remote):
        tap = WireTap(local)
        await remote.send_fragments(text_fragments)
        assert await recv(local) == COMPRESSIBLE_TEXT
        received = tap.received.take()
        assert len(received) >= 3  # websockets adds an empty final frame
        assert_compressed(received, len(COMPRESSIBLE_TEXT.encode()))

        await remote.send_fragments(binary_fragments)
        assert await recv(local) == COMPRESSIBLE_BINARY
        assert_compressed(tap.received.take(), len(COMPRESSIBLE_BINARY))

        await local.send(text_fragments)
        assert await remote.recv() == COMPRESSIBLE_TEXT
        sent = tap.sent.take()
        assert [f.opcode for f in sent] == [1, 0, 0]
        assert_compressed(sent, len(COMPRESSIBLE_TEXT.encode()))

        await local.send(iter(binary_fragments))
        assert await remote.recv() == COMPRESSIBLE_BINARY
        assert_compressed(tap.sent.take(), len(COMPRESSIBLE_BINARY))


async def test_per_message_opt_out(pair: PairFactory) -> None:
    """``send(data, compress=False)`` goes out plain, and the compressed stream is unharmed."""
    text_size = len(COMPRESSIBLE_TEXT.encode())
    async with pair() as (local, remote):
        tap = WireTap(local)
        await local.send(COMPRESSIBLE_TEXT)
        assert await remote.recv() == COMPRESSIBLE_TEXT
        assert_compressed(tap.sent.take(), text_size)

        await local.send(COMPRESSIBLE_TEXT, compress=False)
        assert await remote.recv() == COMPRESSIBLE_TEXT
        assert_uncompressed(tap.sent.take(), text_size)

        await local.send(COMPRESSIBLE_BINARY, compress=False)
        assert await remote.recv() == COMPRESSIBLE_BINARY
        assert_uncompressed(tap.sent.take(), len(COMPRESSIBLE_BINARY))

        await local.send(["plain ", "fragments ✓" * 200], compress=False)
        assert await remote.recv() == "plain " + "fragments ✓" * 200
        assert_uncompressed(tap.sent.take(), len(("plain " + "fragments ✓" * 200).encode()))

        # Compression resumes with the window as it was (context takeover, section 7.2.3.2).
        await local.send(COMPRESSIBLE_TEXT)
        assert await remote.recv() == COMPRESSIBLE_TEXT
        assert_compressed(tap.sent.take(), text_size)
        await remote.send(COMPRESSIBLE_TEXT)
        assert await recv(local) == COMPRESSIBLE_TEXT


async def test_inflated_size_over_max_size_is_refused_with_1009(pair: PairFactory) -> None:
    """max_size bounds the message after inflating: a small frame that inflates past it fails."""
    max_size = 64 * KiB
    bomb = "a" * MiB  # 1 MiB inflated, about 1 KiB compressed
    async with pair(max_size=max_size) as (local, remote):
        tap = WireTap(local)
        await remote.send(bomb)
        with pytest.raises(ConnectionClosedError) as raised:
            await recv(local)
        assert raised.value.sent_code == CloseCode.MESSAGE_TOO_BIG
        assert (await remote.wait_closed())[0] == CloseCode.MESSAGE_TOO_BIG
        # What arrived was well under max_size: the limit applied to the inflated size.
        received = tap.received.take()
        assert received
        assert received[0].rsv1
        assert sum(f.length for f in received) < max_size // 8
