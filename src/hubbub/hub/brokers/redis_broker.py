"""The Redis broker: many hub nodes, one Redis, one hub.

Theory of operation
-------------------

Every node of the hub runs a :class:`RedisBroker` pointed at the same Redis.
What the :class:`~hubbub.hub.core.broker.Broker` interface promises maps onto Redis
as follows (the Lua scripts are in :mod:`hubbub.hub.brokers.redis_scripts`):

* **streams**: a channel's history or a user's inbox is a Redis Stream
  (``hubbub:{NAME}:log``, entry IDs ``OFFSET-0``) next to a hash
  (``hubbub:{NAME}:meta``) holding its epoch and top offset. One Lua script
  checks the epoch, increments the offset, appends, trims by count and age and
  ``PUBLISH``-es the entry, atomically: every node sees the same offsets, and
  the pub/sub order is the offset order. When Redis lost a stream (restarted
  without persistence, or the keys expired) the metadata is missing, and the
  next script that touches the stream creates it with a *new* random epoch, so
  clients holding the old epoch are told recovery is impossible.
* **live fan-out, resets, faults**: one subscriber connection per node, with
  duplicate dropping, epoch checks and reconnection with gap filling; see
  :mod:`hubbub.hub.brokers.redis_subscriber`.
* **presence**: a sorted set per stream (member: connection id, score: expiry
  time) plus a hash of connection infos; ``$online`` also keeps one sorted set
  per user so that :meth:`online` costs one ``ZCOUNT`` per user asked. Any node
  answers; entries of a dead node expire after their TTL. The broker remembers
  the entries its node added, and :meth:`presence_touch` re-adds them: after
  Redis lost its data, presence heals within one heartbeat.
* **acks**: a hash per user inbox (same hash tag), monotonic within an epoch.
* **commands**: every command (publish, read, acks, presence, ``online``, the
  heartbeats and epoch checks of housekeeping) is pipelined on one
  connection, those issued in one loop iteration in one write
  (:mod:`hubbub.hub.brokers.redis_pipeline`); redis-py's pool only opens the
  connections.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ...backoff import Backoff
from ...exceptions import needs_extra
from ..core.broker import ONLINE, Broker, BrokerUnavailable, ClientInfo, Listener, Notice
from ..core.streams import Entry, ReadResult, StreamLimits, new_epoch
from . import redis_scripts as lua
from .redis_pipeline import RedisPipeline
from .redis_subscriber import LIVE_PREFIX, RedisSubscriber

with needs_extra("redis", "the Redis broker (hubbub.hub.brokers.redis_broker)"):
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import NoScriptError, RedisError

__all__ = ["RedisBroker"]

logger = logging.getLogger(__name__)


class RedisBroker(Broker):
    """A broker shared through Redis by every node of the hub.

    The subscriber connection (live fan-out, epoch checks, reconnection) is a
    :class:`~hubbub.hub.brokers.redis_subscriber.RedisSubscriber` the broker
    owns (:attr:`subscriber`), built with the client, the key names, ``read``
    and the command wrapper, and fed the epoch of every command reply.

    Args:
        url: ``redis://HOST:PORT/DB`` (``rediss://`` for TLS, ``unix://`` ...).
        prefix: prefix of every key, so several hubs can share one Redis.
        clock: current time in seconds (entry times and presence expiry).
        idle_ttl: seconds an empty stream is kept (then a new epoch).
        timeout: seconds Redis may stay silent while commands wait for their
            replies before the connection counts as broken (they fail).
        backoff: delays between reconnection attempts of the subscriber.
        max_connections: the size of redis-py's pool, which the broker's own
            commands no longer use (they share one pipelined connection:
            :mod:`~hubbub.hub.brokers.redis_pipeline`); kept for the callers
            that pass it.
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
        # No retries inside redis-py: a failed command raises at once and the
        # node answers 501; reconnection is the next command's business.
        # The pool holds the connection settings (address, TLS, password,
        # database) from which the pipelined and the subscriber connections
        # are opened. Blocking: redis-py's default pool fails a command at
        # once past max_connections (what made a burst of handshakes "broker
        # down" before the commands were pipelined).
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
        self._pipe = RedisPipeline(pool, timeout=timeout)
        self._scripts = {
            name: self._redis.register_script(getattr(lua, name)) for name in lua.__all__
        }
        self._script_texts = {script.sha: script.script for script in self._scripts.values()}
        self._epoch_check = epoch_check
        self._next_epoch_check = 0.0
        self._local_presence: dict[tuple[str, str], ClientInfo] = {}
        self._commands_ok = False
        self._was_down = False
        self._closed = False
        self._started = False
        self.subscriber = RedisSubscriber(
            self._redis,
            key=self._key,
            read=self.read,
            commands=self._commands,
            backoff=backoff or Backoff(initial_delay=0.1, max_delay=5.0),
            safe_url=self._safe_url(),
        )

    @property
    def reconnects(self) -> int:
        """How many times the subscriber connection came back."""
        return self.subscriber.reconnects

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
        if not await self.subscriber.start(5.0):
            logger.warning("redis broker: %s unreachable at start; retrying", self._safe_url())
        await self._ping()

    async def close(self) -> None:
        self._closed = True
        await self.subscriber.close()
        await self._pipe.close()
        await self._redis.aclose()

    async def maintain(self) -> None:
        await self._ping()
        now = time.monotonic()
        if self._commands_ok and now >= self._next_epoch_check:
            self._next_epoch_check = now + self._epoch_check
            with contextlib.suppress(BrokerUnavailable):
                await self.subscriber.check_epochs()

    def health(self) -> dict[str, Any]:
        subscriber = self.subscriber.connected
        return {
            "type": "redis",
            "ok": self._commands_ok and subscriber and not self._closed,
            "commands": self._commands_ok,
            "subscriber": subscriber,
            "streams_subscribed": self.subscriber.streams,
            "reconnects": self.reconnects,
        }

    def _safe_url(self) -> str:
        # Never log a password given in the URL.
        _, sep, tail = self.url.rpartition("@")
        return f"{self.url.split('://')[0]}://***@{tail}" if sep else self.url

    async def _ping(self) -> None:
        with contextlib.suppress(BrokerUnavailable):
            await self._command("PING")

    def _mark(self, ok: bool, why: object = None) -> None:
        if ok != self._commands_ok:
            if ok:
                if self._was_down:
                    logger.warning("redis broker: %s reachable again", self._safe_url())
            else:
                self._was_down = True
                logger.error("redis broker: %s is DOWN (%s)", self._safe_url(), why)
        self._commands_ok = ok

    async def _command(self, *args: Any) -> Any:
        """One command on the pipelined connection.

        A failure marks Redis down (the health check) and raises
        :class:`~hubbub.hub.core.broker.BrokerUnavailable`; a success marks it up.
        """
        if self._closed:
            raise BrokerUnavailable("broker is closed")
        try:
            result = await self._pipe.call(*args)
        except (RedisError, OSError) as exc:
            self._mark(False, exc)
            raise BrokerUnavailable(f"redis: {exc}") from exc
        self._mark(True)
        return result

    async def _commands(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Many commands in one batch of the pipelined connection; their replies.

        Every reply is awaited before a failure is raised (none is left
        unretrieved). A script that Redis does not know (``NOSCRIPT``) is
        loaded once and the commands that needed it are sent again.
        """
        if self._closed:
            raise BrokerUnavailable("broker is closed")
        futures = [self._pipe.call(*command) for command in commands]
        results: list[Any] = []
        again: list[int] = []
        error: Exception | None = None
        for i, future in enumerate(futures):
            try:
                results.append(await future)
            except NoScriptError:
                results.append(None)
                again.append(i)
            except (RedisError, OSError) as exc:
                results.append(None)
                error = error or exc
        if error is None and again:
            for sha in {commands[i][1] for i in again}:
                await self._command("SCRIPT", "LOAD", self._script_texts[sha])
            replies = await self._commands([commands[i] for i in again])
            for i, reply in zip(again, replies, strict=True):
                results[i] = reply
        if error is not None:
            self._mark(False, error)
            raise BrokerUnavailable(f"redis: {error}") from error
        self._mark(True)
        return results

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a Lua script of :mod:`~hubbub.hub.brokers.redis_scripts` by its SHA1.

        A Redis that does not know it (restarted, ``SCRIPT FLUSH``) is sent the
        text once (``EVAL`` also caches it), as redis-py's ``Script`` does.
        """
        script = self._scripts[name]
        if self._closed:
            raise BrokerUnavailable("broker is closed")
        try:
            result = await self._pipe.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._command("EVAL", script.script, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            self._mark(False, exc)
            raise BrokerUnavailable(f"redis: {exc}") from exc
        self._mark(True)
        return result

    # --- live fan-out (the subscriber's) and notices ---------------------------

    async def subscribe(self, stream: str, listener: Listener) -> None:
        await self.subscriber.subscribe(stream, listener)

    async def unsubscribe(self, stream: str, listener: Listener) -> None:
        await self.subscriber.unsubscribe(stream, listener)

    async def check_epochs(self) -> None:
        """Notice the streams Redis lost while nothing was published to them.

        See :meth:`RedisSubscriber.check_epochs`; :meth:`maintain` calls it
        every ``epoch_check`` seconds.
        """
        await self.subscriber.check_epochs()

    async def broadcast(self, stream: str, notice: Notice) -> None:
        payload = json.dumps({"k": notice.kind, "u": notice.user, "c": notice.conn_id})
        await self._command("PUBLISH", LIVE_PREFIX + stream, payload)

    # --- streams --------------------------------------------------------------

    async def publish(
        self, stream: str, data: Any, *, sender: str | None, limits: StreamLimits
    ) -> Entry:
        now = self._clock()
        data_json = json.dumps(data, separators=(",", ":"))
        result = await self._script(
            "PUBLISH",
            (self._key(stream, "meta"), self._key(stream, "log")),
            (
                new_epoch(),
                repr(float(now)),
                data_json,
                json.dumps(sender),
                max(limits.max_len, 0),
                "" if limits.max_age is None else repr(float(limits.max_age)),
                self._idle_ms,
                LIVE_PREFIX + stream,
            ),
        )
        entry = Entry(int(result[0]), str(result[1]), float(repr(float(now))), data, sender)
        self.subscriber.note_epoch(stream, entry.epoch)
        return entry

    async def read(self, stream: str, after: int | None, limit: int) -> ReadResult:
        result = await self._script(
            "READ",
            (self._key(stream, "meta"), self._key(stream, "log")),
            (
                new_epoch(),
                repr(float(self._clock())),
                "" if after is None else int(after),
                max(limit, 0),
                self._idle_ms,
            ),
        )
        epoch, top, complete, raw, newest_first = result
        self.subscriber.note_epoch(stream, str(epoch))
        entries = [_entry(item, epoch) for item in raw]
        if newest_first:
            entries.reverse()
        return ReadResult(str(epoch), int(top), entries, bool(complete))

    # --- presence -------------------------------------------------------------

    def _presence_add_call(
        self, stream: str, info: ClientInfo, ttl: float, touch: bool
    ) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the ``PRESENCE_ADD`` script."""
        text = "" if touch else json.dumps({"u": info.user, "n": info.node})
        keys = [self._key(stream, "presence"), self._key(stream, "info")]
        args = [
            info.conn_id,
            repr(self._clock() + ttl),
            text,
            int(ttl * 1000) + 60_000,  # the keys outlive their entries a little
            self._online_prefix(stream),
            "1" if touch else "0",
        ]
        return keys, args

    async def presence_add(self, stream: str, info: ClientInfo, ttl: float) -> None:
        # Remembered so that a heartbeat can re-add it if Redis lost it.
        self._local_presence[(stream, info.conn_id)] = info
        await self._script("PRESENCE_ADD", *self._presence_add_call(stream, info, ttl, False))

    async def presence_remove(self, stream: str, conn_id: str) -> None:
        self._local_presence.pop((stream, conn_id), None)
        await self._script(
            "PRESENCE_REMOVE",
            (self._key(stream, "presence"), self._key(stream, "info")),
            (conn_id, self._online_prefix(stream)),
        )

    async def presence_touch(self, keys: Sequence[tuple[str, str]], ttl: float) -> None:
        sha = self._scripts["PRESENCE_ADD"].sha
        # In batches of 1,000 commands: one write each, and other requests'
        # commands are not held behind all of a large node's heartbeats.
        for start in range(0, len(keys), 1000):
            commands: list[tuple[Any, ...]] = []
            for stream, conn_id in keys[start : start + 1000]:
                known = self._local_presence.get((stream, conn_id))
                if known is None:  # not added here: refresh only if present
                    info, touch = ClientInfo("", conn_id, ""), True
                else:  # re-add: heals presence after Redis lost its data
                    info, touch = known, False
                names, args = self._presence_add_call(stream, info, ttl, touch)
                commands.append(("EVALSHA", sha, len(names), *names, *args))
            await self._commands(commands)

    async def presence(self, stream: str) -> dict[str, ClientInfo]:
        flat = await self._script(
            "PRESENCE",
            (self._key(stream, "presence"), self._key(stream, "info")),
            (repr(self._clock()), self._online_prefix(stream)),
        )
        result: dict[str, ClientInfo] = {}
        for i in range(0, len(flat), 2):
            raw = json.loads(flat[i + 1])
            result[flat[i]] = ClientInfo(raw["u"], flat[i], raw["n"])
        return result

    async def online(self, users: Iterable[str]) -> set[str]:
        users = list(users)
        if not users:
            await self._command("PING")
            return set()
        now = f"({self._clock()!r}"
        if len(users) == 1:  # the usual send: one command, no script
            count = await self._command(
                "ZCOUNT", self._key(f"{ONLINE}:{users[0]}", "conns"), now, "+inf"
            )
            return set(users) if int(count) > 0 else set()
        counts = await self._script(
            "ONLINE", [self._key(f"{ONLINE}:{user}", "conns") for user in users], (now,)
        )
        return {user for user, count in zip(users, counts, strict=True) if int(count) > 0}

    # --- acks -----------------------------------------------------------------

    async def get_ack(self, user: str) -> tuple[int, str] | None:
        raw = await self._command("HMGET", self._ack_key(user), "o", "e")
        if raw[0] is None:
            return None
        return int(raw[0]), str(raw[1])

    async def set_ack(self, user: str, offset: int, epoch: str) -> tuple[int, str]:
        raw = await self._script("ACK", (self._ack_key(user),), (int(offset), epoch))
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
