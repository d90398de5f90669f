"""Channel fan-out over real sockets: publications of one loop iteration in one write (issue 13)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hub_helpers import SECRET, WireClient
from test_hub_server import API_KEY, http

from hubbub.asyncio import ServerConnection, connect
from hubbub.hub import SUBPROTOCOL, mint_token
from hubbub.hub.server import Hub, start_hub
from hubbub.hub.server.frames import LONE_WINDOW, FrameCache
from hubbub.hub.server.http_api import MAX_BATCH

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with start_hub(
        "127.0.0.1", 0, secret=SECRET, api_key=API_KEY, tick_interval=60
    ) as running:
        yield running


def batch(*pubs: tuple[str, Any]) -> bytes:
    return json.dumps({"publications": [{"channel": c, "data": d} for c, d in pubs]}).encode()


async def subscribed(hub: Hub, user: str, channel: str) -> tuple[WireClient, ServerConnection]:
    # No permessage-deflate: it compresses per connection (RFC 7692), so no
    # frame is shared (those go through the outbox's writer task).
    ws = await connect(f"ws://127.0.0.1:{hub.port}/", subprotocols=[SUBPROTOCOL], compression=None)
    client = WireClient(ws)
    await client.ok("connect", token=mint_token(user, SECRET))
    await client.ok("subscribe", channel=channel)
    (conn,) = [c for c in hub.server.connections if c.remote_address == ws.local_address]
    return client, conn


async def test_a_batch_reaches_each_subscriber_in_one_write(
    hub: Hub, held_flushes: list[list[tuple[Any, list[bytes]]]]
) -> None:
    clients = [await subscribed(hub, user, "lobby") for user in ("ann", "bob")]
    held_flushes.clear()
    body = batch(*(("lobby", f"n{i}") for i in range(5)))
    status, text = await http(hub.port, "POST", "/api/publish_batch", body, **AUTH)
    assert status == 200, text
    assert [r["offset"] for r in json.loads(text)["results"]] == [1, 2, 3, 4, 5]
    for client, _ in clients:
        pubs = [await client.push("pub") for _ in range(5)]
        assert [(p["offset"], p["data"]) for p in pubs] == [(i + 1, f"n{i}") for i in range(5)]
    # The five publications were fanned out in one loop iteration: one write
    # of five frames per subscriber (five writes each before issue 13).
    (flushed,) = [r for r in held_flushes if r]
    assert sorted(id(t) for t, _ in flushed) == sorted(id(c.transport) for _, c in clients)
    assert all(len(chunks) == 5 for _, chunks in flushed)
    for client, _ in clients:
        await client.ws.close()


async def test_a_publisher_sees_its_publication_before_its_reply(hub: Hub) -> None:
    ann, _ = await subscribed(hub, "ann", "lobby")
    await ann.ws.send(
        json.dumps({"id": 7, "method": "publish", "params": {"channel": "lobby", "data": 1}})
    )
    # The push (held) is written before the reply (written at once after it).
    assert (await ann.read())["push"] == "pub"
    assert (await ann.read())["id"] == 7
    await ann.ws.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"publications":[]}', "non-empty list"),
        (b'{"publications":{"channel":"lobby"}}', "non-empty list"),
        (b"[]", "non-empty list"),
        (batch(("lobby", 1), ("a b", 2)), "publications[1]: "),
        (batch(("lobby", 1)).replace(b'"data"', b'"dat"'), "publications[0]: "),
        (batch(*[("lobby", 1)] * (MAX_BATCH + 1)), f"at most {MAX_BATCH}"),
        (batch(("lobby", 1), ("zz:a", 2)), "unknown namespace"),
        (batch(("lobby", 1), ("lobby", "é" * 40000)), "too large"),
    ],
)
async def test_a_refused_batch_publishes_nothing(hub: Hub, body: bytes, message: str) -> None:
    status, text = await http(hub.port, "POST", "/api/publish_batch", body, **AUTH)
    assert status == 400
    assert message in json.loads(text)["error"]["message"]
    status, text = await http(hub.port, "POST", "/api/history", b'{"stream":"lobby"}', **AUTH)
    assert json.loads(text)["publications"] == []


async def test_a_batch_needs_the_api_key(hub: Hub) -> None:
    status, _ = await http(hub.port, "POST", "/api/publish_batch", batch(("lobby", 1)))
    assert status == 401


async def test_lone_publications_are_written_at_once_the_others_held() -> None:
    frames = FrameCache()
    assert frames.published("a") == b"\x81\x01a"
    assert frames.hold  # nothing fanned out before: held (it costs nothing then)
    await asyncio.sleep(0)  # the iteration ends with one publication
    frames.published("b")
    assert not frames.hold  # a lone publisher at full speed: written at once
    frames.published("c")
    assert frames.hold  # a second one in the same iteration: merged with later ones
    await asyncio.sleep(0)
    frames.published("d")
    assert frames.hold  # the iteration before had several: held from the first
    await asyncio.sleep(0)
    await asyncio.sleep(LONE_WINDOW * 4)
    frames.published("e")
    assert frames.hold  # after a pause: held again
