"""The connection's states and the events the core reports (RFC 6455 sections 5-7).

A complete data message is reported as the ``str`` (text) or ``bytes``
(binary) itself; the classes here are the other events.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..exceptions import RemoteProtocolError

__all__ = ["CloseReceived", "Event", "Failure", "Fragment", "Ping", "Pong", "Side", "State"]


class Side(enum.Enum):
    SERVER = "server"
    CLIENT = "client"


class State(enum.IntEnum):
    """The connection's state, numbered like the browser's ``readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


@dataclass(slots=True, frozen=True)
class Ping:
    """A ping frame arrived; the pong was already queued (section 5.5.2)."""

    data: bytes


@dataclass(slots=True, frozen=True)
class Pong:
    """A pong frame arrived (section 5.5.3)."""

    data: bytes


@dataclass(slots=True, frozen=True)
class CloseReceived:
    """A close frame arrived (section 5.5.1); 1005 when it had no code."""

    code: int
    reason: str


@dataclass(slots=True, frozen=True)
class Failure:
    """The peer broke the protocol here; only with ``defer_failure=True``."""

    exc: RemoteProtocolError


@dataclass(slots=True, frozen=True)
class Fragment:
    """A frame of a fragmented message (section 5.4), with ``stream_fragments`` on.

    ``data`` is ``str`` for a text message (whole characters: a character cut
    between frames comes with the frame that completes it) and ``bytes`` for a
    binary one; ``fin`` marks the message's last frame.
    """

    data: str | bytes
    fin: bool


Event = str | bytes | Ping | Pong | CloseReceived | Failure | Fragment | object
"""What :meth:`Connection.events_received` returns. Subclasses add handshake events."""
