"""The broker: what hub nodes share.

Theory of operation
-------------------

A hub is one or more *nodes* (processes serving WebSocket connections) sharing
one *broker*. Everything that must look the same from every node lives in the
broker, behind the :class:`Broker` interface:

* **streams** (channel histories and user inboxes): :meth:`Broker.publish`
  appends an entry and returns it with its offset and epoch, which the broker
  alone assigns, so that offsets are the same on every node;
  :meth:`Broker.read` reads them back for recovery and history;
* **live fan-out**: a node calls :meth:`Broker.subscribe` for each stream some
  of its connections listen to, and the broker calls the node's listener with
  every entry published to that stream *by any node*, and with the join/leave
  :class:`Notice` values sent by :meth:`Broker.broadcast`. A node never
  delivers its own publications directly: they come back through the broker
  like everyone else's, so all nodes see one order;
* **resets**: when the broker notices that a stream it delivers was lost and
  created again with a new epoch (a Redis restarted without its data, an idle
  stream dropped), it hands the listeners a :class:`Reset` *before* any entry
  of the new epoch, so that nodes can tell their connected clients at once
  that their position in the stream means nothing any more;
* **presence**: entries keyed by connection id with an expiry. Nodes refresh
  theirs with :meth:`Broker.presence_touch`; when a node dies its entries expire,
  so its users vanish within one TTL. Hub-wide "is X online" is the presence of
  the reserved stream :data:`ONLINE`;
* **acks**: the inbox offset each user confirmed, kept per user so that any
  node the user reconnects to redelivers exactly what was not confirmed.

Methods are coroutines because a networked broker (Redis, next) needs I/O;
:class:`MemoryBroker`, the in-process default, never actually suspends. A broker
that cannot reach its backend raises :class:`BrokerUnavailable`.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from ..exceptions import HubbubError
from .streams import Entry, ReadResult, Stream, StreamLimits

__all__ = [
    "ONLINE",
    "Broker",
    "BrokerUnavailable",
    "ClientInfo",
    "Listener",
    "MemoryBroker",
    "Notice",
    "Reset",
]

logger = logging.getLogger(__name__)

#: Presence stream holding one entry per live connection of the whole hub.
ONLINE = "$online"


class BrokerUnavailable(HubbubError):
    """The broker's backend cannot be reached; the operation did not happen."""


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """A connection, as presence shows it."""

    user: str
    conn_id: str
    node: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A presence change broadcast to a channel: ``kind`` is ``"join"`` or ``"leave"``."""

    kind: str
    user: str
    conn_id: str


@dataclass(frozen=True, slots=True)
class Reset:
    """The stream was lost and created again: positions in its old epoch mean nothing.

    Listeners get it before any entry of the new epoch; the entries delivered
    after it are those after ``offset``.

    Attributes:
        epoch: the stream's new epoch.
        offset: the position in the new epoch from which delivery continues
            (0 when the stream was noticed empty).
    """

    epoch: str
    offset: int


#: Called by the broker with (stream, entry, notice or reset) for streams a node subscribed to.
Listener: TypeAlias = Callable[[str, Entry | Notice | Reset], None]


class Broker(ABC):
    """The interface every broker implements (see the module docstring)."""

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Connect to the backend, if there is one."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the backend."""

    async def maintain(self) -> None:  # noqa: B027 (optional hook)
        """Periodic housekeeping (nodes call it about once a second)."""

    @abstractmethod
    def health(self) -> dict[str, Any]:
        """State for ``/healthz``: at least ``{"type": str, "ok": bool}``."""

    # --- live fan-out ---

    @abstractmethod
    async def subscribe(self, stream: str, listener: Listener) -> None:
        """Call ``listener`` for everything published or broadcast to ``stream``.

        Idempotent. When it returns, nothing published afterwards is missed.
        """

    @abstractmethod
    async def unsubscribe(self, stream: str, listener: Listener) -> None:
        """Stop calling ``listener`` for ``stream``. Idempotent."""

    @abstractmethod
    async def broadcast(self, stream: str, notice: Notice) -> None:
        """Send ``notice`` to the listeners of ``stream`` without storing it."""

    # --- streams ---

    @abstractmethod
    async def publish(
        self, stream: str, data: Any, *, sender: str | None, limits: StreamLimits
    ) -> Entry:
        """Append to ``stream`` (trimmed to ``limits``), deliver to listeners, return the entry."""

    @abstractmethod
    async def read(self, stream: str, after: int | None, limit: int) -> ReadResult:
        """Entries of ``stream`` after offset ``after`` (see :meth:`Stream.read`)."""

    # --- presence ---

    @abstractmethod
    async def presence_add(self, stream: str, info: ClientInfo, ttl: float) -> None:
        """Add or refresh a connection's presence in ``stream`` for ``ttl`` seconds."""

    @abstractmethod
    async def presence_remove(self, stream: str, conn_id: str) -> None:
        """Remove a connection's presence from ``stream``."""

    @abstractmethod
    async def presence_touch(self, keys: Sequence[tuple[str, str]], ttl: float) -> None:
        """Extend the expiry of the (stream, conn_id) presence entries by ``ttl`` from now."""

    @abstractmethod
    async def presence(self, stream: str) -> dict[str, ClientInfo]:
        """Live presence of ``stream``: connection id -> info."""

    @abstractmethod
    async def online(self, users: Iterable[str]) -> set[str]:
        """The subset of ``users`` with a live entry in :data:`ONLINE`."""

    # --- acks ---

    @abstractmethod
    async def get_ack(self, user: str) -> tuple[int, str] | None:
        """The (offset, epoch) of the user's inbox confirmed so far, if any."""

    @abstractmethod
    async def set_ack(self, user: str, offset: int, epoch: str) -> tuple[int, str]:
        """Confirm the user's inbox up to ``offset``; never moves back within an epoch."""


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
        self._check()
        entry = self._stream(stream, limits).append(data, sender)
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
        self._check()
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
