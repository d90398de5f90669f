"""The in-memory broker: streams, live fan-out, presence with expiry, online, acks."""

from __future__ import annotations

import pytest
from hub_helpers import FakeClock

from hubbub.hub.brokers.memory import MemoryBroker
from hubbub.hub.core.broker import ONLINE, BrokerUnavailable, ClientInfo, Notice, Reset
from hubbub.hub.core.streams import Entry, StreamLimits

LIMITS = StreamLimits(3, 60.0)


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[str, Entry | Notice | Reset]] = []

    def __call__(self, stream: str, item: Entry | Notice | Reset) -> None:
        self.items.append((stream, item))


async def test_publish_assigns_offsets_and_reaches_listeners_of_that_stream_only() -> None:
    broker = MemoryBroker(clock=FakeClock())
    a, b = Recorder(), Recorder()
    await broker.subscribe("s1", a)
    await broker.subscribe("s1", a)  # idempotent: still delivered once
    await broker.subscribe("s2", b)
    e1 = await broker.publish("s1", "x", sender="u", limits=LIMITS)
    e2 = await broker.publish("s1", "y", sender=None, limits=LIMITS)
    await broker.publish("s2", "z", sender="u", limits=LIMITS)
    assert (e1.offset, e2.offset) == (1, 2)
    assert [item for _, item in a.items] == [e1, e2]
    assert [s for s, _ in b.items] == ["s2"]
    await broker.unsubscribe("s1", a)
    await broker.publish("s1", "w", sender="u", limits=LIMITS)
    assert len(a.items) == 2


async def test_broadcast_is_not_stored() -> None:
    broker = MemoryBroker(clock=FakeClock())
    rec = Recorder()
    await broker.subscribe("c", rec)
    notice = Notice("join", "u", "c1")
    await broker.broadcast("c", notice)
    assert rec.items == [("c", notice)]
    assert (await broker.read("c", 0, 10)).entries == []


async def test_a_failing_listener_does_not_stop_others(caplog: pytest.LogCaptureFixture) -> None:
    broker = MemoryBroker(clock=FakeClock())

    def broken(stream: str, item: Entry | Notice | Reset) -> None:
        raise RuntimeError("boom")

    rec = Recorder()
    await broker.subscribe("c", broken)
    await broker.subscribe("c", rec)
    await broker.publish("c", 1, sender=None, limits=LIMITS)
    assert len(rec.items) == 1
    assert "listener failed" in caplog.text


async def test_read_fixes_the_epoch_before_the_first_publish() -> None:
    broker = MemoryBroker(clock=FakeClock())
    first = await broker.read("c", None, 0)
    entry = await broker.publish("c", 1, sender=None, limits=LIMITS)
    assert entry.epoch == first.epoch
    assert first.offset == 0


async def test_limits_apply_per_publish() -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    for i in range(5):
        await broker.publish("c", i, sender=None, limits=LIMITS)
    result = await broker.read("c", 0, 10)
    assert [e.data for e in result.entries] == [2, 3, 4]
    assert not result.complete


async def test_idle_empty_streams_are_dropped_with_a_new_epoch() -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock, idle_ttl=100)
    entry = await broker.publish("c", 1, sender=None, limits=StreamLimits(10, 10.0))
    clock.advance(50)
    await broker.maintain()
    assert broker.health()["streams"] == 1
    clock.advance(60)
    await broker.maintain()
    assert broker.health()["streams"] == 0
    assert (await broker.read("c", None, 0)).epoch != entry.epoch


async def test_a_stream_dropped_under_its_listeners_resets_them_first() -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock, idle_ttl=100)
    rec, gone = Recorder(), Recorder()
    await broker.subscribe("c", rec)
    await broker.subscribe("d", gone)
    old = await broker.publish("c", 1, sender=None, limits=StreamLimits(10, 10.0))
    await broker.publish("d", 1, sender=None, limits=StreamLimits(10, 10.0))
    await broker.unsubscribe("d", gone)  # nobody listens to "d" any more
    clock.advance(200)
    await broker.maintain()
    assert rec.items == [("c", old)]  # noticed when the stream is created again
    new = await broker.publish("c", 2, sender=None, limits=LIMITS)
    assert new.epoch != old.epoch
    assert new.offset == 1
    assert rec.items[1:] == [("c", Reset(new.epoch, 0)), ("c", new)]
    await broker.publish("c", 3, sender=None, limits=LIMITS)
    assert [type(item) for _, item in rec.items].count(Reset) == 1  # said once
    # A read creating it again resets too; a stream nobody listened to does not.
    clock.advance(200)
    await broker.maintain()
    read = await broker.read("c", None, 0)
    assert rec.items[-1] == ("c", Reset(read.epoch, 0))
    await broker.subscribe("d", gone)
    await broker.read("d", None, 0)
    assert [type(item) for _, item in gone.items] == [Entry]  # from before it left


async def test_presence_add_remove_expire_and_touch() -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    await broker.presence_add("c", ClientInfo("ann", "c1", "n1"), ttl=30)
    await broker.presence_add("c", ClientInfo("bob", "c2", "n2"), ttl=30)
    assert set(await broker.presence("c")) == {"c1", "c2"}
    await broker.presence_remove("c", "c2")
    assert set(await broker.presence("c")) == {"c1"}
    clock.advance(20)
    await broker.presence_touch([("c", "c1"), ("c", "gone")], ttl=30)
    clock.advance(20)  # 40 s after add, 20 s after touch
    assert set(await broker.presence("c")) == {"c1"}
    clock.advance(10)
    assert await broker.presence("c") == {}
    assert broker.health()["presence"] == 0


async def test_online_is_the_presence_of_the_online_stream() -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    await broker.presence_add(ONLINE, ClientInfo("ann", "c1", "n1"), ttl=30)
    await broker.presence_add(ONLINE, ClientInfo("ann", "c2", "n2"), ttl=60)
    await broker.presence_add("chan", ClientInfo("bob", "c3", "n1"), ttl=30)
    assert await broker.online(["ann", "bob", "cid"]) == {"ann"}
    await broker.presence_remove(ONLINE, "c1")
    assert await broker.online(["ann"]) == {"ann"}
    clock.advance(61)  # a dead node stops refreshing: its users vanish
    assert await broker.online(["ann"]) == set()


async def test_acks_are_monotonic_within_an_epoch() -> None:
    broker = MemoryBroker(clock=FakeClock())
    assert await broker.get_ack("u") is None
    assert await broker.set_ack("u", 5, "e1") == (5, "e1")
    assert await broker.set_ack("u", 3, "e1") == (5, "e1")
    assert await broker.set_ack("u", 2, "e2") == (2, "e2")
    assert await broker.get_ack("u") == (2, "e2")


async def test_closed_broker_is_unavailable() -> None:
    broker = MemoryBroker(clock=FakeClock())
    assert broker.health()["ok"]
    await broker.close()
    assert broker.health() == {**broker.health(), "ok": False, "type": "memory"}
    with pytest.raises(BrokerUnavailable):
        await broker.publish("c", 1, sender=None, limits=LIMITS)
    with pytest.raises(BrokerUnavailable):
        await broker.online(["a"])
