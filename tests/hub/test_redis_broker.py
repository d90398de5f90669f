"""The Redis broker against a real ``redis-server``: the broker contract, shared
by :class:`MemoryBroker` (each contract test runs on both), then what only Redis
has: several brokers (nodes) on one Redis, lost data (new epochs), a lost
subscriber connection (gap filled), Redis killed and restarted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hub_helpers import FakeClock
from redis_helpers import REDIS_SERVER, RedisServer

from hubbub.backoff import Backoff
from hubbub.hub.brokers.memory import MemoryBroker
from hubbub.hub.brokers.redis_broker import RedisBroker
from hubbub.hub.brokers.redis_subscriber import RedisSubscriber
from hubbub.hub.core.broker import (
    ONLINE,
    Broker,
    BrokerUnavailable,
    ClientInfo,
    Notice,
    Reset,
)
from hubbub.hub.core.streams import Entry, StreamLimits
from hubbub.hub.settings import settings

pytestmark = pytest.mark.skipif(
    not Path(REDIS_SERVER).exists(), reason="redis-server is not installed"
)

LIMITS = StreamLimits(3, 60.0)
_prefixes = itertools.count()


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[str, Entry | Notice | Reset]] = []

    def __call__(self, stream: str, item: Entry | Notice | Reset) -> None:
        self.items.append((stream, item))


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for the Redis round trip of live fan-out (immediate with memory)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.fixture
def make_redis(redis_server: RedisServer, clock: FakeClock) -> Callable[..., RedisBroker]:
    """Brokers on the module's Redis, with a key prefix of their own per test."""
    prefix = f"t{next(_prefixes)}:"

    def make(**kwargs: object) -> RedisBroker:
        options: dict[str, object] = {"prefix": prefix, "clock": clock, "timeout": 1.0}
        options.update(kwargs)
        return RedisBroker(redis_server.url, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.peer)])
async def any_broker(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Broker]:
    """The contract's subject: a memory broker, or a Redis broker."""
    if request.param == "memory":
        yield MemoryBroker(clock=clock)
        return
    make = request.getfixturevalue("make_redis")
    broker = make()
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def test_publish_assigns_offsets_and_reaches_listeners_of_that_stream_only(
    any_broker: Broker,
) -> None:
    broker = any_broker
    a, b = Recorder(), Recorder()
    await broker.subscribe("s1", a)
    await broker.subscribe("s1", a)  # idempotent: still delivered once
    await broker.subscribe("s2", b)
    e1 = await broker.publish("s1", {"x": [1]}, sender="u", limits=LIMITS)
    e2 = await broker.publish("s1", "y", sender=None, limits=LIMITS)
    await broker.publish("s2", "z", sender="u", limits=LIMITS)
    assert (e1.offset, e2.offset) == (1, 2)
    await wait_until(lambda: len(a.items) == 2 and len(b.items) == 1)
    assert [item for _, item in a.items] == [e1, e2]
    assert [s for s, _ in b.items] == ["s2"]
    await broker.unsubscribe("s1", a)
    await broker.publish("s1", "w", sender="u", limits=LIMITS)
    await broker.publish("s2", "sync", sender="u", limits=LIMITS)
    await wait_until(lambda: len(b.items) == 2)
    assert len(a.items) == 2


async def test_broadcast_is_not_stored(any_broker: Broker) -> None:
    rec = Recorder()
    await any_broker.subscribe("c", rec)
    notice = Notice("join", "u", "c1")
    await any_broker.broadcast("c", notice)
    await wait_until(lambda: len(rec.items) == 1)
    assert rec.items == [("c", notice)]
    assert (await any_broker.read("c", 0, 10)).entries == []


async def test_a_failing_listener_does_not_stop_others(
    any_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(stream: str, item: Entry | Notice | Reset) -> None:
        raise RuntimeError("boom")

    rec = Recorder()
    await any_broker.subscribe("c", broken)
    await any_broker.subscribe("c", rec)
    await any_broker.publish("c", 1, sender=None, limits=LIMITS)
    await wait_until(lambda: len(rec.items) == 1)
    assert "listener failed" in caplog.text


async def test_read_fixes_the_epoch_before_the_first_publish(any_broker: Broker) -> None:
    first = await any_broker.read("c", None, 0)
    entry = await any_broker.publish("c", 1, sender=None, limits=LIMITS)
    assert entry.epoch == first.epoch
    assert first.offset == 0
    assert (await any_broker.read("other", None, 0)).epoch != first.epoch


async def test_read_by_offset_newest_and_beyond_the_top(any_broker: Broker) -> None:
    for i in range(5):
        await any_broker.publish("c", i, sender="u", limits=StreamLimits(10, None))
    after2 = await any_broker.read("c", 2, 2)
    assert [(e.offset, e.data, e.sender) for e in after2.entries] == [(3, 2, "u"), (4, 3, "u")]
    assert after2.complete
    assert after2.offset == 5
    newest = await any_broker.read("c", None, 2)
    assert [e.offset for e in newest.entries] == [4, 5]
    beyond = await any_broker.read("c", 9, 10)
    assert (beyond.entries, beyond.complete, beyond.offset) == ([], False, 5)


async def test_limits_apply_per_publish(any_broker: Broker) -> None:
    for i in range(5):
        await any_broker.publish("c", i, sender=None, limits=LIMITS)
    result = await any_broker.read("c", 0, 10)
    assert [e.data for e in result.entries] == [2, 3, 4]
    assert not result.complete
    assert (await any_broker.read("c", 2, 10)).complete


async def test_age_limit_trims_by_the_clock(any_broker: Broker, clock: FakeClock) -> None:
    limits = StreamLimits(100, 10.0)
    await any_broker.publish("c", "old", sender=None, limits=limits)
    clock.advance(6)
    await any_broker.publish("c", "new", sender=None, limits=limits)
    clock.advance(5)  # "old" is 11 s old, "new" 5 s
    result = await any_broker.read("c", 0, 10)
    assert [e.data for e in result.entries] == ["new"]
    assert not result.complete
    assert (await any_broker.read("c", 1, 10)).complete


async def test_max_len_zero_keeps_nothing_but_offsets_advance(any_broker: Broker) -> None:
    limits = StreamLimits(0, None)
    await any_broker.publish("c", 1, sender=None, limits=limits)
    entry = await any_broker.publish("c", 2, sender=None, limits=limits)
    result = await any_broker.read("c", 2, 10)
    assert (entry.offset, result.offset, result.entries, result.complete) == (2, 2, [], True)
    assert not (await any_broker.read("c", 1, 10)).complete


async def test_presence_add_remove_expire_and_touch(any_broker: Broker, clock: FakeClock) -> None:
    broker = any_broker
    await broker.presence_add("c", ClientInfo("ann", "c1", "n1"), ttl=30)
    await broker.presence_add("c", ClientInfo("bob", "c2", "n2"), ttl=30)
    assert await broker.presence("c") == {
        "c1": ClientInfo("ann", "c1", "n1"),
        "c2": ClientInfo("bob", "c2", "n2"),
    }
    await broker.presence_remove("c", "c2")
    assert set(await broker.presence("c")) == {"c1"}
    clock.advance(20)
    await broker.presence_touch([("c", "c1"), ("c", "gone")], ttl=30)
    clock.advance(20)  # 40 s after add, 20 s after touch
    assert set(await broker.presence("c")) == {"c1"}
    clock.advance(10)
    assert await broker.presence("c") == {}


async def test_online_is_the_presence_of_the_online_stream(
    any_broker: Broker, clock: FakeClock
) -> None:
    broker = any_broker
    await broker.presence_add(ONLINE, ClientInfo("ann", "c1", "n1"), ttl=30)
    await broker.presence_add(ONLINE, ClientInfo("ann", "c2", "n2"), ttl=60)
    await broker.presence_add("chan", ClientInfo("bob", "c3", "n1"), ttl=30)
    assert await broker.online(["ann", "bob", "cid"]) == {"ann"}
    assert await broker.online([]) == set()
    await broker.presence_remove(ONLINE, "c1")
    assert await broker.online(["ann"]) == {"ann"}
    clock.advance(61)  # a dead node stops refreshing: its users vanish
    assert await broker.online(["ann"]) == set()


async def test_acks_are_monotonic_within_an_epoch(any_broker: Broker) -> None:
    broker = any_broker
    assert await broker.get_ack("u") is None
    assert await broker.set_ack("u", 5, "e1") == (5, "e1")
    assert await broker.set_ack("u", 3, "e1") == (5, "e1")
    assert await broker.set_ack("u", 2, "e2") == (2, "e2")
    assert await broker.get_ack("u") == (2, "e2")


async def test_closed_broker_is_unavailable(any_broker: Broker) -> None:
    assert any_broker.health()["ok"]
    await any_broker.close()
    assert not any_broker.health()["ok"]
    with pytest.raises(BrokerUnavailable):
        await any_broker.publish("c", 1, sender=None, limits=LIMITS)
    with pytest.raises(BrokerUnavailable):
        await any_broker.online(["a"])


# --- Redis only --------------------------------------------------------------


@pytest.mark.peer
async def test_two_nodes_share_offsets_fan_out_presence_and_acks(
    make_redis: Callable[..., RedisBroker], clock: FakeClock
) -> None:
    one, two = make_redis(), make_redis()
    await one.start()
    await two.start()
    try:
        rec1, rec2 = Recorder(), Recorder()
        await one.subscribe("c", rec1)
        await two.subscribe("c", rec2)
        entries = []
        for i in range(10):
            broker = (one, two)[i % 2]
            entries.append(await broker.publish("c", i, sender="u", limits=LIMITS))
        assert [e.offset for e in entries] == list(range(1, 11))
        await wait_until(lambda: len(rec1.items) == 10 and len(rec2.items) == 10)
        assert [i for _, i in rec1.items] == entries == [i for _, i in rec2.items]
        await one.presence_add(ONLINE, ClientInfo("ann", "c1", "n1"), ttl=30)
        assert await two.online(["ann"]) == {"ann"}
        assert set(await two.presence(ONLINE)) == {"c1"}
        await two.set_ack("ann", 4, entries[0].epoch)
        assert await one.get_ack("ann") == (4, entries[0].epoch)
    finally:
        await one.close()
        await two.close()


@pytest.mark.peer
async def test_lost_data_means_a_new_epoch_and_presence_heals(
    make_redis: Callable[..., RedisBroker], redis_server: RedisServer
) -> None:
    broker = make_redis()
    await broker.start()
    try:
        before = await broker.publish("c", 1, sender=None, limits=LIMITS)
        await broker.presence_add("c", ClientInfo("ann", "c1", "n1"), ttl=30)
        await broker.presence_add(ONLINE, ClientInfo("ann", "c1", "n1"), ttl=30)
        await broker._redis.flushall()  # Redis lost everything
        after = await broker.read("c", 1, 10)
        assert after.epoch != before.epoch
        assert (after.offset, after.entries) == (0, [])
        assert await broker.online(["ann"]) == set()
        # The next heartbeat re-adds what this node had added.
        await broker.presence_touch([("c", "c1"), (ONLINE, "c1")], ttl=30)
        assert set(await broker.presence("c")) == {"c1"}
        assert await broker.online(["ann"]) == {"ann"}
    finally:
        await broker.close()


@pytest.mark.peer
async def test_flushall_resets_every_node_before_the_new_epoch(
    make_redis: Callable[..., RedisBroker],
) -> None:
    one, two = make_redis(), make_redis()
    await one.start()
    await two.start()
    try:
        rec1, rec2, other = Recorder(), Recorder(), Recorder()
        await one.subscribe("c", rec1)
        await two.subscribe("c", rec2)
        await two.subscribe("d", other)
        old = await one.publish("c", "old", sender=None, limits=LIMITS)
        await wait_until(lambda: len(rec1.items) == 1 and len(rec2.items) == 1)
        await one._redis.flushall()  # Redis lost everything; both nodes stay connected
        new = await one.publish("c", "new", sender=None, limits=LIMITS)
        assert new.epoch != old.epoch
        assert new.offset == 1
        await wait_until(lambda: len(rec1.items) == 3 and len(rec2.items) == 3)
        # Each node tells its own listeners, before the first entry of the new epoch.
        for rec in (rec1, rec2):
            assert [item for _, item in rec.items[1:]] == [Reset(new.epoch, 0), new]
        assert other.items == []  # "d" was never touched: nothing noticed yet
        # A late entry of the lost epoch (published before the loss, arriving
        # after the reset) is not delivered: it would move listeners back.
        one.subscriber._dispatch("c", Entry(old.offset + 1, old.epoch, old.time, "late", None))
        assert len(rec1.items) == 3
        # The check that maintain() runs notices the quiet stream too: it
        # creates it again, and the new epoch is the one everybody reads.
        await two.check_epochs()
        assert len(other.items) == 1
        stream, reset = other.items[0]
        assert stream == "d"
        assert isinstance(reset, Reset)
        assert reset.offset == 0
        assert (await one.read("d", None, 0)).epoch == reset.epoch
        await two.check_epochs()  # nothing new: said once
        assert len(other.items) == 1
    finally:
        await one.close()
        await two.close()


@pytest.mark.peer
async def test_a_lost_subscriber_connection_reconnects_and_fills_the_gap(
    make_redis: Callable[..., RedisBroker],
) -> None:
    listener_node = make_redis(backoff=Backoff(0.05, 2.0, 0.2))
    publisher = make_redis()
    await listener_node.start()
    await publisher.start()
    try:
        rec, quiet = Recorder(), Recorder()
        limits = StreamLimits(100, None)
        await publisher.publish("d", "before", sender=None, limits=limits)
        await listener_node.subscribe("c", rec)
        await listener_node.subscribe("d", quiet)  # nothing arrives on it before the cut
        await publisher.publish("c", 0, sender=None, limits=limits)
        await wait_until(lambda: len(rec.items) == 1)
        # Cut every pub/sub connection; publish while the listener is away.
        await publisher._redis.client_kill_filter(_type="pubsub")
        for i in range(1, 20):
            await publisher.publish("c", i, sender=None, limits=limits)
        missed = await publisher.publish("d", "missed", sender=None, limits=limits)
        await wait_until(lambda: len(rec.items) == 20 and len(quiet.items) == 1)
        assert quiet.items == [("d", missed)]  # from where it subscribed, not before
        assert [item.data for _, item in rec.items] == list(range(20))  # type: ignore[union-attr]
        assert listener_node.reconnects >= 1
        await publisher.publish("c", 20, sender=None, limits=limits)
        await wait_until(lambda: len(rec.items) == 21)
    finally:
        await listener_node.close()
        await publisher.close()


@pytest.mark.peer
async def test_redis_killed_then_restarted_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    broker = RedisBroker(server.url, timeout=0.5, backoff=Backoff(0.05, 2.0, 0.2))
    try:
        await broker.start()
        rec = Recorder()
        await broker.subscribe("c", rec)
        before = await broker.publish("c", "x", sender=None, limits=LIMITS)
        await wait_until(lambda: len(rec.items) == 1)
        server.kill()
        with pytest.raises(BrokerUnavailable):
            await broker.publish("c", "y", sender=None, limits=LIMITS)
        await broker.maintain()
        assert not broker.health()["ok"]
        assert "DOWN" in caplog.text
        server.start()  # same port, no data
        await wait_until(lambda: broker.health()["subscriber"], timeout=10)
        await broker.maintain()
        assert broker.health()["ok"]
        # The reconnection found the stream lost: its listener is told at once,
        # before anything is published in the new epoch.
        await wait_until(lambda: len(rec.items) == 2)
        stream, reset = rec.items[1]
        assert stream == "c"
        assert isinstance(reset, Reset)
        assert reset.epoch != before.epoch
        assert reset.offset == 0
        after = await broker.publish("c", "z", sender=None, limits=LIMITS)
        assert (after.epoch, after.offset) == (reset.epoch, 1)
        await wait_until(lambda: len(rec.items) == 3)  # still subscribed
        assert rec.items[-1][1] == after
    finally:
        await broker.close()
        server.stop()


# --- configuration -----------------------------------------------------------


def test_broker_setting_from_flag_env_and_toml(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('broker = "redis://from-toml:3/0"\n')
    bare = argparse.Namespace(broker=None, config=None)
    assert settings(bare, {})[0]["broker"] == "memory"  # the default
    assert settings(bare, {"HUBBUB_BROKER": "redis://env:1/2"})[0]["broker"] == "redis://env:1/2"
    from_file = argparse.Namespace(broker=None, config=str(toml))
    assert settings(from_file, {})[0]["broker"] == "redis://from-toml:3/0"
    flag = argparse.Namespace(broker="redis://flag:4/0", config=str(toml))
    assert settings(flag, {"HUBBUB_BROKER": "redis://env:1/2"})[0]["broker"] == "redis://flag:4/0"


async def test_logged_urls_hide_the_password() -> None:
    broker = RedisBroker("redis://user:s3cret@127.0.0.1:1/0")
    try:
        assert "s3cret" not in broker._safe_url()
        assert broker._safe_url().endswith("@127.0.0.1:1/0")
    finally:
        await broker.close()


async def test_the_subscriber_is_an_object_the_broker_owns() -> None:
    # Issue 14: two objects with their own state, not a mixin and its host.
    assert not issubclass(RedisBroker, RedisSubscriber)
    broker = RedisBroker("redis://user:s3cret@127.0.0.1:1/0")
    try:
        assert isinstance(broker.subscriber, RedisSubscriber)
        health = broker.health()
        assert (health["subscriber"], health["streams_subscribed"], health["reconnects"]) == (
            False,
            0,
            0,
        )
        with pytest.raises(BrokerUnavailable):  # never started: no connection to use
            await broker.subscribe("c", Recorder())
        assert broker.subscriber.streams == 0  # the failed subscription left nothing
    finally:
        await broker.close()
