"""The Python SDK (hubbub.hub.client) against a real hub over loopback.

Connections are cut by aborting the hub side's TCP transports while entries are
being published; the client must reconnect by itself and hand the application
every entry exactly once, in order.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hub_helpers import SECRET, FakeClock

from hubbub.backoff import Backoff
from hubbub.hub import HubConfig, MemoryBroker, NamespaceRules, StreamLimits, mint_token
from hubbub.hub.client import INBOX, HubClient, HubError, Push, State
from hubbub.hub.client.recovery import StreamRecovery
from hubbub.hub.server import Hub, start_hub

FAST = Backoff(initial_delay=0.01, factor=2.0, max_delay=0.05, rng=random.Random(7))
CONFIG = HubConfig(namespaces={"": NamespaceRules(history=StreamLimits(10_000, None))})


def hub_options(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(
        secret=SECRET, insecure_dev_mode=True, config=CONFIG, tick_interval=0.05
    )
    options.update(overrides)
    return options


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with start_hub("127.0.0.1", 0, **hub_options()) as running:
        yield running


def uri(hub: Hub) -> str:
    return f"ws://127.0.0.1:{hub.port}/"


def cut_all(hub: Hub) -> int:
    """Abort every connection's TCP transport (no close handshake): a network cut."""
    connections = hub.server.connections
    for conn in connections:
        conn.transport.abort()
    return len(connections)


async def take(client: HubClient, count: int, kind: str, timeout: float = 10.0) -> list[Push]:
    got: list[Push] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            push = await client.recv()
            if push.kind == kind:
                got.append(push)
    return got


async def test_channel_stream_survives_connection_cuts(hub: Hub) -> None:
    total = 300
    async with HubClient(uri(hub), name="sub", backoff=FAST) as client:
        await client.subscribe("feed")

        async def publisher() -> None:
            for i in range(total):
                await hub.node.publish("feed", i)
                if i % 60 == 30:
                    assert cut_all(hub) == 1
                await asyncio.sleep(0.002)

        task = asyncio.create_task(publisher())
        pubs = await take(client, total, "pub", timeout=30)
        await task
    assert [p.data for p in pubs] == list(range(total))  # nothing missing, in order
    offsets = [p.offset or 0 for p in pubs]
    assert offsets == sorted(set(offsets))  # no duplicates
    assert {p.channel for p in pubs} == {"feed"}
    assert client.reconnections >= 4
    assert client.state is State.CLOSED


async def test_inbox_survives_cuts_and_is_acknowledged(hub: Hub) -> None:
    total = 200
    async with HubClient(uri(hub), token=mint_token("bob", SECRET), backoff=FAST) as client:

        async def sender() -> None:
            for i in range(total):
                await hub.node.send(["bob"], {"n": i}, sender="server")
                if i % 50 == 25:
                    cut_all(hub)
                await asyncio.sleep(0.002)

        task = asyncio.create_task(sender())
        messages = await take(client, total, "message", timeout=30)
        await task
        assert [m.data["n"] for m in messages] == list(range(total))
        assert [m.offset for m in messages] == list(range(1, total + 1))
        assert client.reconnections >= 3
        # Moving past the last message acknowledges it (auto_ack).
        ping = asyncio.create_task(client.recv())
        async with asyncio.timeout(5):
            while await hub.node.broker.get_ack("bob") != (total, messages[0].epoch):
                await asyncio.sleep(0.01)
        ping.cancel()
    # Everything was acknowledged: a new connection has no backlog.
    async with HubClient(uri(hub), name="bob") as again:
        assert again.connect_result is not None
        assert again.connect_result["inbox"]["messages"] == []
        assert again.connect_result["inbox"]["acked"] == total


async def test_unacknowledged_entries_come_again_but_are_given_once(hub: Hub) -> None:
    async with HubClient(uri(hub), name="carol", auto_ack=False, backoff=FAST) as client:
        for i in range(3):
            await hub.node.send(["carol"], i)
        first = await take(client, 3, "message")
        cut_all(hub)
        await client.wait_state(State.RECONNECTING)
        await client.wait_live()
        # The hub redelivered the three unacknowledged entries on reconnection ...
        assert client.connect_result is not None
        backlog = client.connect_result["inbox"]["messages"]
        assert [m["offset"] for m in backlog] == [1, 2, 3]
        # ... and the client recognised them by offset: only new ones come out.
        await hub.node.send(["carol"], 3)
        (fourth,) = await take(client, 1, "message")
        assert [m.data for m in first] == [0, 1, 2]
        assert (fourth.data, fourth.offset) == (3, 4)
        client.ack(4)
        async with asyncio.timeout(5):
            while (await hub.node.broker.get_ack("carol") or (0, ""))[0] != 4:
                await asyncio.sleep(0.01)


async def test_commands_over_the_wire(hub: Hub) -> None:
    async with (
        HubClient(uri(hub), name="ann", backoff=FAST) as ann,
        HubClient(uri(hub), name="ben", backoff=FAST, tick=True) as ben,
    ):
        await ann.subscribe("room")
        await ben.subscribe("room")
        (join,) = await take(ann, 1, "join")
        assert join.raw["user"] == "ben"
        presence = await ann.presence("room")
        assert presence["users"] == {"ann": 1, "ben": 1}
        assert await ann.presence_stats("room") == {"clients": 2, "users": 2}
        assert await ann.online(["ben", "zed"]) == {"ben": True, "zed": False}
        reply = await ann.publish("room", {"text": "hi"})
        (pub,) = await take(ben, 1, "pub")
        assert (pub.data, pub.sender, pub.offset) == ({"text": "hi"}, "ann", reply["offset"])
        sent = await ann.send(["ben", "zed"], "psst")
        assert sent["results"]["ben"]["status"] == "live"
        assert sent["results"]["zed"]["status"] == "queued"
        (message,) = await take(ben, 1, "message")
        assert (message.data, message.sender) == ("psst", "ann")
        history = await ben.history("room", limit=10)
        assert [e["data"] for e in history["publications"]] == [{"text": "hi"}]
        inbox = await ben.history(INBOX)
        assert [e["data"] for e in inbox["publications"]] == ["psst"]
        ticks = await take(ben, 2, "tick")
        assert ticks[1].time is not None
        assert ticks[0].time is not None
        assert ticks[1].time >= ticks[0].time
        assert abs(await ann.ping() - ticks[1].time) < 10_000
        with pytest.raises(HubError) as caught:
            await ann.subscribe("nope:x")
        assert caught.value.code == 107
        await ben.unsubscribe("room")
        (leave,) = await take(ann, 1, "leave")
        assert leave.raw["user"] == "ben"


async def test_restart_reports_states_and_lost_history() -> None:
    states: list[State] = []
    async with start_hub("127.0.0.1", 0, **hub_options()) as first:
        port = first.port
        client = HubClient(f"ws://127.0.0.1:{port}/", name="dan", backoff=FAST)
        client.on_state = lambda state, error: states.append(state)
        await client.start()
        await client.subscribe("news")
        await first.node.publish("news", "before")
        (before,) = await take(client, 1, "pub")
    # The hub shut down (clients get 4000 "reconnect"); it comes back empty.
    await client.wait_state(State.RECONNECTING)
    await asyncio.sleep(0.2)  # a few refused attempts
    assert client.state is State.RECONNECTING
    async with start_hub("127.0.0.1", port, **hub_options()) as second:
        await client.wait_live()
        pushes = [await asyncio.wait_for(client.recv(), 5) for _ in range(3)]
        assert (pushes[0].kind, pushes[0].raw["code"], pushes[0].raw["reconnect"]) == (
            "disconnect",
            4000,
            True,
        )
        # Both streams were lost with the hub's memory: the inbox, then the channel.
        assert [(p.kind, p.channel, p.raw["reason"]) for p in pushes[1:]] == [
            ("recovery", INBOX, "epoch"),
            ("recovery", "news", "epoch"),
        ]
        await second.node.publish("news", "after")
        (after,) = await take(client, 1, "pub")
        assert after.data == "after"
        assert after.epoch != before.epoch
        await client.close()
    assert states[0] is State.CONNECTING
    assert states[1] is State.LIVE
    assert State.RECONNECTING in states[2:]
    assert states[-2:] == [State.LIVE, State.CLOSED]


async def test_token_refresh_keeps_the_connection() -> None:
    minted: list[str] = []

    def token() -> str:
        minted.append(mint_token("eve", SECRET, ttl=2.0))
        return minted[-1]

    config = HubConfig(expiring_notice=1.5)
    async with (
        start_hub("127.0.0.1", 0, **hub_options(config=config)) as hub,
        HubClient(uri(hub), token=token, backoff=FAST) as client,
    ):
        expiring = await take(client, 1, "expiring", timeout=5)
        assert expiring[0].raw["expires_at"] > 0
        await asyncio.sleep(2.5)  # past the first token's expiry
        assert client.reconnections == 0
        assert client.state is State.LIVE
        assert len(minted) >= 2  # connect, then refresh
        assert await client.ping() > 0


async def test_refused_static_token_is_final(hub: Hub) -> None:
    client = HubClient(uri(hub), token="not-a-jwt", backoff=FAST)
    with pytest.raises(HubError) as caught:
        await asyncio.wait_for(client.start(), 5)
    assert caught.value.code == 200
    assert client.state is State.CLOSED
    with pytest.raises(HubError):
        await client.recv()
    await client.close()


async def test_abusive_close_is_not_retried(hub: Hub) -> None:
    async with HubClient(uri(hub), name="mallory", backoff=FAST) as client:
        for _ in range(hub.node.config.max_strikes):
            with pytest.raises(HubError):
                await client.call("unsubscribe", channel="never-joined")
        push = await asyncio.wait_for(client.recv(), 5)
        assert (push.kind, push.raw["code"], push.raw["reconnect"]) == ("disconnect", 4008, False)
        await asyncio.wait_for(client.wait_state(State.CLOSED), 5)
        assert client.reconnections == 0


async def test_subscribe_since_a_history_position_misses_nothing(hub: Hub) -> None:
    async with HubClient(uri(hub), name="fay", backoff=FAST) as client:
        for i in range(3):
            await hub.node.publish("board", i)
        history = await client.history("board", limit=2)
        assert [e["data"] for e in history["publications"]] == [1, 2]
        for i in range(3, 5):  # published between reading history and subscribing
            await hub.node.publish("board", i)
        since = {"offset": history["offset"], "epoch": history["epoch"]}
        reply = await client.subscribe("board", since=since)
        assert reply["recovered"] is True
        await hub.node.publish("board", 5)
        pubs = await take(client, 3, "pub")
        assert [(p.offset, p.data) for p in pubs] == [(4, 3), (5, 4), (6, 5)]


async def test_a_stream_lost_while_connected_moves_the_kept_position() -> None:
    clock = FakeClock()  # the broker's: entries age out and idle streams go
    broker = MemoryBroker(clock=clock, idle_ttl=100)
    short = StreamLimits(10, 5.0)
    config = HubConfig(namespaces={"": NamespaceRules(history=short)}, inbox=short)
    async with (
        start_hub("127.0.0.1", 0, **hub_options(config=config, broker=broker)) as hub,
        HubClient(uri(hub), name="gus", backoff=FAST) as client,
    ):
        await client.subscribe("feed")
        await hub.node.publish("feed", "old")
        await hub.node.send(["gus"], "old")
        await take(client, 1, "pub")
        await take(client, 1, "message")
        clock.advance(200)
        await broker.maintain()  # the broker lost both streams
        new = await hub.node.publish("feed", "new")
        sent = (await hub.node.send(["gus"], "new"))["gus"]
        pushes = [await asyncio.wait_for(client.recv(), 5) for _ in range(4)]
        # Told while connected, each before the first entry of the new epoch.
        assert [(p.kind, p.channel, p.epoch, p.offset) for p in pushes] == [
            ("recovery", "feed", new.epoch, 0),
            ("pub", "feed", new.epoch, 1),
            ("recovery", INBOX, sent["epoch"], 0),
            ("message", None, sent["epoch"], 1),
        ]
        for notice in (pushes[0], pushes[2]):
            assert (notice.raw["reason"], notice.raw["live"]) == ("epoch", True)
        # The kept positions are in the new epoch: a reconnection recovers
        # from there, with nothing more to report and nothing given twice.
        cut_all(hub)
        await client.wait_state(State.RECONNECTING)
        await client.wait_live()
        await hub.node.publish("feed", "later")
        await hub.node.send(["gus"], "later")
        after: list[Push] = []
        async with asyncio.timeout(5):
            while len([p for p in after if p.kind in {"pub", "message"}]) < 2:
                after.append(await client.recv())
        assert [(p.kind, p.data, p.offset) for p in after] == [
            ("pub", "later", 2),
            ("message", "later", 2),
        ]


NODE = shutil.which("node")
HUBBUB_JS = Path(__file__).resolve().parents[2] / "src/hubbub/hub/server/static/hubbub.js"

# Feeds hubbub.js the wire messages of a stream lost while connected; prints
# what the application saw and the position the client kept.
JS_RESET = """
import { HubClient, INBOX } from "./hubbub.mjs";
const hub = new HubClient("ws://127.0.0.1:1/", { name: "ann", autoAck: false });
const seen = [];
for (const type of ["pub", "message", "recovery"]) {
  hub.addEventListener(type, (e) => seen.push([type, e.detail.stream ?? e.detail.channel ?? null,
    e.detail.epoch, e.detail.offset, e.detail.live ?? null]));
}
hub.channels.set("feed", { epoch: "e1", offset: 7, active: true });
hub.inbox = { epoch: "i1", offset: 4 };
hub.ackWanted = 4;
const push = (m) => hub.receive(JSON.stringify(m));
push({ push: "reset", stream: "feed", epoch: "e2", offset: 0, reason: "epoch" });
push({ push: "reset", stream: "feed", epoch: "e2", offset: 0, reason: "epoch" });  // said twice
push({ push: "pub", channel: "feed", epoch: "e2", offset: 1, time: 0, from: null, data: 1 });
push({ push: "reset", stream: INBOX, epoch: "i2", offset: 0, reason: "epoch" });
push({ push: "message", epoch: "i2", offset: 1, time: 0, from: null, data: 1 });
push({ push: "reset", stream: "gone", epoch: "x", offset: 0, reason: "epoch" });  // not joined
console.log(JSON.stringify({ seen, feed: hub.channels.get("feed"), inbox: hub.inbox,
  ackWanted: hub.ackWanted }));
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_js_client_moves_its_position_on_a_reset_push(tmp_path: Path) -> None:
    shutil.copy(HUBBUB_JS, tmp_path / "hubbub.mjs")  # an ES module for node
    # and the MessagePack codec it imports, an ES module too (package.json).
    shutil.copy(HUBBUB_JS.with_name("msgpack.js"), tmp_path / "msgpack.js")
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "reset.mjs").write_text(JS_RESET)
    assert NODE is not None
    done = subprocess.run(
        [NODE, "reset.mjs"], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["seen"] == [
        ["recovery", "feed", "e2", 0, True],
        ["pub", "feed", "e2", 1, None],
        ["recovery", "$inbox", "i2", 0, True],
        ["message", None, "i2", 1, None],
    ]
    assert result["feed"] == {"epoch": "e2", "offset": 1, "active": True}
    assert result["inbox"] == {"epoch": "i2", "offset": 1}
    assert result["ackWanted"] == 0  # acks of the lost epoch are forgotten


async def test_stream_recovery_is_an_object_the_client_owns() -> None:
    # Issue 14: the kept positions are their own object, not a mixin of the client.
    assert not issubclass(HubClient, StreamRecovery)
    queue: asyncio.Queue[Push] = asyncio.Queue()
    lost: list[bool] = []
    streams = StreamRecovery(queue, lambda: lost.append(True))
    entry = {"offset": 1, "time": 0, "from": None, "data": "x"}
    streams.connected({"inbox": {"epoch": "e1", "recovered": True, "messages": [entry]}})
    streams.entry(streams.inbox, {"push": "message", "epoch": "e1", **entry})  # a redelivery
    assert [(p.kind, p.offset, p.data) for p in [queue.get_nowait()]] == [("message", 1, "x")]
    assert queue.empty()
    assert lost == []
    # The inbox has a new epoch: the client is told to forget its acks.
    streams.connected({"inbox": {"epoch": "e2", "recovered": True, "messages": []}})
    assert lost == [True]
    assert (queue.get_nowait().kind, streams.inbox.epoch, streams.inbox.offset) == (
        "recovery",
        "e2",
        0,
    )
