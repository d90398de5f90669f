"""The node: connect, channels, direct events, presence, history, acks, housekeeping."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest
from hub_helpers import Client, FakeClock, hub_config

from hubbub.hub import Authenticator, HubMetrics, Identity, MemoryBroker, Node
from hubbub.hub.core import protocol as p
from hubbub.hub.core.broker import Broker
from hubbub.hub.core.operations import NodeOperations
from hubbub.hub.core.permissions import Permissions
from hubbub.hub.core.protocol import ErrorCode
from hubbub.hub.core.session import Fail, Session
from hubbub.hub.core.streams import Entry, StreamLimits

Connect = Callable[..., Awaitable[Client]]


async def test_commands_before_connect_are_refused(node: Node) -> None:
    client = Client(node)
    assert await client.error("subscribe", channel="a") == ErrorCode.NOT_CONNECTED
    assert await client.error("send", to=["b"], data=1) == ErrorCode.NOT_CONNECTED
    assert (await client.ok("ping"))["time"] == int(node.clock() * 1000)


async def test_connect_reply(node: Node, token: Callable[..., str], clock: FakeClock) -> None:
    client = Client(node, conn_id="c-1")
    result = await client.ok("connect", token=token("alice", ttl=60))
    assert result["user"] == "alice"
    assert result["conn_id"] == "c-1"
    assert result["node"] == node.node_id
    assert result["expires_at"] == int((clock() + 60) * 1000)
    assert result["inbox"]["messages"] == []
    assert result["inbox"]["recovered"] is True
    assert await client.error("connect", token=token("alice")) == ErrorCode.ALREADY_CONNECTED


async def test_connect_refusals(node: Node, token: Callable[..., str], clock: FakeClock) -> None:
    client = Client(node)
    assert await client.error("connect", token="garbage") == ErrorCode.UNAUTHORIZED
    expired = token("alice", ttl=5)
    clock.advance(5)
    assert await client.error("connect", token=expired) == ErrorCode.TOKEN_EXPIRED
    # The connection stays usable: the client may try again.
    assert (await client.ok("connect", token=token("alice")))["user"] == "alice"


async def test_dev_mode_connect(node: Node) -> None:
    client = Client(node)
    result = await client.ok("connect", name="dev user")
    assert (result["user"], result["expires_at"]) == ("dev user", None)


async def test_connect_without_credentials(node: Node) -> None:
    assert await Client(node).error("connect") == ErrorCode.INVALID_PARAMS


async def test_handshake_identity_replaces_the_token(node: Node) -> None:
    # An application's own auth hook (hubbub.hub.server.asgi) identified the handshake.
    client = Client(node, identity=Identity("carol", None))
    result = await client.ok("connect")
    assert (result["user"], result["expires_at"]) == ("carol", None)
    # Credentials sent anyway do not change who the connection is.
    other = Client(node, identity=Identity("dave", None))
    assert (await other.ok("connect", name="mallory"))["user"] == "dave"


async def test_publish_reaches_subscribers_only(connect: Connect) -> None:
    ann, bob, cid = await connect("ann"), await connect("bob"), await connect("cid")
    sub = await ann.ok("subscribe", channel="room")
    assert (sub["offset"], sub["publications"]) == (0, [])
    await bob.ok("subscribe", channel="room")
    await cid.ok("subscribe", channel="other")
    ann.take(), bob.take(), cid.take()
    result = await ann.ok("publish", channel="room", data={"text": "hi"})
    assert result["offset"] == 1
    assert result["epoch"] == sub["epoch"]
    for client in (ann, bob):
        [pub] = client.take("pub")
        assert pub["channel"] == "room"
        assert (pub["offset"], pub["epoch"], pub["from"], pub["data"]) == (
            1,
            sub["epoch"],
            "ann",
            {"text": "hi"},
        )
    assert cid.take() == []


async def test_join_and_leave(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    await ann.ok("subscribe", channel="room")
    await bob.ok("subscribe", channel="room")
    [join] = ann.take("join")
    assert (join["channel"], join["user"], join["conn_id"]) == ("room", "bob", bob.session.conn_id)
    assert bob.pushes("join") == []  # nobody is told about themselves
    await bob.ok("unsubscribe", channel="room")
    [leave] = ann.take("leave")
    assert leave["user"] == "bob"
    assert await bob.error("unsubscribe", channel="room") == ErrorCode.NOT_SUBSCRIBED
    await bob.ok("subscribe", channel="room")
    await bob.leave()  # closing the connection leaves every channel
    assert [p["push"] for p in ann.take()] == ["join", "leave"]


async def test_presence_and_online(connect: Connect) -> None:
    ann1, ann2, bob = await connect("ann"), await connect("ann"), await connect("bob")
    for client in (ann1, ann2, bob):
        await client.ok("subscribe", channel="room")
    presence = await bob.ok("presence", channel="room")
    assert presence["users"] == {"ann": 2, "bob": 1}
    assert set(presence["clients"]) == {
        ann1.session.conn_id,
        ann2.session.conn_id,
        bob.session.conn_id,
    }
    assert await bob.ok("presence_stats", channel="room") == {"clients": 3, "users": 2}
    online = await bob.ok("online", users=["ann", "bob", "zed"])
    assert online == {"online": {"ann": True, "bob": True, "zed": False}}
    await ann1.leave()
    assert (await bob.ok("online", users=["ann"]))["online"]["ann"] is True
    await ann2.leave()
    assert (await bob.ok("online", users=["ann"]))["online"]["ann"] is False
    assert await bob.ok("presence_stats", channel="room") == {"clients": 1, "users": 1}
    assert await bob.error("presence", channel="quiet:x") == ErrorCode.NOT_AVAILABLE


async def test_send_live_and_queued(connect: Connect, node: Node) -> None:
    ann, bob1, bob2 = await connect("ann"), await connect("bob"), await connect("bob")
    result = await ann.ok("send", to=["bob", "cid"], data="hello")
    assert result["results"]["bob"]["status"] == "live"
    assert result["results"]["cid"]["status"] == "queued"
    for client in (bob1, bob2):
        [msg] = client.take("message")
        assert (msg["from"], msg["data"], msg["offset"]) == ("ann", "hello", 1)
        assert msg["epoch"] == result["results"]["bob"]["epoch"]
    assert ann.take("message") == []
    cid = await connect("cid")
    inbox = (await cid.ok("history", stream="$inbox"))["publications"]
    assert [m["data"] for m in inbox] == ["hello"]
    # The connect reply delivered the queued event.
    connect_reply = next(m for m in cid.messages if m.get("id") == 1)
    assert [m["data"] for m in connect_reply["result"]["inbox"]["messages"]] == ["hello"]
    assert node.metrics.queued._value.get() == 1


async def test_send_to_self_and_duplicates(connect: Connect) -> None:
    ann = await connect("ann")
    result = await ann.ok("send", to=["ann", "ann"], data=1)
    assert list(result["results"]) == ["ann"]
    assert len(ann.take("message")) == 1


async def test_history(connect: Connect, node: Node) -> None:
    ann = await connect("ann")
    await ann.ok("subscribe", channel="chat:a")
    for i in range(7):
        await ann.ok("publish", channel="chat:a", data=i)
    history = await ann.ok("history", stream="chat:a", limit=2)
    assert [p["data"] for p in history["publications"]] == [5, 6]
    assert history["offset"] == 7
    full = await ann.ok("history", stream="chat:a", since={"offset": 0, "epoch": history["epoch"]})
    assert [p["offset"] for p in full["publications"]] == [3, 4, 5, 6, 7]  # kept: 5
    assert full["complete"] is False
    assert (
        await ann.error("history", stream="chat:a", since={"offset": 0, "epoch": "other"})
        == ErrorCode.EPOCH_MISMATCH
    )
    assert await ann.error("history", stream="quiet:a") == ErrorCode.NOT_AVAILABLE
    entry = await node.publish("chat:a", "server")
    assert entry.sender is None
    assert ann.take("pub")[-1]["from"] is None


async def test_ack(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    sent = await ann.ok("send", to=["bob"], data=1)
    epoch = sent["results"]["bob"]["epoch"]
    assert await bob.ok("ack", stream="$inbox", offset=1, epoch=epoch) == {
        "offset": 1,
        "epoch": epoch,
    }
    assert await bob.error("ack", stream="$inbox", offset=2) == ErrorCode.INVALID_PARAMS
    assert await bob.error("ack", stream="$inbox", offset=1, epoch="x") == ErrorCode.EPOCH_MISMATCH
    # Acks never move back.
    assert (await bob.ok("ack", stream="$inbox", offset=0))["offset"] == 1


async def test_refresh(node: Node, token: Callable[..., str], clock: FakeClock) -> None:
    client = Client(node)
    await client.ok("connect", token=token("ann", ttl=60))
    clock.advance(40)
    await node.periodic()
    [expiring] = client.take("expiring")
    assert expiring["expires_at"] == int((clock() + 20) * 1000)
    assert await client.error("refresh", token=token("bob")) == ErrorCode.UNAUTHORIZED
    assert await client.error("refresh", token="junk") == ErrorCode.UNAUTHORIZED
    result = await client.ok("refresh", token=token("ann", ttl=60))
    assert result["expires_at"] == int((clock() + 60) * 1000)
    clock.advance(29)
    await node.periodic()
    assert client.closed is None
    assert client.take("expiring") == []
    clock.advance(31)
    await node.periodic()
    [disconnect] = client.take("disconnect")
    assert disconnect == {
        "push": "disconnect",
        "code": 4001,
        "reason": "token expired",
        "reconnect": True,
    }
    assert client.closed == (4001, "token expired")
    assert client.session.conn_id not in node.sessions
    await node.handle(client.session, '{"id":9,"method":"ping"}')
    assert client.take() == []  # a closed session gets nothing


async def test_connect_timeout(node: Node, clock: FakeClock) -> None:
    client = Client(node)
    clock.advance(9)
    await node.periodic()
    assert client.closed is None
    clock.advance(1)
    await node.periodic()
    assert client.closed == (4002, "connect timeout")


async def test_tick(node: Node, token: Callable[..., str], clock: FakeClock) -> None:
    ticking, quiet = Client(node), Client(node)
    await ticking.ok("connect", token=token("a"), tick=True)
    await quiet.ok("connect", token=token("b"))
    for _ in range(3):
        clock.advance(1)
        await node.periodic()
    ticks = ticking.take("tick")
    assert [t["time"] for t in ticks] == [int((clock() - 2 + i) * 1000) for i in range(3)]
    assert quiet.take("tick") == []


async def test_presence_heartbeat_keeps_live_sessions(
    connect: Connect, node: Node, clock: FakeClock, broker: MemoryBroker
) -> None:
    ann = await connect("ann")
    await ann.ok("subscribe", channel="room")
    for _ in range(10):  # 100 s, three times the presence TTL
        clock.advance(10)
        await node.periodic()
    assert await broker.online(["ann"]) == {"ann"}
    assert set(await broker.presence("room")) == {ann.session.conn_id}


async def test_dead_node_users_vanish(
    connect: Connect, make_node: Callable[..., Node], clock: FakeClock, broker: MemoryBroker
) -> None:
    other = make_node()
    await connect("ann", on=other)
    live = await connect("bob")
    clock.advance(31)  # the other node stopped heartbeating; this one still runs
    await live.node.periodic()
    assert await broker.online(["ann", "bob"]) == {"bob"}


async def test_two_nodes_share_one_broker(connect: Connect, make_node: Callable[..., Node]) -> None:
    node2 = make_node()
    ann1 = await connect("ann")
    ann2 = await connect("ann", on=node2)
    bob = await connect("bob", on=node2)
    await ann1.ok("subscribe", channel="room")
    await bob.ok("subscribe", channel="room")
    result = await bob.ok("send", to=["ann"], data="x")
    assert result["results"]["ann"]["status"] == "live"
    assert len(ann1.take("message")) == len(ann2.take("message")) == 1
    await ann1.ok("publish", channel="room", data="y")
    assert [p["data"] for p in bob.take("pub")] == ["y"]
    assert ann2.take("pub") == []
    presence = await ann1.ok("presence", channel="room")
    assert presence["users"] == {"ann": 1, "bob": 1}


async def test_shutdown(connect: Connect, node: Node) -> None:
    clients = [await connect(u) for u in ("a", "b")]
    await node.shutdown()
    for client in clients:
        assert client.closed == (4000, "server shutting down")
        assert client.take("disconnect")[0]["reconnect"] is True
    assert node.sessions == {}


async def test_broker_unavailable(connect: Connect, broker: MemoryBroker, node: Node) -> None:
    ann = await connect("ann")
    await broker.close()
    assert await ann.error("publish", channel="open:x", data=1) == ErrorCode.BROKER_UNAVAILABLE
    assert await ann.error("subscribe", channel="room") == ErrorCode.BROKER_UNAVAILABLE
    assert ann.session.channels == {}  # a failed subscribe leaves nothing behind
    assert node.health()["ok"] is False
    await node.periodic()  # housekeeping survives
    await ann.leave()


async def test_close_with_broker_down_forgets_everything(
    connect: Connect, broker: MemoryBroker, node: Node
) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for channel in ("a", "b", "c"):
        await ann.ok("subscribe", channel=channel)
    await broker.close()
    await ann.leave()
    assert node.health()["channels"] == 0
    assert node.health()["users"] == 1  # bob
    assert node.sessions == {bob.session.conn_id: bob.session}


async def test_internal_errors_do_not_escape(
    connect: Connect, node: Node, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ann = await connect("ann")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(node.broker, "online", broken)
    assert await ann.error("online", users=["a"]) == ErrorCode.INTERNAL
    assert "internal error" in caplog.text
    caplog.clear()

    def broken_now(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    # The same from a command's synchronous form (Node.handle_now), traceback included.
    monkeypatch.setattr(node.broker, "online_now", broken_now)
    assert await ann.error("send", to=["a"], data=1) == ErrorCode.INTERNAL
    assert "internal error" in caplog.text
    assert "RuntimeError: bug" in caplog.text
    assert ann.closed is None


async def test_health_and_metrics(connect: Connect, node: Node) -> None:
    ann = await connect("ann")
    await ann.ok("subscribe", channel="room")
    await ann.ok("publish", channel="room", data=1)
    await ann.error("fly")
    health = node.health()
    assert (health["sessions"], health["users"], health["channels"]) == (1, 1, 1)
    assert health["broker"]["type"] == "memory"
    text = node.metrics.render().decode()
    assert "hubbub_connections 1.0" in text
    assert 'hubbub_commands_total{method="publish"} 1.0' in text
    assert 'hubbub_errors_total{code="101"} 1.0' in text
    assert 'hubbub_deliveries_total{kind="publication"} 1.0' in text
    assert "hubbub_subscriptions 1.0" in text
    assert f"hubbub_messages_out_total {float(len(ann.raw))}" in text
    assert f"hubbub_bytes_out_total {float(sum(map(len, ann.raw)))}" in text
    node.metrics.gauge_function("hubbub_broker_entries", "entries", lambda: 42)
    assert "hubbub_broker_entries 42.0" in node.metrics.render().decode()


async def test_operations_are_an_object_of_their_own(
    broker: MemoryBroker, auth: Authenticator, clock: FakeClock
) -> None:
    # Issue 14: not a mixin of the node; built from what it reads, it works alone.
    assert not issubclass(Node, NodeOperations)
    config = hub_config()
    ops = NodeOperations(broker, config, clock, HubMetrics(), Permissions(config, auth))
    session = Session("c-1", lambda text: None, lambda code, reason: None, config, clock=clock)
    with pytest.raises(Fail) as refused:
        await ops.handle_online(session, p.Online(1, ("bob",)))
    assert refused.value.code == ErrorCode.NOT_CONNECTED
    session.user = "alice"
    assert await ops.handle_online(session, p.Online(2, ("bob",))) == {"online": {"bob": False}}
    assert await ops.handle_ping(session, p.Ping(3)) == {"time": int(clock() * 1000)}


class _SuspendingBroker(MemoryBroker):
    """The in-memory broker saying it may suspend, as a networked one does."""

    suspends = True


async def test_handle_now_answers_send_and_publish_without_a_coroutine(node: Node) -> None:
    ann, bob = Client(node), Client(node)
    await ann.ok("connect", name="ann")
    await bob.ok("connect", name="bob")
    send = {"id": 7, "method": "send", "params": {"to": ["bob"], "data": "hi"}}
    assert node.handle_now(ann.session, json.dumps(send)) is None
    assert ann.messages[-1]["result"]["results"]["bob"]["status"] == "live"
    assert [m["data"] for m in bob.take("message")] == ["hi"]
    publish = {"id": 8, "method": "publish", "params": {"channel": "open:a", "data": 1}}
    assert node.handle_now(ann.session, json.dumps(publish)) is None
    assert ann.messages[-1]["result"]["offset"] == 1
    # Anything else is left to a coroutine, which answers it when run.
    answered = len(ann.raw)
    rest = node.handle_now(ann.session, '{"id":9,"method":"ping"}')
    assert rest is not None
    assert len(ann.raw) == answered
    await rest
    assert "time" in ann.messages[-1]["result"]


async def test_handle_now_leaves_failures_and_suspending_brokers_to_a_coroutine(
    auth: Authenticator, clock: FakeClock
) -> None:
    node = Node(MemoryBroker(clock=clock), auth, hub_config(), clock=clock, metrics=HubMetrics())
    ann = Client(node)
    send = '{"id":3,"method":"send","params":{"to":["bob"],"data":"hi"}}'
    rest = node.handle_now(ann.session, send)  # not connected: an error, a strike
    assert rest is not None
    await rest
    assert ann.messages[-1]["error"]["code"] == ErrorCode.NOT_CONNECTED
    assert ann.session.strikes == 1
    # On a broker that may suspend, even a send is a coroutine (and works).
    broker = _SuspendingBroker(clock=clock)
    node = Node(broker, auth, hub_config(), clock=clock, metrics=HubMetrics())
    ann = Client(node)
    await ann.ok("connect", name="ann")
    rest = node.handle_now(ann.session, send)
    assert rest is not None
    await rest
    assert ann.messages[-1]["result"]["results"]["bob"]["status"] == "queued"


class _CoroutineOnlyBroker(MemoryBroker):
    """A broker that never suspends and has only the coroutines (a third party's)."""

    publish_now = Broker.publish_now
    online_now = Broker.online_now

    async def publish(
        self, stream: str, data: Any, *, sender: str | None, limits: StreamLimits
    ) -> Entry:
        self.calls += 1
        return MemoryBroker.publish_now(self, stream, data, sender=sender, limits=limits)

    async def online(self, users: Iterable[str]) -> set[str]:
        self.calls += 1
        return MemoryBroker.online_now(self, users)

    calls = 0


async def test_a_broker_with_only_coroutines_gets_the_synchronous_path(
    auth: Authenticator, clock: FakeClock
) -> None:
    broker = _CoroutineOnlyBroker(clock=clock)
    node = Node(broker, auth, hub_config(), clock=clock, metrics=HubMetrics())
    ann = Client(node)
    await ann.ok("connect", name="ann")
    send = '{"id":3,"method":"send","params":{"to":["ann"],"data":"hi"}}'
    assert node.handle_now(ann.session, send) is None  # its coroutines, run at once
    assert ann.messages[-1]["result"]["results"]["ann"]["status"] == "live"
    assert [m["data"] for m in ann.take("message")] == ["hi"]
    assert broker.calls == 2  # online, then publish


async def test_synchronous_forms_of_a_broker_that_suspends_refuse() -> None:
    broker = _SuspendingBroker()
    with pytest.raises(NotImplementedError):
        Broker.online_now(broker, ["ann"])
    with pytest.raises(NotImplementedError):
        Broker.publish_now(broker, "room", 1, sender=None, limits=StreamLimits())
