"""The Redis broker's pipelined connection against a real ``redis-server``:
commands of one loop iteration leave in one write, replies come back in order,
an error reply fails its command only, a broken or stalled connection fails
what is outstanding and the next command connects again, and a Redis that
forgot the scripts is sent them again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from redis.asyncio import Connection, ConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis_helpers import REDIS_SERVER, RedisServer

from hubbub.hub.brokers.redis_broker import RedisBroker
from hubbub.hub.brokers.redis_pipeline import RedisPipeline
from hubbub.hub.core.broker import BrokerUnavailable, ClientInfo
from hubbub.hub.core.streams import StreamLimits

pytestmark = [
    pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="redis-server is not installed"),
    pytest.mark.peer,
]


class CountingConnection(Connection):
    """redis-py's connection, counting the writes made on it."""

    writes: ClassVar[list[int]] = []

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.writes.append(len(command))
        await super().send_packed_command(command, check_health)


def make_pool(url: str) -> ConnectionPool:
    return ConnectionPool.from_url(
        url, decode_responses=True, protocol=2, connection_class=CountingConnection
    )


@pytest.fixture
async def pipe(redis_server: RedisServer) -> AsyncIterator[RedisPipeline]:
    """A pipeline on the module's Redis, with the broker's default timeout."""
    pool = make_pool(redis_server.url)
    pipeline = RedisPipeline(pool, timeout=2.0)
    yield pipeline
    await pipeline.close()
    await pool.aclose()


async def test_one_write_per_loop_iteration_and_replies_in_order(pipe: RedisPipeline) -> None:
    await pipe.call("DEL", "pipe:n")
    CountingConnection.writes.clear()
    futures = [pipe.call("INCR", "pipe:n") for _ in range(500)]
    assert await asyncio.gather(*futures) == list(range(1, 501))
    # 500 commands issued in one loop iteration: one write (redis-py may
    # split a large buffer into chunks, but makes one send of them).
    assert len(CountingConnection.writes) == 1
    # Commands issued while a write is in progress leave with the next one.
    CountingConnection.writes.clear()
    first = pipe.call("INCR", "pipe:n")
    await asyncio.sleep(0)
    second = [pipe.call("INCR", "pipe:n") for _ in range(3)]
    assert [await first, *(await asyncio.gather(*second))] == [501, 502, 503, 504]
    assert len(CountingConnection.writes) <= 2


async def test_an_error_reply_fails_its_command_only(pipe: RedisPipeline) -> None:
    await pipe.call("SET", "pipe:s", "text")
    ok1 = pipe.call("GET", "pipe:s")
    bad = pipe.call("INCR", "pipe:s")  # not an integer
    ok2 = pipe.call("ECHO", "after")
    assert await ok1 == "text"
    with pytest.raises(ResponseError):
        await bad
    assert await ok2 == "after"


async def test_a_killed_connection_fails_what_is_outstanding_then_reconnects(
    pipe: RedisPipeline, redis_server: RedisServer
) -> None:
    admin = Redis.from_url(redis_server.url)
    try:
        name = "pipe-kill-me"
        await pipe.call("CLIENT", "SETNAME", name)
        # BLPOP holds the connection's reply for 5 s: the kill finds it outstanding.
        blocked = pipe.call("BLPOP", "pipe:never", 5)
        behind = pipe.call("ECHO", "behind")
        await asyncio.sleep(0.1)
        await admin.client_kill_filter(_type="normal", skipme=True, laddr=None, _id=None)
        with pytest.raises(RedisConnectionError):
            await blocked
        with pytest.raises(RedisConnectionError):
            await behind
        assert await pipe.call("ECHO", "again") == "again"  # a new connection
    finally:
        await admin.aclose()


async def test_a_stalled_redis_fails_the_commands_within_the_timeout(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    pool = make_pool(server.url)
    pipe = RedisPipeline(pool, timeout=0.3)
    try:
        assert await pipe.call("PING") == "PONG"
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)  # alive, connected, silent
        try:
            with pytest.raises(RedisConnectionError, match="no reply"):
                await asyncio.wait_for(pipe.call("PING"), 5.0)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert await pipe.call("PING") == "PONG"
    finally:
        await pipe.close()
        await pool.aclose()
        server.stop()


async def test_a_blocked_event_loop_is_not_a_stalled_redis(redis_server: RedisServer) -> None:
    pool = make_pool(redis_server.url)
    pipe = RedisPipeline(pool, timeout=0.3)
    try:
        assert await pipe.call("PING") == "PONG"
        await asyncio.sleep(0.7)  # the watchdog of the PING has nothing left to watch
        reply = pipe.call("ECHO", "late")
        await asyncio.sleep(0)  # written
        # This loop does nothing else for more than the timeout (a long
        # callback, a starved process): the reply is there, unread, when the
        # watchdog's time has come.
        time.sleep(0.8)
        assert await reply == "late"
    finally:
        await pipe.close()
        await pool.aclose()


async def test_a_closed_pipeline_fails_new_commands(pipe: RedisPipeline) -> None:
    assert await pipe.call("PING") == "PONG"
    await pipe.close()
    with pytest.raises(RedisConnectionError, match="closed"):
        await pipe.call("PING")


@pytest.fixture
async def broker_and_admin(redis_server: RedisServer) -> AsyncIterator[tuple[RedisBroker, Redis]]:
    """A started broker on the module's Redis (a prefix of its own), and a plain client."""
    broker = RedisBroker(redis_server.url, prefix=f"pipe{id(redis_server)}:", timeout=1.0)
    await broker.start()
    admin = Redis.from_url(redis_server.url)
    yield broker, admin
    await broker.close()
    await admin.aclose()


async def test_the_broker_sends_the_scripts_again_after_script_flush(
    broker_and_admin: tuple[RedisBroker, Redis],
) -> None:
    broker, admin = broker_and_admin
    limits = StreamLimits(10, None)
    first = await broker.publish("flush", 1, sender=None, limits=limits)
    await admin.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
    second = await broker.publish("flush", 2, sender=None, limits=limits)
    assert (second.epoch, second.offset) == (first.epoch, first.offset + 1)
    assert [e.data for e in (await broker.read("flush", 0, 10)).entries] == [1, 2]
    assert broker.health()["ok"]


async def test_the_broker_reports_a_dead_redis_and_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    broker = RedisBroker(server.url, timeout=0.5)
    try:
        await broker.start()
        assert await broker.online(["a", "b"]) == set()
        server.kill()
        with pytest.raises(BrokerUnavailable):
            await broker.online(["a"])
        assert not broker.health()["commands"]
        server.start()
        assert await broker.online(["a", "b", "c"]) == set()
        assert broker.health()["commands"]
    finally:
        await broker.close()
        server.stop()


async def test_heartbeats_in_one_batch_load_a_flushed_script_once(
    broker_and_admin: tuple[RedisBroker, Redis],
) -> None:
    broker, admin = broker_and_admin
    conns = [f"c{i}" for i in range(1500)]  # two batches of the heartbeat
    for conn in conns:
        await broker.presence_add("room", ClientInfo("ann", conn, "n1"), ttl=30)
    await admin.flushall()
    await admin.script_flush()  # Redis lost the data and the scripts
    await broker.presence_touch([("room", conn) for conn in conns], ttl=30)
    assert set(await broker.presence("room")) == set(conns)  # healed, all of them
    assert broker.health()["commands"]
