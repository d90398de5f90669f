"""Recovery: reconnect with the last offset and get exactly what was missed, or be told."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hub_helpers import Client, FakeClock, hub_config
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.hub import Authenticator, HubMetrics, MemoryBroker, Node, StreamLimits
from hubbub.hub.core.streams import ReadResult

Connect = Callable[..., Awaitable[Client]]


def offsets(items: list[dict[str, Any]]) -> list[int]:
    return [item["offset"] for item in items]


async def test_channel_recovery_after_a_cut(connect: Connect) -> None:
    pub = await connect("pub")
    await pub.ok("subscribe", channel="chat:a")
    ann = await connect("ann")
    sub = await ann.ok("subscribe", channel="chat:a")
    for i in range(3):
        await pub.ok("publish", channel="chat:a", data=i)
    seen = ann.take("pub")
    assert offsets(seen) == [1, 2, 3]
    await ann.leave()  # the connection is cut
    for i in range(3, 5):
        await pub.ok("publish", channel="chat:a", data=i)
    again = await connect("ann")
    since = {"offset": seen[-1]["offset"], "epoch": sub["epoch"]}
    result = await again.ok("subscribe", channel="chat:a", since=since)
    assert result["recovered"] is True
    assert [(p["offset"], p["data"]) for p in result["publications"]] == [(4, 3), (5, 4)]
    await pub.ok("publish", channel="chat:a", data=5)
    assert offsets(again.take("pub")) == [6]


async def test_recovery_on_another_node(connect: Connect, make_node: Callable[..., Node]) -> None:
    pub = await connect("pub")
    await pub.ok("subscribe", channel="chat:a")
    ann = await connect("ann")
    sub = await ann.ok("subscribe", channel="chat:a")
    await ann.leave()
    await pub.ok("publish", channel="chat:a", data="missed")
    again = await connect("ann", on=make_node())
    result = await again.ok(
        "subscribe", channel="chat:a", since={"offset": sub["offset"], "epoch": sub["epoch"]}
    )
    assert result["recovered"] is True
    assert [p["data"] for p in result["publications"]] == ["missed"]


class RacyBroker(MemoryBroker):
    """Publishes ``racing`` entries between a node's subscribe and its history read."""

    racing: list[tuple[str, Any]]

    async def read(self, stream: str, after: int | None, limit: int) -> ReadResult:
        for name, data in self.racing:
            await self.publish(name, data, sender="racer", limits=StreamLimits(100, None))
        self.racing = []
        return await super().read(stream, after, limit)


async def test_publications_racing_a_recovery_arrive_once_and_in_order(
    auth: Authenticator, clock: FakeClock
) -> None:
    broker = RacyBroker(clock=clock)
    broker.racing = []
    node = Node(broker, auth, hub_config(), clock=clock, metrics=HubMetrics())
    ann = Client(node)
    await ann.ok("connect", name="ann")
    first = await ann.ok("subscribe", channel="room")
    await node.publish("room", 1)
    await ann.ok("unsubscribe", channel="room")
    await node.publish("room", 2)
    broker.racing = [("room", 3), ("room", 4)]
    ann.take()
    result = await ann.ok("subscribe", channel="room", since={"offset": 1, "epoch": first["epoch"]})
    # 3 and 4 reached the node before the read: they were buffered, and the
    # reply (which carries them) is followed by no duplicate push.
    assert offsets(result["publications"]) == [2, 3, 4]
    assert ann.take("pub") == []
    await node.publish("room", 5)
    assert offsets(ann.take("pub")) == [5]
    # Without "since" the racing entries arrive as pushes after the reply.
    await ann.ok("unsubscribe", channel="room")
    broker.racing = [("room", 6)]
    start = len(ann.raw)
    reply = await ann.ok("subscribe", channel="room")
    assert reply["offset"] == 6  # the read saw 6, so the push is not repeated
    assert [m for m in ann.messages[start:] if "push" in m] == []


async def test_inbox_racing_a_connect(auth: Authenticator, clock: FakeClock) -> None:
    broker = RacyBroker(clock=clock)
    broker.racing = [("$inbox:ann", "early")]
    node = Node(broker, auth, hub_config(), clock=clock, metrics=HubMetrics())
    ann = Client(node)
    result = await ann.ok("connect", name="ann")
    assert [m["data"] for m in result["inbox"]["messages"]] == ["early"]
    assert ann.take("message") == []


async def test_epoch_change_means_recovery_impossible(
    connect: Connect, auth: Authenticator, clock: FakeClock, token: Callable[..., str]
) -> None:
    ann = await connect("ann")
    sub = await ann.ok("subscribe", channel="chat:a")
    # The broker lost its data: a new one, as after a Redis restart without persistence.
    node = Node(MemoryBroker(clock=clock), auth, hub_config(), clock=clock, metrics=HubMetrics())
    again = Client(node)
    await again.ok("connect", token=token("ann"))
    result = await again.ok(
        "subscribe", channel="chat:a", since={"offset": sub["offset"], "epoch": sub["epoch"]}
    )
    assert result["recovered"] is False
    assert result["reason"] == "epoch"
    assert result["publications"] == []
    assert result["epoch"] != sub["epoch"]


async def recover(client: Client, channel: str, offset: int, epoch: str) -> dict[str, Any]:
    result: dict[str, Any] = await client.ok(
        "subscribe", channel=channel, since={"offset": offset, "epoch": epoch}
    )
    return result


async def test_trimmed_by_count_too_many_and_bad_offset(connect: Connect, node: Node) -> None:
    ann = await connect("ann")
    sub = await ann.ok("subscribe", channel="chat:a")  # keeps 5, recovers at most 3
    await ann.ok("unsubscribe", channel="chat:a")
    for i in range(4):
        await node.publish("chat:a", i)
    result = await recover(ann, "chat:a", 0, sub["epoch"])
    assert (result["recovered"], result["reason"]) == (False, "too_many")
    await ann.ok("unsubscribe", channel="chat:a")
    result = await recover(ann, "chat:a", 1, sub["epoch"])
    assert result["recovered"] is True
    assert offsets(result["publications"]) == [2, 3, 4]
    await ann.ok("unsubscribe", channel="chat:a")
    for i in range(4):
        await node.publish("chat:a", i)
    result = await recover(ann, "chat:a", 1, sub["epoch"])  # 2 and 3 were trimmed
    assert (result["recovered"], result["reason"]) == (False, "trimmed")
    await ann.ok("unsubscribe", channel="chat:a")
    result = await recover(ann, "chat:a", 99, sub["epoch"])
    assert (result["recovered"], result["reason"]) == (False, "offset")


async def test_trimmed_by_age(connect: Connect, node: Node, clock: FakeClock) -> None:
    ann = await connect("ann")
    sub = await ann.ok("subscribe", channel="chat:a")  # keeps 60 s
    await ann.ok("unsubscribe", channel="chat:a")
    await node.publish("chat:a", "old")
    clock.advance(61)
    result = await recover(ann, "chat:a", 0, sub["epoch"])
    assert (result["recovered"], result["reason"]) == (False, "trimmed")


async def test_no_history_still_recovers_when_nothing_was_missed(connect: Connect) -> None:
    ann = await connect("ann")
    sub = await ann.ok("subscribe", channel="quiet:a")
    await ann.ok("publish", channel="quiet:a", data=1)
    top = ann.take("pub")[-1]["offset"]
    await ann.ok("unsubscribe", channel="quiet:a")
    assert (await recover(ann, "quiet:a", top, sub["epoch"]))["recovered"] is True


async def test_inbox_unacked_entries_come_again(connect: Connect) -> None:
    ann, bob = await connect("ann"), await connect("bob")
    for i in range(3):
        await ann.ok("send", to=["bob"], data=i)
    live = bob.take("message")
    assert offsets(live) == [1, 2, 3]
    await bob.ok("ack", stream="$inbox", offset=1)
    await bob.leave()
    for i in range(3, 5):
        result = await ann.ok("send", to=["bob"], data=i)
        assert result["results"]["bob"]["status"] == "queued"
    bob = await connect("bob")
    inbox = next(m for m in bob.messages if m.get("id") == 1)["result"]["inbox"]
    # 2 and 3 were seen but not acked: they come again, recognisable by offset.
    assert offsets(inbox["messages"]) == [2, 3, 4, 5]
    assert (inbox["acked"], inbox["offset"], inbox["recovered"]) == (1, 5, True)
    await bob.ok("ack", stream="$inbox", offset=5, epoch=inbox["epoch"])
    await bob.leave()
    bob = await connect("bob")
    inbox = next(m for m in bob.messages if m.get("id") == 1)["result"]["inbox"]
    assert inbox["messages"] == []


async def test_inbox_bounded_by_count(make_node: Callable[..., Node], token) -> None:  # type: ignore[no-untyped-def]
    node = make_node(inbox=StreamLimits(3, None))
    await node.send(["bob"], "a")
    for i in range(4):
        await node.send(["bob"], i)
    bob = Client(node)
    inbox = (await bob.ok("connect", token=token("bob")))["inbox"]
    assert [m["data"] for m in inbox["messages"]] == [1, 2, 3]
    assert (inbox["recovered"], inbox["reason"]) == (False, "trimmed")


async def test_inbox_bounded_by_age(
    make_node: Callable[..., Node], token, clock: FakeClock
) -> None:  # type: ignore[no-untyped-def]
    node = make_node(inbox=StreamLimits(100, 60.0))
    await node.send(["bob"], "old")
    clock.advance(30)
    await node.send(["bob"], "new")
    clock.advance(31)
    bob = Client(node)
    inbox = (await bob.ok("connect", token=token("bob")))["inbox"]
    assert [m["data"] for m in inbox["messages"]] == ["new"]
    assert inbox["reason"] == "trimmed"


async def test_inbox_epoch_change(auth: Authenticator, clock: FakeClock, token) -> None:  # type: ignore[no-untyped-def]
    broker = MemoryBroker(clock=clock, idle_ttl=10)
    node = Node(
        broker, auth, hub_config(inbox=StreamLimits(10, 5.0)), clock=clock, metrics=HubMetrics()
    )
    await node.send(["bob"], "first")
    bob = Client(node)
    inbox = (await bob.ok("connect", token=token("bob")))["inbox"]
    await bob.ok("ack", stream="$inbox", offset=1)
    await bob.leave()
    clock.advance(20)  # the entry expired and the idle stream was dropped
    await broker.maintain()
    await node.send(["bob"], "second")
    bob = Client(node)
    again = (await bob.ok("connect", token=token("bob")))["inbox"]
    assert again["epoch"] != inbox["epoch"]
    assert (again["recovered"], again["reason"], again["acked"]) == (False, "epoch", 0)
    assert [m["data"] for m in again["messages"]] == ["second"]
    await bob.leave()
    # Reported once: the next connection is a normal one, from ack 0 of the new epoch.
    bob = Client(node)
    third = (await bob.ok("connect", token=token("bob")))["inbox"]
    assert (third["recovered"], third["acked"], third["epoch"]) == (True, 0, again["epoch"])
    assert [m["data"] for m in third["messages"]] == ["second"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.booleans(), st.booleans()), max_size=12))
async def test_inbox_cuts_property(steps: list[tuple[int, bool, bool]]) -> None:
    """Random sends, acks and cuts: nothing missing, in order, duplicates only if unacked."""
    clock = FakeClock()
    node = Node(
        MemoryBroker(clock=clock),
        Authenticator(insecure_dev_mode=True, clock=clock),
        hub_config(),
        clock=clock,
        metrics=HubMetrics(),
    )
    sent = 0
    acked = 0
    received: list[int] = []
    bob = Client(node)
    await bob.ok("connect", name="bob")
    for count, ack, cut in steps:
        for _ in range(count):
            sent += 1
            await node.send(["bob"], sent)
        if ack and sent:
            seen = max(received, default=0)
            await bob.ok("ack", stream="$inbox", offset=seen)
            acked = max(acked, seen)
        if cut:
            await bob.leave()
            bob = Client(node)
            inbox = (await bob.ok("connect", name="bob"))["inbox"]
            again = offsets(inbox["messages"])
            # Exactly the unacked entries, in order.
            assert again == list(range(acked + 1, sent + 1))
            assert inbox["recovered"] is True
            received += again
        live = offsets(bob.take("message"))
        assert live == sorted(live)
        received += live
    # Everything sent was received (duplicates were checked above: only unacked ones).
    assert set(received) == set(range(1, sent + 1))
