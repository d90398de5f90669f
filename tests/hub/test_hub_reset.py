"""The ``reset`` push: connected clients are told when the broker lost a stream.

Nodes share a :class:`MemoryBroker` whose idle streams are dropped (its one path
to a new epoch); the Redis side is in ``test_redis_broker.py`` and
``test_redis_nodes.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hub_helpers import Client, FakeClock

from hubbub.hub import MemoryBroker, Node, StreamLimits

SHORT = StreamLimits(5, 60.0)  # so that entries age out and the streams go idle
LONG_TOKEN = 10**7


def reset(stream: str, epoch: str, offset: int = 0) -> dict[str, Any]:
    return {"push": "reset", "stream": stream, "epoch": epoch, "offset": offset, "reason": "epoch"}


async def lose_everything(broker: MemoryBroker, clock: FakeClock, *clients: Client) -> None:
    """Age every entry out and let the broker drop the idle streams."""
    for client in clients:
        client.take()  # forget what came before
    clock.advance(4000)  # past the entries' age and the broker's idle_ttl (3600 s)
    await broker.maintain()
    for client in clients:
        assert client.take() == []  # nothing to say until the stream exists again
    assert broker.health()["streams"] == 0


async def test_every_connection_is_told_on_every_node(
    make_node: Callable[..., Node],
    broker: MemoryBroker,
    clock: FakeClock,
    connect: Callable[..., Awaitable[Client]],
) -> None:
    a, b = make_node(inbox=SHORT), make_node(inbox=SHORT)
    alice = await connect("alice", on=a, ttl=LONG_TOKEN)
    alice_b = await connect("alice", on=b, ttl=LONG_TOKEN)
    bob = await connect("bob", on=b, ttl=LONG_TOKEN)
    for c in (alice, bob):
        await c.ok("subscribe", channel="chat:room")
    old = await a.publish("chat:room", "old")
    await a.send(["alice"], "old")
    await lose_everything(broker, clock, alice, alice_b, bob)

    entry = await b.publish("chat:room", "new")
    assert entry.epoch != old.epoch
    assert entry.offset == 1
    for c in (alice, bob):
        pushes = c.take()
        assert pushes[0] == reset("chat:room", entry.epoch)  # before the new entry
        assert [(m["push"], m["epoch"], m["offset"]) for m in pushes[1:]] == [
            ("pub", entry.epoch, 1)
        ]
    assert alice_b.take() == []  # not in the channel: not told about it

    sent = await b.send(["alice"], "new")
    epoch = sent["alice"]["epoch"]
    for c in (alice, alice_b):  # every connection of the user, on both nodes
        pushes = c.take()
        assert pushes[0] == reset("$inbox", epoch)
        assert [(m["push"], m["offset"], m["data"]) for m in pushes[1:]] == [("message", 1, "new")]
    assert bob.take() == []
    # Acks work in the new epoch; a later entry comes without another reset.
    assert await alice.ok("ack", stream="$inbox", offset=1, epoch=epoch) == {
        "offset": 1,
        "epoch": epoch,
    }
    await a.publish("chat:room", "again")
    assert [m["push"] for m in alice.take()] == ["pub"]


async def test_a_client_subscribing_meanwhile_gets_the_reset_after_its_reply(
    node: Node,
    broker: MemoryBroker,
    clock: FakeClock,
    connect: Callable[..., Awaitable[Client]],
) -> None:
    alice = await connect("alice", ttl=LONG_TOKEN)
    carol = await connect("carol", ttl=LONG_TOKEN)
    await alice.ok("subscribe", channel="chat:room")
    await node.publish("chat:room", "old")
    await lose_everything(broker, clock, alice, carol)
    # Carol's subscribe creates the stream again: the reset reaches alice at
    # once, and carol after the reply (which already carries the new epoch).
    start = len(carol.raw)
    result = await carol.ok("subscribe", channel="chat:room")
    after = carol.messages[start:]
    assert [m.get("push", "reply") for m in after] == ["reply", "reset"]
    assert after[1] == reset("chat:room", result["epoch"])
    assert alice.take("reset") == [reset("chat:room", result["epoch"])]
