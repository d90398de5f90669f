"""The subscriber side of the Redis broker: live fan-out, resets and faults.

:class:`RedisSubscriber` is owned by a
:class:`hubbub.hub.brokers.redis_broker.RedisBroker`, which builds it with what it
needs of the broker (the Redis client, the key names, ``read`` and the command
wrapper) and starts and closes it. It owns the node's one pub/sub connection to
Redis and everything that turns what arrives there into ordered, deduplicated
listener calls: the listeners, subscribing, decoding live messages, noticing a
stream's new epoch, and reconnecting. The commands (publish, read, presence,
acks), the connection pool and the broker's life cycle stay in
``redis_broker.py``. The subscriber is an object of its own because it runs on
its own, driven by what Redis pushes, while the commands are request and reply;
the two meet in ``read`` (used here for gap fills and subscription floors) and
in :meth:`RedisSubscriber.note_epoch`, which every command reply feeds.

Theory of operation
-------------------

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
  the listeners a :class:`~hubbub.hub.core.broker.Reset` before any entry of the new
  epoch, and from then on drops late entries of the lost epoch (a publish that
  ran before the loss can reach the subscriber connection after a read on
  another connection saw the new epoch). Each node does this for its own
  listeners, so every connected client of the hub is told.
* **faults**: when the subscriber connection breaks (Redis died), the reader
  reconnects with exponential backoff and full jitter
  (:class:`hubbub.backoff.Backoff`), subscribes again, and *fills the gap*:
  it reads each stream after the last offset it delivered and hands the
  missed entries to the listeners before any new live one. Commands meanwhile
  raise :class:`~hubbub.hub.core.broker.BrokerUnavailable` (clients get error 501;
  the node keeps serving its connections) and :meth:`health` says ``ok:
  false`` (``/healthz`` answers 503). State changes are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ...backoff import Backoff
from ...exceptions import needs_extra
from ..core.broker import BrokerUnavailable, Listener, Notice, Reset
from ..core.streams import Entry, ReadResult

with needs_extra("redis", "the Redis broker (hubbub.hub.brokers.redis_broker)"):
    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection
    from redis.exceptions import RedisError

__all__ = ["LIVE_PREFIX", "RedisSubscriber"]

# The broker's logger, whichever half of it logs.
logger = logging.getLogger("hubbub.hub.brokers.redis_broker")

LIVE_PREFIX = "hubbub:live:"


class RedisSubscriber:
    """The pub/sub connection of a :class:`~hubbub.hub.brokers.redis_broker.RedisBroker`.

    Args:
        redis: the broker's client: its pool's settings open the subscriber
            connection.
        key: the broker's Redis key of a stream's part (``meta``, ``log``).
        read: the broker's :meth:`~hubbub.hub.core.broker.Broker.read`.
        commands: runs many commands in one batch of the broker's pipelined
            connection and returns their replies (failures become
            :class:`~hubbub.hub.core.broker.BrokerUnavailable`).
        backoff: delays between reconnection attempts.
        safe_url: the Redis URL without its password, for the logs.

    Attributes:
        reconnects: how many times the subscriber connection came back.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        key: Callable[[str, str], str],
        read: Callable[[str, int | None, int], Awaitable[ReadResult]],
        commands: Callable[[list[tuple[Any, ...]]], Awaitable[list[Any]]],
        backoff: Backoff,
        safe_url: str,
    ) -> None:
        self._redis = redis
        self._key = key
        self._read = read
        self._commands = commands
        self._backoff = backoff
        self._safe_url = safe_url
        self._listeners: dict[str, list[Listener]] = {}
        self._seen: dict[str, tuple[str, int]] = {}  # last (epoch, offset) delivered
        self._floor: dict[str, tuple[str, int]] = {}  # (epoch, top) when subscribed
        self._retired: dict[str, set[str]] = {}  # epochs of a stream known lost
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._sub: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """Whether the subscriber connection is up."""
        return self._sub is not None

    @property
    def streams(self) -> int:
        """How many streams have listeners here."""
        return len(self._listeners)

    # --- life cycle -------------------------------------------------------------

    async def start(self, timeout: float) -> bool:
        """Start the reader task; whether it connected within ``timeout`` seconds.

        If not, it keeps trying in the background.
        """
        connected = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._run(connected))
        try:
            await asyncio.wait_for(asyncio.shield(connected), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop the reader task and drop the connection."""
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._drop_sub()

    # --- epochs -----------------------------------------------------------------

    async def check_epochs(self) -> None:
        """Notice the streams Redis lost while nothing was published to them.

        One pipelined ``HGET`` per stream listened to; a stream whose epoch is
        missing or new is read, which creates it again if needed and hands its
        listeners a :class:`~hubbub.hub.core.broker.Reset`.
        """
        streams = [s for s in self._listeners if self._position(s) is not None]
        for start in range(0, len(streams), 500):
            chunk = streams[start : start + 500]
            epochs = await self._commands(
                [("HGET", self._key(stream, "meta"), "epoch") for stream in chunk]
            )
            for stream, epoch in zip(chunk, epochs, strict=True):
                position = self._position(stream)
                if position is not None and epoch != position[0]:
                    await self._read(stream, None, 0)  # notes the new epoch

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
                        self._safe_url,
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
        read = await self._read(stream, seen[1], 100_000)
        if read.epoch != seen[0]:
            # Redis lost the stream: what was missed cannot be read back. The
            # read handed the listeners a Reset; the new epoch follows in full.
            read = await self._read(stream, 0, 100_000)
        for entry in read.entries:
            self._dispatch(stream, entry)

    def _position(self, stream: str) -> tuple[str, int] | None:
        """The (epoch, offset) of the last entry delivered, or the top when subscribed."""
        return self._seen.get(stream) or self._floor.get(stream)

    def note_epoch(self, stream: str, epoch: str) -> None:
        """A command's reply showed ``epoch``, the stream's current one.

        The broker calls this with every reply that carries an epoch, so that a
        lost stream is noticed wherever it shows first (a Reset to the listeners).
        """
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
        """Hand ``listener`` every item of ``stream`` (:meth:`Broker.subscribe`)."""
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
            top = await self._read(stream, None, 0)
            self._floor.setdefault(stream, (top.epoch, top.offset))
        except (RedisError, OSError, TimeoutError) as exc:
            await self.unsubscribe(stream, listener)
            raise BrokerUnavailable(f"redis subscribe failed: {exc}") from exc
        except BrokerUnavailable:
            await self.unsubscribe(stream, listener)
            raise

    async def unsubscribe(self, stream: str, listener: Listener) -> None:
        """Stop handing ``listener`` the items of ``stream``."""
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
