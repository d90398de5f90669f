"""docs/protocol.md taken at its word: the error code of each case it lists (issue 12)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from hub_helpers import SECRET, Client, FakeClock, hub_config

from hubbub.hub import Authenticator, HubMetrics, MemoryBroker, Node
from hubbub.hub.auth import mint_subscribe_token, mint_token

Connect = Callable[..., Awaitable[Client]]


async def test_connect_without_a_token(node: Node) -> None:
    client = Client(node)
    assert await client.error("connect") == 102  # neither token nor name
    assert await client.error("connect", token="") == 102
    assert await client.error("connect", token=7) == 102


async def test_connect_with_a_name_when_tokens_are_required(clock: FakeClock) -> None:
    auth = Authenticator(secret=SECRET, clock=clock)
    node = Node(MemoryBroker(clock=clock), auth, hub_config(), clock=clock, metrics=HubMetrics())
    client = Client(node)
    assert await client.error("connect", name="alice") == 200
    assert await client.error("connect", token="not.a.jwt") == 200
    expired = mint_token("alice", SECRET, 10, now=clock() - 60)
    assert await client.error("connect", token=expired) == 201
    await client.ok("connect", token=mint_token("alice", SECRET, 60, now=clock()))


async def test_subscribe_tokens(connect: Connect, clock: FakeClock) -> None:
    alice = await connect("alice")
    good = mint_subscribe_token("alice", "priv:x", SECRET, 60, now=clock())
    expired = mint_subscribe_token("alice", "priv:x", SECRET, 10, now=clock() - 60)
    other_channel = mint_subscribe_token("alice", "priv:y", SECRET, 60, now=clock())
    other_user = mint_subscribe_token("bob", "priv:x", SECRET, 60, now=clock())
    wrong_key = mint_subscribe_token("alice", "priv:x", "another-secret-of-32-bytes-or-more!", 60)
    connection_token = mint_token("alice", SECRET, 60, now=clock())  # no channel claim
    # Every refused subscribe token is 202, an expired one included (201 is for
    # the connection's own token).
    for token in (expired, other_channel, other_user, wrong_key, connection_token):
        assert await alice.error("subscribe", channel="priv:x", token=token) == 202
    assert await alice.error("subscribe", channel="priv:x") == 202  # none
    await alice.ok("subscribe", channel="priv:x", token=good)


async def test_invalid_names_and_params(connect: Connect) -> None:
    alice = await connect("alice")
    assert await alice.error("subscribe", channel="a b") == 102
    assert await alice.error("subscribe", channel="x" * 256) == 102
    assert await alice.error("subscribe", channel="nope:x") == 107  # valid, unknown namespace
    assert await alice.error("send", to=["$bob"], data=1) == 102
    assert await alice.error("send", to=["a\nb"], data=1) == 102
    assert await alice.error("online", users=["x" * 129]) == 102
    assert await alice.error("send", to=[], data=1) == 102
    assert await alice.error("publish", channel="room") == 102  # data missing
    for params in ([], "x", 1, None):
        reply = await _raw(alice, {"id": 9, "method": "publish", "params": params})
        assert reply["error"]["code"] == 102, params
    reply = await _raw(alice, {"id": 9, "method": "fly", "params": []})
    assert reply["error"]["code"] == 101  # the method is checked first


async def test_ack_of_a_channel_stream(connect: Connect) -> None:
    alice = await connect("alice")
    await alice.ok("subscribe", channel="chat:x")
    assert await alice.error("ack", stream="chat:x", offset=0) == 102
    assert await alice.error("ack", stream="$inbox", offset=5) == 102  # beyond the end
    assert await alice.error("ack", stream="$inbox", offset=0, epoch="x") == 108


async def test_text_the_hub_refuses_is_100_with_the_id(connect: Connect) -> None:
    alice = await connect("alice")
    for text in (
        '{"id":3,"method":"ping","params":{"x":"\\udc00"}}',
        '{"id":3,"method":"ping","params":{"x":' + "[" * 70 + "]" * 70 + "}}",
    ):
        start = len(alice.raw)
        await alice.node.handle(alice.session, text)
        reply = json.loads(alice.raw[start])
        assert (reply["id"], reply["error"]["code"]) == (3, 100)


async def test_expiring_is_pushed_once_30_s_before_expiry(
    node: Node, clock: FakeClock, connect: Connect
) -> None:
    alice = await connect("alice", ttl=100)
    clock.advance(69)
    await node.periodic()
    assert alice.take("expiring") == []
    clock.advance(1)  # 30 s before expiry
    await node.periodic()
    assert len(alice.take("expiring")) == 1
    clock.advance(1)
    await node.periodic()
    assert alice.take("expiring") == []  # once
    token = mint_token("alice", SECRET, 100, now=clock())
    await alice.ok("refresh", token=token)
    clock.advance(70)
    await node.periodic()
    assert len(alice.take("expiring")) == 1  # again for the new token


async def test_join_leave_suppression_is_per_connection(connect: Connect) -> None:
    first = await connect("alice")
    await first.ok("subscribe", channel="room")
    second = await connect("alice")  # the same user, another connection
    await second.ok("subscribe", channel="room")
    [join] = first.take("join")
    assert (join["user"], join["conn_id"]) == ("alice", second.session.conn_id)
    assert second.take("join") == []  # not told of its own join
    await second.leave()
    [leave] = first.take("leave")
    assert leave["conn_id"] == second.session.conn_id


async def _raw(client: Client, obj: object) -> dict[str, object]:
    start = len(client.raw)
    await client.node.handle(client.session, json.dumps(obj))
    reply: dict[str, object] = json.loads(client.raw[start])
    return reply
