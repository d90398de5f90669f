"""The Redis broker: many hub nodes, one Redis, one hub.

Theory of operation
-------------------

Every node of the hub runs a :class:`RedisBroker` pointed at the same Redis.
What the :class:`~hubbub.hub.broker.Broker` interface promises maps onto Redis
as follows (the Lua scripts are in :mod:`hubbub.hub.redis_scripts`):

* **streams**: a channel's history or a user's inbox is a Redis Stream
  (``hubbub:{NAME}:log``, entry IDs ``OFFSET-0``) next to a hash
  (``hubbub:{NAME}:meta``) holding its epoch and top offset. One Lua script
  checks the epoch, increments the offset, appends, trims by count and age and
  ``PUBLISH``-es the entry, atomically: every node sees the same offsets, and
  the pub/sub order is the offset order. When Redis lost a stream (restarted
  without persistence, or the keys expired) the metadata is missing, and the
  next script that touches the stream creates it with a *new* random epoch, so
  clients holding the old epoch are told recovery is impossible.
* **live fan-out**: each node has ONE subscriber connection (Redis pub/sub,
  channel ``hubbub:live:NAME`` per stream); :meth:`subscribe` returns after
  Redis confirmed the ``SUBSCRIBE``, so nothing published afterwards is missed.
  A reader task hands every message to the listeners, in order, and remembers
  the last (epoch, offset) delivered per stream: duplicates are dropped.
* **resets**: the node compares the epoch of every stream it listens to with
  the epoch last delivered (or seen when it subscribed) wherever a new one can
  show up: a live entry, the result of a publish or a read, the gap fill after
  a reconnection, and a pipelined ``HGET`` of the epochs every ``epoch_check``
  seconds (for a ``FLUSHALL`` nobody published after). On a difference it hands
  the listeners a :class:`~hubbub.hub.broker.Reset` before any entry of the new
  epoch, and from then on drops late entries of the lost epoch (a publish that
  ran before the loss can reach the subscriber connection after a read on
  another connection saw the new epoch). Each node does this for its own
  listeners, so every connected client of the hub is told.
* **faults**: when the subscriber connection breaks (Redis died), the reader
  reconnects with exponential backoff and full jitter
  (:class:`hubbub.backoff.Backoff`), subscribes again, and *fills the gap*:
  it reads each stream after the last offset it delivered and hands the
  missed entries to the listeners before any new live one. Commands meanwhile
  raise :class:`~hubbub.hub.broker.BrokerUnavailable` (clients get error 501;
  the node keeps serving its connections) and :meth:`health` says ``ok:
  false`` (``/healthz`` answers 503). State changes are logged.
* **presence**: a sorted set per stream (member: connection id, score: expiry
  time) plus a hash of connection infos; ``$online`` also keeps one sorted set
  per user so that :meth:`online` costs one ``ZCOUNT`` per user asked. Any node
  answers; entries of a dead node expire after their TTL. The broker remembers
  the entries its node added, and :meth:`presence_touch` re-adds them: after
  Redis lost its data, presence heals within one heartbeat.
* **acks**: a hash per user inbox (same hash tag), monotonic within an epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..backoff import Backoff
from . import redis_scripts as lua
from .broker import ONLINE, Broker, BrokerUnavailable, ClientInfo, Listener, Notice, Reset
from .streams import Entry, ReadResult, StreamLimits, new_epoch

__all__ = ["RedisBroker"]

logger = logging.getLogger(__name__)

LIVE_PREFIX = "hubbub:live:"


class RedisBroker(Broker):
    """A broker shared through Redis by every node of the hub.

    Args:
        url: ``redis://HOST:PORT/DB`` (``rediss://`` for TLS, ``unix://`` ...).
        prefix: prefix of every key, so several hubs can share one Redis.
        clock: current time in seconds (entry times and presence expiry).
        idle_ttl: seconds an empty stream is kept (then a new epoch).
        timeout: seconds before a Redis command counts as failed.
        backoff: delays between reconnection attempts of the subscriber.
        max_connections: Redis connections for commands; more concurrent
            commands wait up to ``timeout`` for one.
        epoch_check: seconds between two checks (from :meth:`maintain`) that
            the streams this node listens to still have the epoch it delivered.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "hubbub:",
        clock: Callable[[], float] = time.time,
        idle_ttl: float = 3600.0,
        timeout: float = 2.0,
        backoff: Backoff | None = None,
        max_connections: int = 64,
        epoch_check: float = 5.0,
    ) -> None:
        self.url = url
        self._prefix = prefix
        self._clock = clock
        self._idle_ms = int(idle_ttl * 1000)
        self._backoff = backoff or Backoff(initial_delay=0.1, max_delay=5.0)
        # No retries inside redis-py: a failed command raises at once and the
        # node answers 501; reconnection is the next command's business.
        # A blocking pool: past max_connections commands wait (up to timeout)
        # for a free connection. redis-py's default pool fails them at once,
        # which turned a burst of handshakes (a reconnection storm after a node
        # died) into "broker down" and error 501 for everyone.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            decode_responses=True,
            # RESP2: pub/sub messages are ordinary replies of the subscriber
            # connection (RESP3 would route them to a push handler).
            protocol=2,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        self._scripts = {
            name: self._redis.register_script(getattr(lua, name))
            for name in ("PUBLISH", "READ", "ACK", "PRESENCE_ADD", "PRESENCE_REMOVE", "PRESENCE")
        }
        self._listeners: dict[str, list[Listener]] = {}
        self._seen: dict[str, tuple[str, int]] = {}  # last (epoch, offset) delivered
        self._floor: dict[str, tuple[str, int]] = {}  # (epoch, top) when subscribed
        self._retired: dict[str, set[str]] = {}  # epochs of a stream known lost
        self._epoch_check = epoch_check
        self._next_epoch_check = 0.0
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._local_presence: dict[tuple[str, str], ClientInfo] = {}
        self._sub: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._commands_ok = False
        self._was_down = False
        self._closed = False
        self._started = False
        self.reconnects = 0

    # --- keys -----------------------------------------------------------------

    def _key(self, stream: str, part: str) -> str:
        # The {stream} hash tag keeps a stream's keys in one Cluster slot.
        return f"{self._prefix}{{{stream}}}:{part}"

    def _online_prefix(self, stream: str) -> str:
        return self._prefix if stream == ONLINE else ""

    # --- life cycle -----------------------------------------------------------

    async def start(self) -> None:
        """Connect; if Redis is down, keep trying in the background."""
        if self._started:
            return
        self._started = True
        connected = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._run(connected))
        try:
            await asyncio.wait_for(asyncio.shield(connected), 5.0)
        except TimeoutError:
            logger.warning("redis broker: %s unreachable at start; retrying", self._safe_url())
        await self._ping()

    async def close(self) -> None:
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._drop_sub()
        await self._redis.aclose()

    async def maintain(self) -> None:
        await self._ping()
        now = time.monotonic()
        if self._commands_ok and now >= self._next_epoch_check:
            self._next_epoch_check = now + self._epoch_check
            with contextlib.suppress(BrokerUnavailable):
                await self.check_epochs()

    async def check_epochs(self) -> None:
        """Notice the streams Redis lost while nothing was published to them.

        One pipelined ``HGET`` per stream listened to; a stream whose epoch is
        missing or new is read, which creates it again if needed and hands its
        listeners a :class:`~hubbub.hub.broker.Reset`.
        """
        streams = [s for s in self._listeners if self._position(s) is not None]
        for start in range(0, len(streams), 500):
            chunk = streams[start : start + 500]
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in chunk:
                    pipe.hget(self._key(stream, "meta"), "epoch")
                epochs = await self._call(pipe.execute())
            for stream, epoch in zip(chunk, epochs, strict=True):
                position = self._position(stream)
                if position is not None and epoch != position[0]:
                    await self.read(stream, None, 0)  # notes the new epoch

    def health(self) -> dict[str, Any]:
        subscriber = self._sub is not None
        return {
            "type": "redis",
            "ok": self._commands_ok and subscriber and not self._closed,
            "commands": self._commands_ok,
            "subscriber": subscriber,
            "streams_subscribed": len(self._listeners),
            "reconnects": self.reconnects,
        }

    def _safe_url(self) -> str:
        # Never log a password given in the URL.
        _, sep, tail = self.url.rpartition("@")
        return f"{self.url.split('://')[0]}://***@{tail}" if sep else self.url

    async def _ping(self) -> None:
        with contextlib.suppress(BrokerUnavailable):
            await self._call(self._redis.ping())

    def _mark(self, ok: bool, why: object = None) -> None:
        if ok != self._commands_ok:
            if ok:
                if self._was_down:
                    logger.warning("redis broker: %s reachable again", self._safe_url())
            else:
                self._was_down = True
                logger.error("redis broker: %s is DOWN (%s)", self._safe_url(), why)
        self._commands_ok = ok

    async def _call(self, awaitable: Any) -> Any:
        """Await a Redis command; turn a connection failure into BrokerUnavailable."""
        if self._closed:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never awaited: say so to nobody
            raise BrokerUnavailable("broker is closed")
        try:
            result = await awaitable
        except (RedisError, OSError) as exc:
            self._mark(False, exc)
            raise BrokerUnavailable(f"redis: {exc}") from exc
        self._mark(True)
        return result

    # --- subscriber connection --------------------------------------------------

    async def _run(self, connected: asyncio.Future[None]) -> None:
        """Keep one subscriber connection alive and dispatch what it receives."""
        attempt = 0
        while not self._closed:
            try:
                await self._connect_sub()
            except (RedisError, OSError, BrokerUnavailable) as exc:
                delay = self._backoff.delay(attempt)
                attempt += 1
                logger.warning(
                    "redis broker: subscriber cannot connect (%s); retry in %.2fs", exc, delay
                )
                await asyncio.sleep(delay)
                continue
            if connected.done():
                self.reconnects += 1
                logger.warning("redis broker: subscriber reconnected")
            attempt = 0
            if not connected.done():
                connected.set_result(None)
            try:
                await self._read_loop()
            except (RedisError, OSError) as exc:
                if not self._closed:
                    logger.error(
                        "redis broker: %s is DOWN (subscriber connection lost: %s)",
                        self._safe_url(),
                        exc,
                    )
            await self._drop_sub()

    async def _connect_sub(self) -> None:
        pool = self._redis.connection_pool
        kwargs = {**pool.connection_kwargs, "socket_timeout": None}
        conn = pool.connection_class(**kwargs)
        try:
            await conn.connect()  # type: ignore[no-untyped-call]
            streams = list(self._listeners)
            held: list[Any] = []
            if streams:
                await conn.send_command("SUBSCRIBE", *[LIVE_PREFIX + s for s in streams])
                # Messages of channels already confirmed may come between the
                # confirmations: hold them until the gap is filled.
                confirmed = 0
                while confirmed < len(streams):
                    message = await conn.read_response(timeout=math.inf)
                    if isinstance(message, list) and message and message[0] == "subscribe":
                        confirmed += 1
                    else:
                        held.append(message)
            # Fill the gap left while disconnected, before any newer live
            # message is handed over (this task is the only reader).
            for stream in streams:
                await self._fill_gap(stream)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.disconnect()
            raise
        self._sub = conn
        for message in held:
            self._handle(message)

    async def _fill_gap(self, stream: str) -> None:
        # From the last entry delivered, or else from the top the stream had
        # when this node subscribed to it.
        seen = self._position(stream)
        if seen is None or stream not in self._listeners:
            return
        read = await self.read(stream, seen[1], 100_000)
        if read.epoch != seen[0]:
            # Redis lost the stream: what was missed cannot be read back. The
            # read handed the listeners a Reset; the new epoch follows in full.
            read = await self.read(stream, 0, 100_000)
        for entry in read.entries:
            self._dispatch(stream, entry)

    def _position(self, stream: str) -> tuple[str, int] | None:
        """The (epoch, offset) of the last entry delivered, or the top when subscribed."""
        return self._seen.get(stream) or self._floor.get(stream)

    def _note_epoch(self, stream: str, epoch: str) -> None:
        """A command's reply showed ``epoch``, the stream's current one."""
        position = self._position(stream)
        if position is not None and position[0] != epoch and stream in self._listeners:
            # Offset 0: whatever the new epoch holds is still to come, live or by
            # the gap fill, and passes the duplicate check.
            self._reset(stream, epoch, 0)

    def _reset(self, stream: str, epoch: str, offset: int) -> None:
        position = self._position(stream)
        retired = self._retired.setdefault(stream, set())
        if position is not None:
            retired.add(position[0])
        retired.discard(epoch)  # back from a backup: current again
        logger.warning("redis broker: %s has a new epoch %s: its data was lost", stream, epoch)
        self._seen[stream] = (epoch, offset)
        self._deliver(stream, Reset(epoch, offset))

    async def _drop_sub(self) -> None:
        conn, self._sub = self._sub, None
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    # The subscriber checks whether its connection survived.
                    waiter.set_result(None)
        self._waiters.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.disconnect()

    async def _read_loop(self) -> None:
        conn = self._sub
        assert conn is not None
        while True:
            message = await conn.read_response(timeout=math.inf)
            if isinstance(message, Exception):
                raise message
            self._handle(message)

    def _handle(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) < 3:
            return
        kind, channel = message[0], message[1]
        stream = channel[len(LIVE_PREFIX) :]
        if kind == "message":
            self._on_message(stream, message[2])
        elif kind == "subscribe":
            waiters = self._waiters.get(stream)
            if waiters:
                waiter = waiters.popleft()
                if not waiters:
                    del self._waiters[stream]
                if not waiter.done():
                    waiter.set_result(None)

    def _on_message(self, stream: str, payload: str) -> None:
        try:
            raw = json.loads(payload)
            if "k" in raw:
                item: Entry | Notice = Notice(raw["k"], raw["u"], raw["c"])
            else:
                item = Entry(int(raw["o"]), raw["e"], float(raw["t"]), raw["d"], raw["s"])
        except (ValueError, KeyError, TypeError):
            logger.exception("redis broker: bad message on %s", stream)
            return
        self._dispatch(stream, item)

    def _dispatch(self, stream: str, item: Entry | Notice) -> None:
        if isinstance(item, Entry):
            seen = self._seen.get(stream)
            if seen is not None and seen[0] == item.epoch:
                if item.offset <= seen[1]:
                    return  # delivered already (a gap fill overlapping the live feed)
            else:
                position = seen or self._floor.get(stream)
                if position is not None and position[0] != item.epoch:
                    retired = self._retired.get(stream)
                    if retired is not None and item.epoch in retired:
                        return  # published before the loss, arriving after the Reset
                    # The entries of the new epoch before this one were never
                    # published while we listened: delivery continues from here.
                    self._reset(stream, item.epoch, item.offset - 1)
            self._seen[stream] = (item.epoch, item.offset)
        self._deliver(stream, item)

    def _deliver(self, stream: str, item: Entry | Notice | Reset) -> None:
        for listener in list(self._listeners.get(stream, ())):
            try:
                listener(stream, item)
            except Exception:  # a broken listener must not break the others
                logger.exception("broker listener failed on %s", stream)

    # --- live fan-out ---------------------------------------------------------

    async def subscribe(self, stream: str, listener: Listener) -> None:
        listeners = self._listeners.get(stream)
        if listeners is not None:
            if listener not in listeners:
                listeners.append(listener)
            waiters = self._waiters.get(stream)
            if waiters:  # another caller's SUBSCRIBE is not confirmed yet
                await asyncio.shield(waiters[-1])
            return
        conn = self._sub
        if conn is None or self._closed:
            raise BrokerUnavailable("redis subscriber is not connected")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(stream, deque()).append(waiter)
        self._listeners[stream] = [listener]
        try:
            await conn.send_command("SUBSCRIBE", LIVE_PREFIX + stream)
            await asyncio.wait_for(asyncio.shield(waiter), 5.0)
            if self._sub is not conn:
                raise OSError("redis subscriber lost")
            # Where a gap fill would start if the subscriber connection broke
            # before any entry of this stream arrived.
            top = await self.read(stream, None, 0)
            self._floor.setdefault(stream, (top.epoch, top.offset))
        except (RedisError, OSError, TimeoutError) as exc:
            await self.unsubscribe(stream, listener)
            raise BrokerUnavailable(f"redis subscribe failed: {exc}") from exc
        except BrokerUnavailable:
            await self.unsubscribe(stream, listener)
            raise

    async def unsubscribe(self, stream: str, listener: Listener) -> None:
        listeners = self._listeners.get(stream)
        if not listeners or listener not in listeners:
            return
        listeners.remove(listener)
        if listeners:
            return
        del self._listeners[stream]
        self._seen.pop(stream, None)
        self._floor.pop(stream, None)
        self._retired.pop(stream, None)
        conn = self._sub
        if conn is not None:
            with contextlib.suppress(RedisError, OSError):
                await conn.send_command("UNSUBSCRIBE", LIVE_PREFIX + stream)

    async def broadcast(self, stream: str, notice: Notice) -> None:
        payload = json.dumps({"k": notice.kind, "u": notice.user, "c": notice.conn_id})
        await self._call(self._redis.publish(LIVE_PREFIX + stream, payload))

    # --- streams --------------------------------------------------------------

    async def publish(
        self, stream: str, data: Any, *, sender: str | None, limits: StreamLimits
    ) -> Entry:
        now = self._clock()
        data_json = json.dumps(data, separators=(",", ":"))
        result = await self._call(
            self._scripts["PUBLISH"](
                keys=[self._key(stream, "meta"), self._key(stream, "log")],
                args=[
                    new_epoch(),
                    repr(float(now)),
                    data_json,
                    json.dumps(sender),
                    max(limits.max_len, 0),
                    "" if limits.max_age is None else repr(float(limits.max_age)),
                    self._idle_ms,
                    LIVE_PREFIX + stream,
                ],
            )
        )
        entry = Entry(int(result[0]), str(result[1]), float(repr(float(now))), data, sender)
        self._note_epoch(stream, entry.epoch)
        return entry

    async def read(self, stream: str, after: int | None, limit: int) -> ReadResult:
        result = await self._call(
            self._scripts["READ"](
                keys=[self._key(stream, "meta"), self._key(stream, "log")],
                args=[
                    new_epoch(),
                    repr(float(self._clock())),
                    "" if after is None else int(after),
                    max(limit, 0),
                    self._idle_ms,
                ],
            )
        )
        epoch, top, complete, raw, newest_first = result
        self._note_epoch(stream, str(epoch))
        entries = [_entry(item, epoch) for item in raw]
        if newest_first:
            entries.reverse()
        return ReadResult(str(epoch), int(top), entries, bool(complete))

    # --- presence -------------------------------------------------------------

    def _presence_call(
        self, stream: str, info: ClientInfo, ttl: float, touch: bool, client: Any = None
    ) -> Any:
        text = "" if touch else json.dumps({"u": info.user, "n": info.node})
        return self._scripts["PRESENCE_ADD"](
            keys=[self._key(stream, "presence"), self._key(stream, "info")],
            args=[
                info.conn_id,
                repr(self._clock() + ttl),
                text,
                int(ttl * 1000) + 60_000,  # the keys outlive their entries a little
                self._online_prefix(stream),
                "1" if touch else "0",
            ],
            client=client,
        )

    async def presence_add(self, stream: str, info: ClientInfo, ttl: float) -> None:
        # Remembered so that a heartbeat can re-add it if Redis lost it.
        self._local_presence[(stream, info.conn_id)] = info
        await self._call(self._presence_call(stream, info, ttl, touch=False))

    async def presence_remove(self, stream: str, conn_id: str) -> None:
        self._local_presence.pop((stream, conn_id), None)
        await self._call(
            self._scripts["PRESENCE_REMOVE"](
                keys=[self._key(stream, "presence"), self._key(stream, "info")],
                args=[conn_id, self._online_prefix(stream)],
            )
        )

    async def presence_touch(self, keys: Sequence[tuple[str, str]], ttl: float) -> None:
        for start in range(0, len(keys), 500):
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream, conn_id in keys[start : start + 500]:
                    known = self._local_presence.get((stream, conn_id))
                    if known is None:  # not added here: refresh only if present
                        info, touch = ClientInfo("", conn_id, ""), True
                    else:  # re-add: heals presence after Redis lost its data
                        info, touch = known, False
                    # Queues the EVALSHA in the pipeline (nothing is sent yet).
                    await self._presence_call(stream, info, ttl, touch, client=pipe)
                await self._call(pipe.execute())

    async def presence(self, stream: str) -> dict[str, ClientInfo]:
        flat = await self._call(
            self._scripts["PRESENCE"](
                keys=[self._key(stream, "presence"), self._key(stream, "info")],
                args=[repr(self._clock()), self._online_prefix(stream)],
            )
        )
        result: dict[str, ClientInfo] = {}
        for i in range(0, len(flat), 2):
            raw = json.loads(flat[i + 1])
            result[flat[i]] = ClientInfo(raw["u"], flat[i], raw["n"])
        return result

    async def online(self, users: Iterable[str]) -> set[str]:
        users = list(users)
        if not users:
            await self._call(self._redis.ping())
            return set()
        now = f"({self._clock()!r}"
        async with self._redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.zcount(self._key(f"{ONLINE}:{user}", "conns"), now, "+inf")
            counts = await self._call(pipe.execute())
        return {user for user, count in zip(users, counts, strict=True) if int(count) > 0}

    # --- acks -----------------------------------------------------------------

    async def get_ack(self, user: str) -> tuple[int, str] | None:
        raw = await self._call(self._redis.hmget(self._ack_key(user), ["o", "e"]))
        if raw[0] is None:
            return None
        return int(raw[0]), str(raw[1])

    async def set_ack(self, user: str, offset: int, epoch: str) -> tuple[int, str]:
        raw = await self._call(
            self._scripts["ACK"](keys=[self._ack_key(user)], args=[int(offset), epoch])
        )
        return int(raw[0]), str(raw[1])

    def _ack_key(self, user: str) -> str:
        # Same hash tag as the inbox stream ($inbox:USER).
        return self._key(f"$inbox:{user}", "ack")


def _entry(item: Any, epoch: str) -> Entry:
    """An Entry from an XRANGE item ``[id, [field, value, ...]]``."""
    ident, kv = item
    fields = dict(zip(kv[::2], kv[1::2], strict=True))
    offset = int(str(ident).split("-", 1)[0])
    return Entry(
        offset, epoch, float(fields["t"]), json.loads(fields["d"]), json.loads(fields["s"])
    )
