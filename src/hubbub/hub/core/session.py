"""Sessions of a hub node and the small pieces of state they carry."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any

from ...exceptions import HubError
from . import protocol as p
from .config import HubConfig, NamespaceRules, TokenBucket
from .identity import Identity
from .streams import Entry, ReadResult
from .traffic import Traffic

__all__ = [
    "DELIVERY_FAILED",
    "RECONNECT",
    "REPLIED",
    "DisconnectCode",
    "Fail",
    "Session",
    "Subscription",
    "encode_entries",
    "entry_json",
    "inbox_stream",
    "ms",
    "recovery_failure",
]

logger = logging.getLogger(__name__)

INBOX_PREFIX = "$inbox:"


def inbox_stream(user: str) -> str:
    """Name of a user's inbox stream in the broker."""
    return INBOX_PREFIX + user


def ms(seconds: float) -> int:
    """Seconds to the integer milliseconds used by every time on the wire."""
    return int(seconds * 1000)


#: Close code of a session whose delivery failed (RFC 6455 section 7.4.1: an
#: unexpected condition on the server); the client reconnects and recovers.
DELIVERY_FAILED = 1011


class DisconnectCode(enum.IntEnum):
    """WebSocket close codes the hub uses (private range, RFC 6455 section 7.4.2)."""

    SHUTDOWN = 4000
    TOKEN_EXPIRED = 4001
    CONNECT_TIMEOUT = 4002
    ABUSE = 4008
    SLOW_CONSUMER = 4011


RECONNECT = {
    DisconnectCode.SHUTDOWN: True,
    DisconnectCode.TOKEN_EXPIRED: True,
    DisconnectCode.CONNECT_TIMEOUT: True,
    DisconnectCode.ABUSE: False,
    DisconnectCode.SLOW_CONSUMER: True,
}


class Fail(HubError):
    """A request failed with a wire error ``code``; raised by handlers, answered by the node."""

    code: p.ErrorCode

    def __init__(self, code: p.ErrorCode, message: str) -> None:
        super().__init__(code, message)


class Subscription:
    """One subscription of a session; ``pending`` buffers pushes while recovering."""

    __slots__ = ("pending", "rules")

    def __init__(self, rules: NamespaceRules) -> None:
        self.rules = rules
        self.pending: list[tuple[int | None, str]] | None = []


class Session:
    """One client connection, as the node sees it (create with :meth:`Node.open_session`).

    Attributes:
        transmit: the adapter's ``send(text)``, called as it is: no closed check,
            no traffic counted, and it may raise. :meth:`send` and :meth:`deliver`
            wrap it.
        push: the adapter's ``push(text)`` for channel publications, or
            ``transmit`` when it has none: the same, but the adapter may hold
            the write until the end of its loop iteration, so that several
            publications to one client leave in one write. The node's channel
            fan-out loop calls it directly (once per subscriber, the hot path)
            and calls :meth:`fail` when it raises.
    """

    def __init__(
        self,
        conn_id: str,
        send: Callable[[str], None],
        close: Callable[[int, str], None],
        config: HubConfig,
        *,
        clock: Callable[[], float],
        traffic: Traffic | None = None,
        push: Callable[[str], None] | None = None,
    ) -> None:
        self.conn_id = conn_id
        self._traffic = traffic or Traffic()
        self.transmit = send
        self.push = send if push is None else push
        self._close = close
        self.identity: Identity | None = None
        # Set by the hub's ASGI app when the application's hook authenticated
        # the handshake: `connect` then takes it instead of a token.
        self.handshake_identity: Identity | None = None
        self.user: str | None = None
        self.channels: dict[str, Subscription] = {}
        self.tick = False
        self.closed = False
        self.released = False
        self.opened_at = clock()
        self.expiring_sent = False
        self.strikes = 0
        self.inbox_pending: list[tuple[int | None, str]] | None = None
        self.commands = TokenBucket(config.command_rate, config.command_burst, clock)
        self.bytes = TokenBucket(config.byte_rate, config.byte_burst, clock)

    def __repr__(self) -> str:
        return f"<Session {self.conn_id} user={self.user!r}>"

    def connected_user(self) -> str:
        """The user this session connected as.

        Raises:
            Fail: ``NOT_CONNECTED`` before a successful ``connect``.
        """
        if self.user is None:
            raise Fail(p.ErrorCode.NOT_CONNECTED, "connect first")
        return self.user

    def send(self, text: str) -> None:
        """Queue ``text`` for the client (nothing once the session is closed)."""
        if self.closed:
            return
        traffic = self._traffic
        traffic.messages_out += 1
        traffic.chars_out += len(text)
        try:
            self.transmit(text)
        except Exception:
            self.fail()

    def fail(self) -> None:
        """Close a session whose delivery raised (call from an ``except`` block).

        Whatever went wrong, it stays with this session: it is closed for real
        (1011), so that its client reconnects and recovers, instead of staying
        open, shown online, and silently dropped (issue 12).
        """
        logger.exception("send failed on %s: closing it", self.conn_id)
        self.closed = True
        self._traffic.delivery_failures += 1
        try:
            self._close(DELIVERY_FAILED, "internal error")
        except Exception:
            logger.exception("close failed on %s", self.conn_id)

    def abort(self, code: int, reason: str) -> None:
        """Stop sending and ask the adapter to close the WebSocket."""
        self.closed = True
        self._close(code, reason)

    def deliver(
        self, pending: list[tuple[int | None, str]] | None, offset: int | None, text: str
    ) -> int:
        """Send ``text`` now, or buffer it in ``pending`` while that stream recovers.

        The hot path of fan-out: returns 1 if it was sent now, so that the caller
        counts the traffic once for all recipients instead of once per send.
        """
        if pending is not None:
            pending.append((offset, text))
            return 0
        if self.closed:
            return 0
        try:
            self.transmit(text)
        except Exception:
            self.fail()
            return 0
        return 1

    def flush(self, pending: list[tuple[int | None, str]], after: int) -> None:
        """Send what was buffered while recovering, skipping offsets up to ``after``."""
        for offset, text in pending:
            if offset is None or offset > after:
                self.send(text)


def encode_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries that encode, dropping (and logging) any that does not.

    Requests cannot store such data (``protocol.decode``), but the server's
    Python API or another process sharing a Redis broker could: one bad entry
    must not make every reply that carries it fail (a poisoned inbox).
    """
    kept = []
    for entry in entries:
        try:
            p.encode(entry)
        except (TypeError, ValueError, RecursionError):
            logger.error("dropped an entry that cannot be encoded: offset %s", entry.get("offset"))
        else:
            kept.append(entry)
    return kept


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "offset": entry.offset,
        "time": ms(entry.time),
        "from": entry.sender,
        "data": entry.data,
    }


REPLIED: Any = object()


def recovery_failure(since: p.Since, read: ReadResult, recover_max: int) -> str | None:
    """Why the publications after ``since`` cannot be recovered, or ``None`` if they can."""
    if since.epoch != read.epoch:
        return "epoch"
    if since.offset > read.offset:
        return "offset"
    if not read.complete:
        return "trimmed"
    if len(read.entries) > recover_max:
        return "too_many"
    return None
