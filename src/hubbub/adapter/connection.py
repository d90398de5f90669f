"""Per-connection helpers both adapters share, without I/O.

What a connection of :mod:`hubbub.asyncio` or :mod:`hubbub.sync` decides the
same way around the sans-I/O core: which exception tells the application how
it closed (:func:`closed_exception`), how pings are matched with pongs
(:class:`PingTracker`), what ``recv(decode=...)`` returns, the attributes read
off the core (:class:`ConnectionAttributes`), and the inflation step both set
(:data:`DECODE_STEP`).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sized
from types import MappingProxyType
from typing import Any, Generic, TypeAlias, TypeVar, cast

from ..exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    RemoteProtocolError,
)
from ..protocol import connection as core
from ..protocol.frames import CloseCode
from ..protocol.http11 import Request, Response

__all__ = [
    "DECODE_STEP",
    "ConnectionAttributes",
    "Data",
    "FailurePending",
    "LoggerLike",
    "PingTracker",
    "closed_exception",
    "decoded",
    "format_address",
]


Data = str | bytes
"""A WebSocket message: ``str`` for text, ``bytes`` for binary (both adapters)."""

DECODE_STEP = 2**18
"""Bytes of compressed messages inflated per parsing step (``decode_limit``).

Both adapters set it on the core (unless the core has a limit of its own):
one step decodes at most this much plus 64 KiB (permessage-deflate stops
inside a frame that inflates to more), whatever ``max_size`` is, so a
burst of compressed frames is inflated a step at a time, only while the
message queue has room, and (asyncio) never for long in one callback of the
event loop.
"""

_OK_CODES = frozenset({CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD})


def closed_exception(protocol: core.Connection) -> ConnectionClosed:
    """The exception that tells the application how ``protocol`` closed.

    :class:`ConnectionClosedOK` when close frames with 1000, 1001 or no code
    (1005) were exchanged both ways (section 7.1.5); otherwise
    :class:`ConnectionClosedError`, chained to the protocol error if the peer
    broke the protocol.
    """
    received = protocol.close_received
    sent = protocol.close_sent
    code = protocol.close_code or CloseCode.ABNORMAL_CLOSURE
    sent_code = sent.code if sent is not None else None
    if received is not None and received.code in _OK_CODES and sent_code in _OK_CODES:
        return ConnectionClosedOK(code, protocol.close_reason, sent_code)
    exc = ConnectionClosedError(code, protocol.close_reason, sent_code)
    if protocol.close_exc is not None:
        exc.__cause__ = protocol.close_exc
    return exc


W = TypeVar("W")
_NO_PINGS: Any = MappingProxyType({})


class FailurePending:
    """Stands in a receive queue where the peer broke the protocol.

    The core's ``Failure`` event (``defer_failure=True``) becomes this entry;
    the adapter fails the connection when the application reaches it.
    """

    __slots__ = ("exc",)

    def __init__(self, exc: RemoteProtocolError) -> None:
        self.exc = exc


LoggerLike: TypeAlias = "logging.Logger | logging.LoggerAdapter[Any]"
"""What the ``logger=`` options take: a logger or an adapter that adds context."""


def decoded(message: str | bytes, decode: bool | None) -> str | bytes:
    """``message`` as ``recv(decode=...)`` returns it (both adapters).

    ``None`` keeps the frame's type (text as ``str``, binary as ``bytes``);
    ``False`` gives ``bytes`` for a text message too (its UTF-8, as received);
    ``True`` decodes a binary message as UTF-8.

    Raises:
        UnicodeDecodeError: ``decode=True`` and a binary message that is not UTF-8.
    """
    if decode is None or isinstance(message, str) is decode:
        return message
    if isinstance(message, str):
        return message.encode()
    return message.decode()


class ConnectionAttributes:
    """Attributes both adapters' connections read off the sans-I/O core."""

    __slots__ = ()
    protocol: core.Connection
    logger: LoggerLike
    remote_address: Any
    # Made on first use (a log line, the application): an idle connection of
    # a busy server does not pay the 100 bytes of a UUID it never shows.
    _id: uuid.UUID | None = None

    @property
    def id(self) -> uuid.UUID:
        """A random identifier (UUID version 4) of this connection, as in the logs."""
        if self._id is None:
            # The adapters' connection classes have a __dict__ (the slots here
            # only keep this base from adding one).
            self._id = uuid.uuid4()  # type: ignore[misc]
        return self._id

    def log_open(self) -> None:
        """Log at INFO that the connection is open (once per connection)."""
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        protocol = self.protocol
        request = getattr(protocol, "request", None)
        target = request.path if request is not None else getattr(protocol, "uri", "")
        if target and not isinstance(target, str):
            target = target.resource_name
        logger.info(
            "connection %s open: remote %s, %s, subprotocol %s",
            self.id,
            format_address(self.remote_address),
            target,
            self.subprotocol,
        )

    def log_closed(self) -> None:
        """Log at INFO how the connection closed: codes and reasons both ways (section 7.1.5)."""
        logger = self.logger
        protocol = self.protocol
        if not logger.isEnabledFor(logging.INFO) or getattr(protocol, "handshake_exc", None):
            return  # a refused handshake is logged as such, not as a closed connection
        response = getattr(protocol, "response", None)
        if response is None or response.status != 101:
            return
        sent = protocol.close_sent
        logger.info(
            "connection %s closed: remote %s, received %s %r, sent %s %r",
            self.id,
            format_address(self.remote_address),
            protocol.close_code,
            protocol.close_reason,
            None if sent is None else sent.code,
            "" if sent is None else sent.reason,
        )

    _messages: Sized

    @property
    def queued_messages(self) -> int:
        """Messages received and not yet returned by ``recv()``.

        Flow control keeps it about ``max_queue``: reading, and inflating
        compressed frames, stop there (see docs/security.md).
        """
        return len(self._messages)

    @property
    def ready_state(self) -> core.State:
        """CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3), as in the browser."""
        return self.protocol.state

    @property
    def state(self) -> core.State:
        """Alias of :attr:`ready_state`."""
        return self.protocol.state

    @property
    def close_code(self) -> int | None:
        """The close code received, 1006 if closed without one, None while open."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> str:
        """The close reason received, "" if none."""
        return self.protocol.close_reason

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or None."""
        return cast(str | None, getattr(self.protocol, "subprotocol", None))

    @property
    def request(self) -> Request | None:
        """The handshake request (path, query, headers)."""
        return cast(Request | None, getattr(self.protocol, "request", None))

    @property
    def response(self) -> Response | None:
        """The handshake response."""
        return cast(Response | None, getattr(self.protocol, "response", None))


def format_address(address: Any) -> str:
    """``host:port`` of a socket address (``[host]:port`` for IPv6), or the path."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address or "-")


class PingTracker(Generic[W]):
    """Pings waiting for their pong, with whatever each adapter waits on (``W``).

    Section 5.5.3 lets a peer answer only the most recent of several pings, so
    a pong acknowledges every ping sent before the one it answers.
    """

    __slots__ = ("_waiting", "latency")

    def __init__(self) -> None:
        # Read-only and shared until the first ping: most connections of a
        # busy server are idle, and an empty dict costs 64 bytes each.
        self._waiting: dict[bytes, tuple[W, float]] = _NO_PINGS
        self.latency = 0.0
        """Round-trip time of the last ping answered, in seconds."""

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, data: object) -> bool:
        return data in self._waiting

    def new_payload(self) -> bytes:
        """Four random bytes not used by a waiting ping."""
        data = os.urandom(4)
        while data in self._waiting:
            data = os.urandom(4)
        return data

    def add(self, data: bytes, waiter: W, now: float) -> None:
        """Remember that a ping with ``data`` was sent at ``now``."""
        if self._waiting is _NO_PINGS:
            self._waiting = {}
        self._waiting[data] = (waiter, now)

    def pong(self, data: bytes, now: float) -> list[tuple[W, float]]:
        """A pong with ``data`` arrived at ``now``: the pings it answers, with their RTT.

        An unsolicited pong (a heartbeat) answers none.
        """
        if data not in self._waiting:
            return []
        answered: list[tuple[W, float]] = []
        for key in list(self._waiting):
            waiter, sent_at = self._waiting.pop(key)
            answered.append((waiter, now - sent_at))
            if key == data:
                self.latency = now - sent_at
                break
        return answered

    def clear(self) -> list[W]:
        """Forget every waiting ping (the connection closed) and return their waiters."""
        waiters = [waiter for waiter, _ in self._waiting.values()]
        self._waiting = _NO_PINGS
        return waiters
