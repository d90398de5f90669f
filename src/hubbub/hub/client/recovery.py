"""Where the hub SDK is in each stream, and how it recovers (protocol section 2).

:class:`StreamRecovery` is owned by a :class:`hubbub.hub.client.HubClient`
(which hands it the queue of pushes for the application, and is told when the
inbox's acknowledgements mean nothing any more): every change of a kept position
(:class:`_Stream`) happens here, whether an
entry comes in a push, in the ``connect`` reply (the inbox backlog) or in a
``subscribe`` reply (a channel's missed publications), or the hub says it lost
a stream (``reset``). It is separate from the client's connection handling so
that the rule "each entry once, in order, across reconnections" reads in one
place.

Recovery (protocol section 2): per channel and for the inbox, the client keeps
the epoch and offset of the last entry it queued for the application, and
re-subscribes with them as ``since``. Entries carried by replies are queued as
the reply is read, before any later push, and an entry at or below the kept
offset of the same epoch (a redelivery) is dropped: the application sees each
entry once, in order, across reconnections. When recovery is impossible, a
``recovery`` push (``stream``, ``reason``) is queued in the entries' place.
The hub also says so while connected: its ``reset`` push (the broker lost the
stream, which has a new epoch) moves the kept position to the new epoch, so
that the next reconnection does not ask for an impossible recovery, and is
queued as a ``recovery`` push too (``reason`` ``"epoch"``, ``raw["live"]``
true, with the new ``epoch`` and ``offset``), in order with the entries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .types import INBOX, Push

__all__ = ["StreamRecovery"]


@dataclass
class _Stream:
    """The client's kept position in one stream (a channel, or the inbox)."""

    epoch: str | None = None
    offset: int = 0
    token: str | None = None
    active: bool = False


class StreamRecovery:
    """The kept positions of a :class:`~hubbub.hub.client.HubClient` and their updates.

    Args:
        queue: where pushes for the application go, in order.
        on_inbox_lost: called when the inbox has a new epoch: the client's
            acknowledgements name offsets of the lost one.

    Attributes:
        channels: the kept position of each channel subscribed to.
        inbox: the kept position in the user's inbox.
    """

    def __init__(self, queue: asyncio.Queue[Push], on_inbox_lost: Callable[[], None]) -> None:
        self.queue = queue
        self.channels: dict[str, _Stream] = {}
        self.inbox = _Stream()
        self._on_inbox_lost = on_inbox_lost

    def connected(self, result: Any) -> None:
        """Take the ``connect`` reply: the inbox's epoch and backlog."""
        # Runs as the reply is read, before later pushes: the backlog is in order.
        inbox = result["inbox"]
        reason = None if inbox["recovered"] else inbox.get("reason", "unknown")
        if self.inbox.epoch is not None and inbox["epoch"] != self.inbox.epoch:
            self._recovery(INBOX, "epoch")
            self.inbox.offset = 0
            self._on_inbox_lost()
        elif reason is not None and not (reason == "epoch" and self.inbox.epoch is not None):
            # ("epoch" in the epoch we hold: a reset push told us already.)
            self._recovery(INBOX, reason)
        self.inbox.epoch = inbox["epoch"]
        for entry in inbox["messages"]:
            self.entry(self.inbox, {"push": "message", "epoch": inbox["epoch"], **entry})

    def joined(self, channel: str, sub: _Stream, result: Any) -> None:
        """Take a ``subscribe`` reply: the channel's epoch and missed publications."""
        # Runs as the subscribe reply is read, before later pushes.
        if result.get("recovered") is False:
            self._recovery(channel, result.get("reason", "unknown"))
        sub.active = True
        if sub.epoch != result["epoch"]:
            sub.epoch, sub.offset = result["epoch"], result["offset"]
        for entry in result["publications"]:
            wire = {"push": "pub", "channel": channel, "epoch": result["epoch"], **entry}
            self.entry(sub, wire)
        sub.offset = max(sub.offset, result["offset"])

    def _recovery(self, stream: str, reason: str) -> None:
        self.queue.put_nowait(
            Push("recovery", stream, raw={"push": "recovery", "stream": stream, "reason": reason})
        )

    def reset(self, message: dict[str, Any]) -> None:
        """The hub lost a stream while we were connected (protocol section 2.3)."""
        name, epoch, offset = message.get("stream"), message.get("epoch"), message.get("offset")
        stream = self.inbox if name == INBOX else self.channels.get(str(name))
        if stream is None or not isinstance(epoch, str) or not isinstance(offset, int):
            return  # a channel we left, or a malformed push
        if stream.epoch == epoch:
            return  # a subscribe reply gave us the new epoch already
        stream.epoch, stream.offset = epoch, offset
        if stream is self.inbox:
            # Acks name offsets of the lost epoch: they mean nothing now.
            self._on_inbox_lost()
        reason = str(message.get("reason", "epoch"))
        raw = {"push": "recovery", "stream": name, "reason": reason, "live": True}
        self.queue.put_nowait(
            Push(
                "recovery",
                str(name),
                offset=offset,
                epoch=epoch,
                raw={**raw, "epoch": epoch, "offset": offset},
            )
        )

    def entry(self, stream: _Stream | None, message: dict[str, Any]) -> None:
        """Queue the entry a push carries, unless it was delivered before."""
        if stream is None:
            return  # a channel we left
        offset, epoch = message["offset"], message["epoch"]
        if epoch == stream.epoch and offset <= stream.offset:
            return  # delivered before: an unacknowledged redelivery or an overlap
        stream.epoch, stream.offset = epoch, offset
        self.queue.put_nowait(Push.from_wire(message))
