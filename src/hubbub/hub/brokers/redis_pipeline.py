"""Automatic pipelining for the Redis broker: one connection, one write per loop iteration.

Theory of operation
-------------------

redis-py runs each command on a connection taken from its pool: one write,
one wait for the reply, the connection handed back, and around it a timeout
context per read and a task per write (``asyncio.wait_for``). A hub node
answering thousands of requests per second issues its commands concurrently,
from many requests in flight at once, and paid all of that for each of them:
the Redis direct path cost 3.5 times the in-memory broker's hub CPU per
message (docs/hub-performance.md).

:class:`RedisPipeline` owns one connection to Redis (opened with the pool's
settings: address, TLS, password, database) and sends every command on it
without waiting for the replies of those before (RESP is pipelined: Redis
answers in the order it received). :meth:`RedisPipeline.call` queues the
command and returns a future; the writer task sends everything queued since
it last ran in **one** write, so the commands issued during one loop
iteration, by however many requests, leave together. The reader task reads
the replies as they come (hiredis parses a whole read's worth at once) and
resolves the futures in order; hiredis packs the commands and parses the
replies, in C. At a low rate a batch holds one command and
a command costs one write and one read, as before, but without the pool, the
per-read timeout context and the per-write task.

* **Errors** in a reply (a Lua error, ``NOSCRIPT``) fail that command only.
* **A broken connection** fails every command sent on it and not yet
  answered, and those queued; the next :meth:`call` opens a new connection.
  A command may thus have run in Redis and still be reported failed, as with
  any client: callers turn the failure into
  :class:`~hubbub.hub.core.broker.BrokerUnavailable` and clients retry.
* **A stalled Redis**: when commands are outstanding and no reply arrived for
  ``timeout`` seconds, the connection counts as broken (one timer per
  ``timeout`` seconds, not one per command). A check that runs late (this
  event loop was blocked) looks again shortly instead: the replies may be
  waiting, unread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from ...exceptions import needs_extra

with needs_extra("redis", "the Redis broker (hubbub.hub.brokers.redis_broker)"):
    from redis.asyncio import ConnectionPool
    from redis.asyncio.connection import AbstractConnection
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError, ResponseError

pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    # C: redis-py's packer encodes each argument in Python, 8 times the cost
    # of a script call's packing (the redis extra installs hiredis).
    from hiredis import pack_command as _hiredis_pack

    pack_command = _hiredis_pack
except ImportError:  # pragma: no cover - redis-py's own packer then
    pack_command = None

__all__ = ["RedisPipeline"]

# Seconds a watchdog check may run after its time before it counts as late.
_LATE = 0.25


class _Link:
    """One connection's state: what to write, what awaits a reply, its tasks.

    A broken link fails all of its own commands and is forgotten; commands
    issued afterwards go to a new link, which a late step of the old one's
    tasks cannot touch.
    """

    __slots__ = ("queue", "replies", "sent", "wake", "watchdog", "writer")

    def __init__(self) -> None:
        # Commands not written yet, and the futures of those written and not
        # answered, in the order they were written (the order of the replies).
        self.queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self.sent: deque[asyncio.Future[Any]] = deque()
        self.wake: asyncio.Future[None] | None = None  # the writer's, while idle
        self.writer: asyncio.Task[None] | None = None
        self.replies = 0  # replies read so far: the watchdog's progress mark
        self.watchdog: asyncio.TimerHandle | None = None


class RedisPipeline:
    """One connection on which concurrent commands are pipelined (module docstring).

    Args:
        pool: the broker's pool; its settings open the connection (which is
            not taken from the pool: it is this object's own).
        timeout: seconds Redis may take to send the next reply while commands
            are outstanding before the connection counts as broken.
    """

    def __init__(self, pool: ConnectionPool, *, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._link: _Link | None = None
        self._closed = False

    def call(self, *args: Any) -> asyncio.Future[Any]:
        """Queue one command (``"EVALSHA", sha, ...``); its future is the reply.

        The future fails with the :class:`redis.exceptions.ResponseError` of an
        error reply, or with a :class:`redis.exceptions.ConnectionError` when
        the connection broke before the reply came.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed:
            future.set_exception(RedisConnectionError("the pipeline is closed"))
            return future
        link = self._link
        if link is None:
            link = self._link = _Link()
            link.writer = loop.create_task(self._write_loop(link))
        link.queue.append((args, future))
        wake = link.wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        return future

    async def close(self) -> None:
        """Fail what is outstanding and close the connection."""
        self._closed = True
        link = self._link
        if link is not None:
            self._break(link, RedisConnectionError("the pipeline is closed"))
            if link.writer is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await link.writer

    # --- the connection's two tasks ---------------------------------------------

    async def _open(self) -> AbstractConnection:
        # No socket timeout: reads wait for as long as the watchdog allows, and
        # redis-py would otherwise wrap every read in a timeout context and
        # every write in a task.
        kwargs = {**self._pool.connection_kwargs, "socket_timeout": None}
        conn: AbstractConnection = self._pool.connection_class(**kwargs)
        try:
            await asyncio.wait_for(conn.connect(), self._timeout)  # type: ignore[no-untyped-call]
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.disconnect()
            raise
        return conn

    async def _write_loop(self, link: _Link) -> None:
        conn: AbstractConnection | None = None
        reader: asyncio.Task[None] | None = None
        error: Exception = RedisConnectionError("redis connection closed")
        try:
            conn = await self._open()
            reader = asyncio.create_task(self._read_loop(link, conn))
            loop = asyncio.get_running_loop()
            while True:
                if not link.queue:
                    link.wake = loop.create_future()
                    await link.wake
                    link.wake = None
                    continue
                batch, link.queue = link.queue, []
                commands = []
                for args, future in batch:
                    link.sent.append(future)
                    commands.append(args)
                if link.watchdog is None:
                    self._arm_watchdog(link)
                if pack_command is not None:
                    packed: Any = b"".join([pack_command(args) for args in commands])
                else:
                    packed = conn.pack_commands(commands)
                await conn.send_packed_command(packed, check_health=False)
        except (RedisError, OSError, TimeoutError) as exc:
            error = RedisConnectionError(f"redis connection lost: {exc}")
        finally:
            # Sent on this connection or queued for it: no reply will come.
            self._break(link, error)
            if reader is not None:
                reader.cancel()
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.disconnect()

    async def _read_loop(self, link: _Link, conn: AbstractConnection) -> None:
        sent = link.sent
        try:
            while True:
                try:
                    reply = await conn.read_response(disconnect_on_error=False)
                except ResponseError as exc:
                    reply = exc
                    failed = True
                else:
                    failed = False
                link.replies += 1
                if not sent:
                    raise RedisConnectionError("a reply to no command")
                future = sent.popleft()
                if future.done():  # the caller gave up (cancelled)
                    continue
                if failed:
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (RedisError, OSError) as exc:
            # Also stops the writer, which closes the connection.
            self._break(link, RedisConnectionError(f"redis connection lost: {exc}"))

    def _arm_watchdog(self, link: _Link, delay: float | None = None) -> None:
        mark = link.replies
        loop = asyncio.get_running_loop()
        due = loop.time() + (self._timeout if delay is None else delay)

        def check() -> None:
            link.watchdog = None
            if not link.sent:
                return  # nothing outstanding: no timer until the next write
            if link.replies != mark:
                self._arm_watchdog(link)
            elif loop.time() - due > _LATE:
                # This loop was busy (a long callback, a starved process): the
                # replies may be waiting unread, behind this timer. A stall is
                # measured in time this loop could read: look again soon.
                self._arm_watchdog(link, min(self._timeout, _LATE))
            else:
                self._break(link, RedisConnectionError(f"no reply from redis in {self._timeout}s"))

        link.watchdog = loop.call_later(due - loop.time(), check)

    def _break(self, link: _Link, exc: Exception) -> None:
        """Fail every command of ``link`` and stop its writer; new commands get a new link."""
        if self._link is link:
            self._link = None
        if link.watchdog is not None:
            link.watchdog.cancel()
            link.watchdog = None
        pending = [future for _, future in link.queue]
        pending.extend(link.sent)
        link.queue = []
        link.sent.clear()
        for future in pending:
            if not future.done():
                future.set_exception(exc)
        writer = link.writer
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
