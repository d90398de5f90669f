"""Hostile clients against a real hub over real sockets (issue 12).

Each test plays an attacker with :class:`raw_client.RawClient` (frames written
by hand, reads only when the attacker would) and checks what the hub must
guarantee: deadlines hold, one client cannot break another's deliveries,
limits are counted as documented. No timing is asserted; waits are bounded so
that a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hub_helpers import SECRET, hub_config
from raw_client import RawClient

from hubbub.hub import mint_token
from hubbub.hub.server import Hub, start_hub


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with start_hub(
        "127.0.0.1",
        0,
        secret=SECRET,
        config=hub_config(connect_timeout=3.0),
        tick_interval=0.05,
        close_timeout=1.0,
    ) as running:
        yield running


async def _flood_pings(client: RawClient, stop: asyncio.Event) -> None:
    payload = b"x" * 125
    while not stop.is_set():
        for _ in range(200):
            client.ping(payload)
        try:
            await asyncio.wait_for(client.writer.drain(), 0.5)
        except (TimeoutError, ConnectionError):
            await asyncio.sleep(0.01)
            if client.writer.is_closing():
                return


async def _wait_no_connections(hub: Hub, bound: float = 20.0) -> None:
    """Wait until the server holds no connection; fail after ``bound`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while hub.server.connections:
        assert loop.time() < deadline, "a connection outlived its connect deadline"
        await asyncio.sleep(0.05)


async def test_ping_flood_does_not_extend_the_connect_deadline(hub: Hub) -> None:
    # Finding 1: pings (answered by pongs the attacker never reads) keep
    # traffic flowing and fill the hub's send buffer; the connection must still
    # be closed once connect_timeout passes without a connect, TCP included
    # (at most close_timeout later), while the attacker never reads.
    client = await RawClient.open(hub.port)
    assert client.status == 101
    stop = asyncio.Event()
    flooder = asyncio.create_task(_flood_pings(client, stop))
    try:
        await _wait_no_connections(hub)
        assert hub.node.sessions == {}
        assert 'hubbub_disconnects_total{code="4002"} 1.0' in hub.node.metrics.render().decode()
    finally:
        stop.set()
        await flooder
        client.close()


async def test_ping_command_flood_does_not_extend_the_connect_deadline(hub: Hub) -> None:
    client = await RawClient.open(hub.port)
    for req_id in range(1, 40):
        client.send_text(f'{{"id":{req_id},"method":"ping"}}')
        await asyncio.sleep(0.05)
    # Never read: the replies and the disconnect push stay unread.
    await _wait_no_connections(hub)
    assert hub.node.sessions == {}
    client.close()


# --- finding 3: lone surrogates ----------------------------------------------------

LONE = '"\\ud800"'  # JSON text of a string holding a lone surrogate (RFC 8259 allows it)


async def _connected(hub: Hub, user: str) -> RawClient:
    client = await RawClient.open(hub.port)
    reply = await client.call(1, "connect", token=mint_token(user, SECRET, 3600))
    assert "result" in reply, reply
    return client


async def test_lone_surrogate_publish_is_refused_and_breaks_nobody(hub: Hub) -> None:
    alice, bob = await _connected(hub, "alice"), await _connected(hub, "bob")
    for client in (alice, bob):
        assert "result" in await client.call(2, "subscribe", channel="room")
    alice.send_text(f'{{"id":3,"method":"publish","params":{{"channel":"room","data":{LONE}}}}}')
    reply = await alice.reply(3)
    assert reply["error"]["code"] == 100, reply
    # Both sessions still work: a publish is answered and pushed to the other.
    assert "result" in await alice.call(4, "publish", channel="room", data="after")
    push = await asyncio.wait_for(bob.recv_json(), 10)
    while push.get("push") != "pub":
        push = await asyncio.wait_for(bob.recv_json(), 10)
    assert push["data"] == "after"
    alice.close()
    bob.close()


async def test_lone_surrogate_in_any_field_or_key_is_refused(hub: Hub) -> None:
    client = await _connected(hub, "alice")
    for req_id, params in enumerate(
        [
            f'{{"channel":{LONE}}}',
            f'{{"channel":"room","data":{{"k":[1,{LONE}]}}}}',
            f'{{"channel":"room","data":{{{LONE}:1}}}}',
            f'{{"to":[{LONE}],"data":1}}',
        ],
        start=10,
    ):
        method = "send" if '"to"' in params else "publish"
        client.send_text(f'{{"id":{req_id},"method":"{method}","params":{params}}}')
        reply = await client.reply(req_id)
        assert (reply["id"], reply["error"]["code"]) == (req_id, 100), reply
    client.close()


async def test_lone_surrogate_send_cannot_poison_an_inbox(hub: Hub) -> None:
    alice = await _connected(hub, "alice")
    alice.send_text(f'{{"id":2,"method":"send","params":{{"to":["carol"],"data":{LONE}}}}}')
    reply = await alice.reply(2)
    assert reply["error"]["code"] == 100, reply
    assert "result" in await alice.call(3, "send", to=["carol"], data="hello")
    carol = await _connected(hub, "carol")  # answered, with the valid message only
    alice.close()
    carol.close()


# --- finding 5: limits in bytes ------------------------------------------------------


async def test_data_limit_counts_utf8_bytes(hub: Hub) -> None:
    client = await _connected(hub, "alice")
    assert "result" in await client.call(2, "subscribe", channel="room")
    limit = hub.node.config.max_message_bytes
    fits = "é" * ((limit - 2) // 2)  # 2 bytes each in UTF-8, plus the quotes
    assert "result" in await client.call(3, "publish", channel="room", data=fits)
    over = "é" * (limit // 2)  # fewer characters than the limit, more bytes
    reply = await client.call(4, "publish", channel="room", data=over)
    assert reply["error"]["code"] == 302, reply
    client.close()


async def test_request_limit_counts_utf8_bytes(hub: Hub) -> None:
    client = await _connected(hub, "alice")
    limit = hub.node.config.max_request_bytes
    text = '{"id":2,"method":"ping","params":{"pad":"' + "é" * (limit // 2) + '"}}'
    assert len(text) < limit < len(text.encode())
    client.send_text(text)
    reply = await asyncio.wait_for(client.recv_json(), 10)  # id null: refused unread
    assert reply == {"id": None, "error": {"code": 302, "message": "message too large"}}
    client.close()


# --- finding 6: the slow-consumer close is counted ----------------------------------


async def test_slow_consumer_close_is_counted_in_disconnects() -> None:
    async with start_hub(
        "127.0.0.1", 0, secret=SECRET, config=hub_config(), max_pending=4, close_timeout=1.0
    ) as hub:
        reader = await _connected(hub, "slow")
        assert "result" in await reader.call(2, "subscribe", channel="room")
        # The reader stops reading; the hub's buffers fill, then its outbox.
        data = "x" * 60_000
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        metrics = ""
        while 'hubbub_disconnects_total{code="4011"} 1.0' not in metrics:
            assert loop.time() < deadline, "the slow consumer was never closed"
            for _ in range(20):
                await hub.node.publish("room", data)
            await asyncio.sleep(0.01)
            metrics = hub.node.metrics.render().decode()
        await _wait_no_connections(hub)  # closed, TCP included, though it never read
        reader.close()
