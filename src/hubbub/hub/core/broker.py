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

Methods are coroutines because a networked broker (Redis) needs I/O;
:class:`~hubbub.hub.brokers.memory.MemoryBroker`, the in-process default, never
actually suspends. A broker that cannot reach its backend raises
:class:`BrokerUnavailable`.

This module is the interface only, part of the I/O-free core: the node is
handed a broker (and a clock) by whoever builds it; the implementations live in
:mod:`hubbub.hub.brokers`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from ...exceptions import HubError
from .protocol import ErrorCode
from .streams import Entry, ReadResult, StreamLimits

__all__ = [
    "ONLINE",
    "Broker",
    "BrokerUnavailable",
    "ClientInfo",
    "Listener",
    "Notice",
    "Reset",
]

#: Presence stream holding one entry per live connection of the whole hub.
ONLINE = "$online"


class BrokerUnavailable(HubError):
    """The broker's backend cannot be reached; the operation did not happen.

    Its ``code`` is the wire error the node answers with (501).
    """

    code: ErrorCode

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.BROKER_UNAVAILABLE, message)


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
    """The interface every broker implements (see the module docstring).

    Attributes:
        suspends: whether its coroutines may wait (a networked backend). False
            promises that every one of them completes without suspending, so
            that an adapter may run requests from its read callback, with no
            task per request (``hubbub.hub.server.inline``), and that the
            node's synchronous request path (``Node.handle_now``) may call
            :meth:`publish_now` and :meth:`online_now` (by default, the
            coroutines run at once).
    """

    suspends = True

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

    def publish_now(
        self, stream: str, data: Any, *, sender: str | None, limits: StreamLimits
    ) -> Entry:
        """:meth:`publish`, synchronous: only a broker that never suspends has it.

        By default the :meth:`publish` coroutine run to its end at once; a
        broker overrides it with a plain function (the coroutine then wraps
        that), as :class:`~hubbub.hub.brokers.memory.MemoryBroker` does.

        Raises:
            NotImplementedError: this broker suspends (:attr:`suspends`).
        """
        if self.suspends:
            raise NotImplementedError(f"{type(self).__name__} has no synchronous publish")
        result: Entry = self._run_now(self.publish(stream, data, sender=sender, limits=limits))
        return result

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

    def online_now(self, users: Iterable[str]) -> set[str]:
        """:meth:`online`, synchronous: only a broker that never suspends has it.

        By default the :meth:`online` coroutine run to its end at once (see
        :meth:`publish_now`).

        Raises:
            NotImplementedError: this broker suspends (:attr:`suspends`).
        """
        if self.suspends:
            raise NotImplementedError(f"{type(self).__name__} has no synchronous online")
        result: set[str] = self._run_now(self.online(users))
        return result

    def _run_now(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine of a broker that never suspends to its end; its result.

        Raises:
            RuntimeError: it suspended after all (``suspends`` is wrong).
        """
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        coro.close()
        raise RuntimeError(f"{type(self).__name__} says it never suspends, but it did")

    # --- acks ---

    @abstractmethod
    async def get_ack(self, user: str) -> tuple[int, str] | None:
        """The (offset, epoch) of the user's inbox confirmed so far, if any."""

    @abstractmethod
    async def set_ack(self, user: str, offset: int, epoch: str) -> tuple[int, str]:
        """Confirm the user's inbox up to ``offset``; never moves back within an epoch."""
