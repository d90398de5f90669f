"""Namespace rules (who may subscribe and publish) and per-connection limits."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from hub_helpers import SECRET, Client, FakeClock

from hubbub.hub import BrokerUnavailable, HubConfig, Node, mint_subscribe_token
from hubbub.hub.core.config import TokenBucket, namespace_of
from hubbub.hub.core.protocol import ErrorCode

Connect = Callable[..., Awaitable[Client]]


def test_namespace_of() -> None:
    assert namespace_of("chat:a:b") == "chat"
    assert namespace_of("lobby") == ""
    assert namespace_of(":x") == ""


async def test_unknown_namespace(connect: Connect) -> None:
    ann = await connect("ann")
    assert await ann.error("subscribe", channel="nope:x") == ErrorCode.UNKNOWN_CHANNEL
    assert await ann.error("publish", channel="nope:x", data=1) == ErrorCode.UNKNOWN_CHANNEL


async def test_publish_rules(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    # Default: subscribers publish.
    assert await ann.error("publish", channel="room", data=1) == ErrorCode.PERMISSION_DENIED
    await ann.ok("subscribe", channel="room")
    await ann.ok("publish", channel="room", data=1)
    # "all": anyone connected.
    await bob.ok("subscribe", channel="open:x")
    bob.take()
    await ann.ok("publish", channel="open:x", data=2)
    assert [p["data"] for p in bob.take("pub")] == [2]
    # "none": the server only.
    await ann.ok("subscribe", channel="news:x")
    assert await ann.error("publish", channel="news:x", data=1) == ErrorCode.PERMISSION_DENIED


async def test_private_channels(connect: Connect, clock: FakeClock) -> None:
    ann = await connect("ann", channels=["priv:claimed"])
    assert await ann.error("subscribe", channel="priv:x") == ErrorCode.PERMISSION_DENIED
    await ann.ok("subscribe", channel="priv:claimed")
    bob_token = mint_subscribe_token("bob", "priv:x", SECRET, 60, now=clock())
    assert (
        await ann.error("subscribe", channel="priv:x", token=bob_token)
        == ErrorCode.PERMISSION_DENIED
    )
    good = mint_subscribe_token("ann", "priv:x", SECRET, 60, now=clock())
    other = mint_subscribe_token("ann", "priv:y", SECRET, 60, now=clock())
    assert await ann.error("subscribe", channel="priv:x", token=other) == 202
    await ann.ok("subscribe", channel="priv:x", token=good)
    # Reading presence or history of a private channel also needs the right.
    bob = await connect("bob")
    assert await bob.error("presence", channel="priv:x") == ErrorCode.PERMISSION_DENIED
    assert await bob.error("history", stream="priv:x") == ErrorCode.PERMISSION_DENIED
    assert (await ann.ok("presence_stats", channel="priv:x"))["users"] == 1
    expired = mint_subscribe_token("bob", "priv:x", SECRET, 60, now=clock() - 61)
    assert await bob.error("subscribe", channel="priv:x", token=expired) == 202


async def test_user_limited_channels(connect: Connect) -> None:
    ann, bob, eve = await connect("ann"), await connect("bob"), await connect("eve")
    await ann.ok("subscribe", channel="dm#ann,bob")
    await bob.ok("subscribe", channel="dm#ann,bob")
    assert await eve.error("subscribe", channel="dm#ann,bob") == ErrorCode.PERMISSION_DENIED
    assert await eve.error("history", stream="dm#ann,bob") == ErrorCode.PERMISSION_DENIED


async def test_already_subscribed_and_channel_limit(make_node: Callable[..., Node], token) -> None:  # type: ignore[no-untyped-def]
    node = make_node(max_channels=2)
    ann = Client(node)
    await ann.ok("connect", token=token("ann"))
    await ann.ok("subscribe", channel="a")
    assert await ann.error("subscribe", channel="a") == ErrorCode.ALREADY_SUBSCRIBED
    await ann.ok("subscribe", channel="b")
    assert await ann.error("subscribe", channel="c") == ErrorCode.TOO_MANY_CHANNELS
    await ann.ok("unsubscribe", channel="a")
    await ann.ok("subscribe", channel="c")


async def test_message_size(make_node: Callable[..., Node], token) -> None:  # type: ignore[no-untyped-def]
    node = make_node(max_message_bytes=100, max_request_bytes=1000)
    ann = Client(node)
    await ann.ok("connect", token=token("ann"))
    await ann.ok("subscribe", channel="a")
    await ann.ok("publish", channel="a", data="x" * 98)  # 100 bytes encoded with quotes
    assert await ann.error("publish", channel="a", data="x" * 99) == ErrorCode.MESSAGE_TOO_LARGE
    assert await ann.error("send", to=["b"], data="x" * 99) == ErrorCode.MESSAGE_TOO_LARGE
    await node.handle(ann.session, json.dumps({"id": 50, "method": "ping", "pad": "x" * 1000}))
    error = json.loads(ann.raw[-1])
    assert error == {"id": None, "error": {"code": 302, "message": "message too large"}}


async def test_recipient_limit(make_node: Callable[..., Node], token) -> None:  # type: ignore[no-untyped-def]
    node = make_node(max_recipients=2)
    ann = Client(node)
    await ann.ok("connect", token=token("ann"))
    await ann.ok("send", to=["a", "b"], data=1)
    assert await ann.error("send", to=["a", "b", "c"], data=1) == ErrorCode.TOO_MANY_RECIPIENTS
    assert await ann.error("online", users=["a", "b", "c"]) == ErrorCode.TOO_MANY_RECIPIENTS


def test_token_bucket() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.advance(100)  # never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(5)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="byte_burst"):
        HubConfig(max_request_bytes=2000, byte_burst=1000)
    with pytest.raises(ValueError, match="positive"):
        HubConfig(command_rate=0)


async def test_command_rate_limit_replies_then_recovers(
    make_node: Callable[..., Node],
    token,
    clock: FakeClock,  # type: ignore[no-untyped-def]
) -> None:
    node = make_node(command_rate=1, command_burst=3)
    ann = Client(node)
    await ann.ok("connect", token=token("ann"))
    await ann.ok("ping")
    await ann.ok("ping")
    assert await ann.error("ping") == ErrorCode.RATE_LIMITED
    assert ann.closed is None
    clock.advance(1)
    await ann.ok("ping")


async def test_byte_rate_limit(make_node: Callable[..., Node], token, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    node = make_node(byte_rate=100, byte_burst=1000, max_request_bytes=1000)
    ann = Client(node)
    await ann.ok("connect", token=token("ann"))
    await ann.ok("subscribe", channel="a")
    await ann.ok("publish", channel="a", data="x" * 600)
    assert await ann.error("publish", channel="a", data="x" * 600) == ErrorCode.BYTES_RATE_LIMITED
    clock.advance(6)
    await ann.ok("publish", channel="a", data="x" * 600)


async def test_abuse_closes(make_node: Callable[..., Node], token) -> None:  # type: ignore[no-untyped-def]
    node = make_node(command_rate=1, command_burst=1, max_strikes=5)
    ann = Client(node)
    await ann.ok("connect", token=token("ann"))
    for _ in range(4):
        assert await ann.error("ping") == ErrorCode.RATE_LIMITED
    assert ann.closed is None
    await node.handle(ann.session, '{"id":99,"method":"ping"}')
    assert ann.closed == (4008, "too many rejected requests")
    assert ann.take("disconnect")[-1]["reconnect"] is False
    assert ann.session.conn_id not in node.sessions


async def test_the_hubs_own_failures_are_no_strikes(
    make_node: Callable[..., Node],
    token,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A client retrying while Redis is down is not abusive: 501 (and 500) are
    # the hub's failures, so they never close the connection with 4008.
    node = make_node(max_strikes=3)
    ann = Client(node)
    await ann.ok("connect", token=token("ann"))

    async def unavailable(*args: object, **kwargs: object) -> None:
        raise BrokerUnavailable("redis is down")

    def unavailable_now(*args: object, **kwargs: object) -> None:
        raise BrokerUnavailable("redis is down")

    monkeypatch.setattr(node.broker, "publish", unavailable)
    monkeypatch.setattr(node.broker, "publish_now", unavailable_now)  # Node.handle_now
    for i in range(10):
        reply = await ann.error("publish", channel="open:a", data=i)
        assert reply == ErrorCode.BROKER_UNAVAILABLE
    assert ann.closed is None
    for _ in range(2):
        assert await ann.error("fly") != ErrorCode.BROKER_UNAVAILABLE
    assert ann.closed is None  # the client's own mistakes still count: 2 < 3
    await ann.error("fly")
    assert ann.closed == (4008, "too many rejected requests")


async def test_accepted_requests_reset_strikes(make_node: Callable[..., Node], token) -> None:  # type: ignore[no-untyped-def]
    node = make_node(max_strikes=3)
    ann = Client(node)
    await ann.ok("connect", token=token("ann"))
    for _ in range(10):
        await ann.error("fly")
        await ann.error("fly")
        await ann.ok("ping")
    assert ann.closed is None
