"""The in-process broker: every node of the hub lives in this process.

It implements :class:`~hubbub.hub.core.broker.Broker` with plain dictionaries
and the core's :class:`~hubbub.hub.core.streams.Stream`; the Redis broker
(:mod:`hubbub.hub.brokers.redis_broker`) implements the same interface for
several processes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.broker import ONLINE, Broker, BrokerUnavailable, ClientInfo, Listener, Notice, Reset
from ..core.streams import Entry, ReadResult, Stream, StreamLimits

__all__ = ["MemoryBroker"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Member:
    info: ClientInfo
    expires: float


class MemoryBroker(Broker):
    """The in-process broker: every node of the hub lives in this process.

    Several nodes may share one instance, which is how tests exercise the
    multi-node design without Redis.

    Args:
        clock: current time in seconds (injected for tests).
        idle_ttl: an empty stream untouched this long is dropped; publishing to
            it again starts a new epoch (clients are told recovery is impossible,
            which is the truth: its entries expired anyway). If the stream had
            listeners when it was dropped, the first read or publish that creates
            it again hands them a :class:`Reset` first, as the Redis broker does.
    """

    #: Nothing here waits: plain dictionaries (see ``Broker.suspends``).
    suspends = False

    def __init__(self, *, clock: Callable[[], float] = time.time, idle_ttl: float = 3600.0) -> None:
        self._clock = clock
        self._idle_ttl = idle_ttl
        self._streams: dict[str, Stream] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._presence: dict[str, dict[str, _Member]] = {}
        # stream -> no member of it expires before this time (a lower bound), so
        # that maintain() scans only the presence sets where something may have
        # expired, not every member of every set every second.
        self._presence_due: dict[str, float] = {}
        # user -> connection ids in ONLINE, so that online() costs O(users asked).
        self._online: dict[str, set[str]] = {}
        self._acks: dict[str, tuple[int, str]] = {}
        # Streams dropped while someone listened: their re-creation is a Reset.
        self._lost: set[str] = set()
        self.closed = False

    def health(self) -> dict[str, Any]:
        return {
            "type": "memory",
            "ok": not self.closed,
            "streams": len(self._streams),
            "entries": sum(len(s) for s in self._streams.values()),
            "presence": sum(len(p) for p in self._presence.values()),
        }

    async def close(self) -> None:
        self.closed = True

    async def maintain(self) -> None:
        now = self._clock()
        # The cheap idle test first: len() trims, which only idle streams need here.
        idle = [
            name
            for name, stream in self._streams.items()
            if now - stream.last_time > self._idle_ttl and len(stream) == 0
        ]
        for name in idle:
            del self._streams[name]
            if name in self._listeners:
                self._lost.add(name)
        for name in [name for name, due in self._presence_due.items() if due <= now]:
            self._live_presence(name)

    def _check(self) -> None:
        if self.closed:
            raise BrokerUnavailable("broker is closed")

    def _stream(self, name: str, limits: StreamLimits | None = None) -> Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = Stream(limits or StreamLimits(), self._clock)
            self._streams[name] = stream
            if name in self._lost:
                self._lost.discard(name)
                self._deliver(name, Reset(stream.epoch, 0))
        elif limits is not None:
            stream.limits = limits
        return stream

    def _deliver(self, stream: str, item: Entry | Notice | Reset) -> None:
        # Copy: a listener may unsubscribe while being called.
        for listener in list(self._listeners.get(stream, ())):
            try:
                listener(stream, item)
            except Exception:  # a broken node must not break the others
                logger.exception("broker listener failed on %s", stream)

    async def subscribe(self, stream: str, listener: Listener) -> None:
        self._check()
        listeners = self._listeners.setdefault(stream, [])
        if listener not in listeners:
            listeners.append(listener)

    async def unsubscribe(self, stream: str, listener: Listener) -> None:
        listeners = self._listeners.get(stream)
        if listeners and listener in listeners:
            listeners.remove(listener)
            if not listeners:
                del self._listeners[stream]
                self._lost.discard(stream)  # nobody left to tell

    async def broadcast(self, stream: str, notice: Notice) -> None:
        self._check()
        self._deliver(stream, notice)

    async def publish(
        self, stream: str, data: Any, *, sender: str | None, limits: StreamLimits
    ) -> Entry:
        return self.publish_now(stream, data, sender=sender, limits=limits)

    def publish_now(
        self, stream: str, data: Any, *, sender: str | None, limits: StreamLimits
    ) -> Entry:
        # Once per message (a direct one: per recipient): _check and the
        # common case of _stream written out here, two calls fewer.
        if self.closed:
            raise BrokerUnavailable("broker is closed")
        found = self._streams.get(stream)
        if found is None:
            found = self._stream(stream, limits)
        else:
            found.limits = limits
        entry = found.append(data, sender)
        self._deliver(stream, entry)
        return entry

    async def read(self, stream: str, after: int | None, limit: int) -> ReadResult:
        self._check()
        # Reading creates the stream, so that its epoch is fixed from the first
        # time a client sees it (otherwise the first publish would change it).
        return self._stream(stream).read(after, limit)

    def _live_presence(self, stream: str) -> dict[str, _Member]:
        members = self._presence.get(stream)
        if members is None:
            return {}
        now = self._clock()
        due = math.inf
        expired = []
        for conn, m in members.items():
            if m.expires <= now:
                expired.append(conn)
            elif m.expires < due:
                due = m.expires
        for conn in expired:
            member = members.pop(conn)
            if stream == ONLINE:
                self._forget_online(member.info)
        if members:
            self._presence_due[stream] = due
        else:
            del self._presence[stream]
            self._presence_due.pop(stream, None)
        return members

    async def presence_add(self, stream: str, info: ClientInfo, ttl: float) -> None:
        self._check()
        members = self._presence.setdefault(stream, {})
        expires = self._clock() + ttl
        members[info.conn_id] = _Member(info, expires)
        if expires < self._presence_due.get(stream, math.inf):
            self._presence_due[stream] = expires
        if stream == ONLINE:
            self._online.setdefault(info.user, set()).add(info.conn_id)

    async def presence_remove(self, stream: str, conn_id: str) -> None:
        self._check()
        members = self._presence.get(stream)
        if members is not None:
            member = members.pop(conn_id, None)
            if not members:
                del self._presence[stream]
                self._presence_due.pop(stream, None)
            if member is not None and stream == ONLINE:
                self._forget_online(member.info)

    async def presence_touch(self, keys: Sequence[tuple[str, str]], ttl: float) -> None:
        self._check()
        expires = self._clock() + ttl
        for stream, conn_id in keys:
            member = self._presence.get(stream, {}).get(conn_id)
            if member is not None:
                member.expires = expires
                # A shorter ttl than before moves the earliest expiry forward.
                if expires < self._presence_due.get(stream, math.inf):
                    self._presence_due[stream] = expires

    async def presence(self, stream: str) -> dict[str, ClientInfo]:
        self._check()
        return {conn: m.info for conn, m in self._live_presence(stream).items()}

    def _forget_online(self, info: ClientInfo) -> None:
        conns = self._online.get(info.user)
        if conns is not None:
            conns.discard(info.conn_id)
            if not conns:
                del self._online[info.user]

    async def online(self, users: Iterable[str]) -> set[str]:
        return self.online_now(users)

    def online_now(self, users: Iterable[str]) -> set[str]:
        if self.closed:  # _check, written out: once per direct message
            raise BrokerUnavailable("broker is closed")
        now = self._clock()
        members = self._presence.get(ONLINE, {})
        result = set()
        for user in users:
            for conn in self._online.get(user, ()):
                member = members.get(conn)
                if member is not None and member.expires > now:
                    result.add(user)
                    break
        return result

    async def get_ack(self, user: str) -> tuple[int, str] | None:
        self._check()
        return self._acks.get(user)

    async def set_ack(self, user: str, offset: int, epoch: str) -> tuple[int, str]:
        self._check()
        current = self._acks.get(user)
        if current is None or current[1] != epoch or offset > current[0]:
            current = (offset, epoch)
            self._acks[user] = current
        return current
