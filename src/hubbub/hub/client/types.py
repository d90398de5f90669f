"""The values the hub SDK hands to applications: pushes, states, errors.

:class:`~hubbub.hub.client.HubClient` lives in :mod:`hubbub.hub.client`, which
re-exports everything here (``from hubbub.hub.client import Push, State``
keeps working). These types are separate because an application, a test or a
type annotation needs them without the client's machinery, and because the
client's halves (:mod:`hubbub.hub.client.recovery` among them) share them.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ...exceptions import HubbubError, HubError

__all__ = [
    "INBOX",
    "ConnectionLost",
    "HubError",
    "InvalidReply",
    "Push",
    "State",
    "StateListener",
    "TokenSource",
]

INBOX = "$inbox"
TokenSource = str | Callable[[], str | Awaitable[str]] | None


class ConnectionLost(HubbubError):
    """The connection dropped before the reply came: the request may or may not have run.

    Not a :class:`~hubbub.exceptions.HubError`: the hub did not refuse anything,
    and the client retries it (the tree in :mod:`hubbub.exceptions` says why).
    """


class InvalidReply(HubbubError):
    """The server's reply does not follow ``hubbub.json.v1`` (for instance an ``id``
    without ``result`` or ``error``: a server echoing requests is not a hub)."""


class State(enum.StrEnum):
    """What the client is doing, as :attr:`~hubbub.hub.client.HubClient.state` reports it."""

    IDLE = "idle"
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


StateListener = Callable[[State, BaseException | None], object]
"""``on_state(state, error)``: the new state and the last error (None once live)."""


@dataclass(frozen=True)
class Push:
    """A push from the hub, or a ``recovery`` notice from the client.

    Attributes:
        kind: ``pub``, ``message``, ``join``, ``leave``, ``tick``, ``expiring``,
            ``disconnect``, ``recovery`` (``raw["reason"]`` says why; ``epoch``
            and ``offset`` are the new position when the hub lost the stream
            while connected), or newer kinds.
        channel: of ``pub``/``join``/``leave``; the stream of ``recovery``
            (a channel, or :data:`INBOX`).
        data / offset / epoch / sender (``from``) / time: as on the wire.
        raw: the whole push object.
    """

    kind: str
    channel: str | None = None
    data: Any = None
    offset: int | None = None
    epoch: str | None = None
    sender: str | None = None
    time: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> Push:
        """The :class:`Push` of a wire push object."""
        fields = (m.get("data"), m.get("offset"), m.get("epoch"), m.get("from"), m.get("time"))
        return cls(str(m["push"]), m.get("channel", m.get("stream")), *fields, raw=m)
