"""hubbub against real peers: the ``websockets`` library and Node's ``ws``, both roles.

Every test runs for the four pairings of :data:`interop_peers.PAIRINGS` over loopback TCP.
They cover what issue 2 asks of interop: text, binary, 1 MiB messages, fragmented messages,
ping/pong, close codes and reasons in both directions, and subprotocol negotiation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from interop_peers import PAIRINGS, STEP_TIMEOUT, Connection, NodeRemote, Remote, open_pair, pattern

from hubbub import CloseCode, State
from hubbub.exceptions import ConnectionClosedError, ConnectionClosedOK

pytestmark = pytest.mark.peer

MiB = 2**20

PairFactory = Callable[..., AbstractAsyncContextManager[tuple[Connection, Remote]]]


def make_pair_factory(request: pytest.FixtureRequest) -> PairFactory:
    pairing: str = request.param
    # Node's fixture only for the Node pairings: the websockets ones run without Node.
    node_peer = request.getfixturevalue("node_peer") if "node" in pairing else None

    def factory(**options: Any) -> AbstractAsyncContextManager[tuple[Connection, Remote]]:
        return open_pair(pairing, node_peer, **options)  # type: ignore[arg-type]

    return factory


@pytest.fixture(params=PAIRINGS)
def pair(request: pytest.FixtureRequest) -> PairFactory:
    """``async with pair(**options) as (local, remote)``: hubbub's end and the peer's end."""
    return make_pair_factory(request)


@pytest.fixture(params=[p for p in PAIRINGS if "node" in p])
def node_pair(request: pytest.FixtureRequest) -> PairFactory:
    """Like ``pair``, for the two pairings with Node's ws only."""
    return make_pair_factory(request)


@pytest.fixture(params=[p for p in PAIRINGS if p.startswith("hubbub-server")])
def server_pair(request: pytest.FixtureRequest) -> PairFactory:
    """Like ``pair``, for the two pairings where hubbub is the server."""
    return make_pair_factory(request)


async def recv(local: Connection) -> str | bytes:
    return await asyncio.wait_for(local.recv(), STEP_TIMEOUT)


async def test_text_both_ways(pair: PairFactory) -> None:
    async with pair() as (local, remote):
        await remote.send("héllo, wörld ✓ 🦉")
        assert await recv(local) == "héllo, wörld ✓ 🦉"
        await local.send("ça marche 👍")
        assert await remote.recv() == "ça marche 👍"
        await remote.send("")
        assert await recv(local) == ""


async def test_binary_both_ways(pair: PairFactory) -> None:
    every_byte = bytes(range(256))
    async with pair() as (local, remote):
        await remote.send(every_byte)
        received = await recv(local)
        assert isinstance(received, bytes)
        assert received == every_byte
        await local.send(every_byte[::-1])
        assert await remote.recv() == every_byte[::-1]
        await local.send(b"")
        assert await remote.recv() == b""


async def test_one_mebibyte_messages(pair: PairFactory) -> None:
    """1 MiB is hubbub's default max_size: exactly that much must pass, both kinds, both ways."""
    binary = pattern(MiB, seed=7)
    text = "é" * (MiB // 2)  # 2 bytes per character in UTF-8: exactly 1 MiB on the wire
    async with pair() as (local, remote):
        await remote.send(binary)
        assert await recv(local) == binary
        await remote.send(text)
        assert await recv(local) == text
        await local.send(binary[::-1])
        assert await remote.recv() == binary[::-1]
        await local.send(text)
        assert await remote.recv() == text


async def test_message_over_max_size_is_refused_with_1009(pair: PairFactory) -> None:
    async with pair(max_size=MiB) as (local, remote):
        await remote.send(pattern(MiB + 1))
        with pytest.raises(ConnectionClosedError) as raised:
            await recv(local)
        assert raised.value.sent_code == CloseCode.MESSAGE_TOO_BIG
        assert (await remote.wait_closed())[0] == CloseCode.MESSAGE_TOO_BIG


async def test_fragmented_messages(pair: PairFactory) -> None:
    async with pair() as (local, remote):
        await remote.send_fragments(["frag", "men", "ted ✓"])
        assert await recv(local) == "fragmented ✓"
        await remote.send_fragments([b"\x00\x01", b"", b"\x02\x03"])
        assert await recv(local) == b"\x00\x01\x02\x03"
        await local.send(["one ", "two ", "three ✓"])
        assert await remote.recv() == "one two three ✓"
        await local.send(iter([b"\xff", b"\xfe", b"\xfd"]))
        assert await remote.recv() == b"\xff\xfe\xfd"

        async def chunks() -> AsyncIterator[str]:
            for chunk in ("as", "ync ", "chunks"):
                yield chunk

        await local.send(chunks())
        assert await remote.recv() == "async chunks"


async def test_text_fragments_split_inside_utf8_sequences(node_pair: PairFactory) -> None:
    """Only Node's ws can split a text message at arbitrary bytes; hubbub must reassemble."""
    async with node_pair() as (local, remote):
        assert isinstance(remote, NodeRemote)
        encoded = "a€🦉b".encode()  # 1 + 3 + 4 + 1 bytes
        pieces = [encoded[:2], encoded[2:3], encoded[3:6], encoded[6:]]
        await remote.send_raw_text_fragments(pieces)
        assert await recv(local) == "a€🦉b"


async def test_ping_from_hubbub(pair: PairFactory) -> None:
    async with pair() as (local, remote):
        latency = await asyncio.wait_for(local.ping(b"are you there?"), STEP_TIMEOUT)
        assert 0 <= latency < STEP_TIMEOUT
        latency = await asyncio.wait_for(local.ping(), STEP_TIMEOUT)  # payload of hubbub's own
        assert 0 <= latency < STEP_TIMEOUT
        # The connection is still usable after the pings.
        await local.send("after ping")
        assert await remote.recv() == "after ping"
        if isinstance(remote, NodeRemote):
            assert b"are you there?" in remote.pings_received


async def test_ping_from_peer_is_answered_with_its_payload(pair: PairFactory) -> None:
    async with pair() as (local, remote):
        await remote.ping(b"ping payload \x00\xff")
        await remote.ping(b"")
        await remote.send("after ping")
        assert await recv(local) == "after ping"


@pytest.mark.parametrize(
    ("code", "reason"),
    [(CloseCode.NORMAL_CLOSURE, ""), (CloseCode.NORMAL_CLOSURE, "bye"), (4000, "custom reason ✓")],
)
async def test_close_initiated_by_hubbub(pair: PairFactory, code: int, reason: str) -> None:
    async with pair() as (local, remote):
        await asyncio.wait_for(local.close(code, reason), STEP_TIMEOUT)
        assert await remote.wait_closed() == (code, reason)
        assert local.ready_state == State.CLOSED
        # Both peers echo the code they received (RFC 6455 section 5.5.1).
        assert local.close_code == code
        with pytest.raises(ConnectionClosedOK if code == 1000 else ConnectionClosedError):
            await local.send("too late")


@pytest.mark.parametrize(
    ("code", "reason"),
    [(CloseCode.NORMAL_CLOSURE, "done"), (CloseCode.GOING_AWAY, ""), (4001, "peer's reason ✓")],
)
async def test_close_initiated_by_peer(pair: PairFactory, code: int, reason: str) -> None:
    async with pair() as (local, remote):
        await remote.send("last words")
        await remote.close(code, reason)
        assert await recv(local) == "last words"
        expected = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
        with pytest.raises(expected) as raised:
            await recv(local)
        assert raised.value.code == code
        assert raised.value.reason == reason
        assert (local.close_code, local.close_reason) == (code, reason)
        assert local.ready_state == State.CLOSED
        # hubbub answered with the same code (section 5.5.1), which the peer received.
        assert (await remote.wait_closed())[0] == code


async def test_iteration_ends_quietly_on_normal_close(pair: PairFactory) -> None:
    async with pair() as (local, remote):
        for message in ("one", "two", "three"):
            await remote.send(message)
        await remote.close(CloseCode.NORMAL_CLOSURE, "")
        received = [message async for message in local]
        assert received == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("server_side", "client_side", "chosen"),
    [
        (["chat", "superchat"], ["superchat", "chat"], "chat"),  # the server's preference wins
        (["chat", "superchat"], ["superchat"], "superchat"),
        ([], [], None),
    ],
)
async def test_subprotocol_negotiation(
    pair: PairFactory, server_side: list[str], client_side: list[str], chosen: str | None
) -> None:
    async with pair(server_subprotocols=server_side, client_subprotocols=client_side) as (
        local,
        remote,
    ):
        assert local.subprotocol == chosen
        assert remote.subprotocol == chosen
        await local.send("negotiated")
        assert await remote.recv() == "negotiated"


async def test_server_accepts_client_offering_no_subprotocol(server_pair: PairFactory) -> None:
    """Issue 2: a client that offers none is accepted unless the server requires one.

    (Only with hubbub as the server: the websockets server itself refuses such a client.)
    """
    async with server_pair(server_subprotocols=["chat"]) as (local, remote):
        assert local.subprotocol is None
        assert remote.subprotocol is None
        assert local.request is not None
        assert local.request.path == "/interop?x=1"
        await remote.send("no subprotocol")
        assert await recv(local) == "no subprotocol"
