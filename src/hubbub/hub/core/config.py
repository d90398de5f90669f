"""Configuration of a hub node: namespaces and their rules, limits, token buckets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from .streams import StreamLimits

__all__ = ["HubConfig", "NamespaceRules", "TokenBucket", "namespace_of"]


def namespace_of(channel: str) -> str:
    """The namespace of a channel: what comes before the first ``:``, or ``""``."""
    head, sep, _ = channel.partition(":")
    return head if sep else ""


@dataclass(frozen=True, slots=True)
class NamespaceRules:
    """What clients may do with the channels of one namespace.

    Attributes:
        subscribe: ``"all"``: any connected user may join; ``"private"``: only
            with a subscribe token for the channel, or when the connection
            token's ``channels`` claim lists it.
        publish: ``"subscribers"``: members of the channel may publish;
            ``"all"``: any connected user who may subscribe; ``"none"``: only the
            server (HTTP or Python API).
        presence: keep presence (the ``presence`` commands) for its channels.
        join_leave: push ``join``/``leave`` to members when others come and go.
        history: how much of each channel's stream is kept for history and recovery.
        recover_max: most publications a ``subscribe`` recovers; beyond it the
            client is told that recovery is impossible (``too_many``).
    """

    subscribe: Literal["all", "private"] = "all"
    publish: Literal["subscribers", "all", "none"] = "subscribers"
    presence: bool = True
    join_leave: bool = True
    history: StreamLimits = field(default_factory=StreamLimits)
    recover_max: int = 1000


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Settings of a hub node.

    Attributes:
        namespaces: rules by namespace; ``""`` is the namespace of channel names
            without a ``:``. Channels of a namespace not listed are refused.
        inbox: how much of each user's inbox is kept (count and age).
        max_request_bytes: largest client message, in bytes (UTF-8, as on the wire).
        max_message_bytes: largest ``data`` of a publish or send, in bytes of
            its compact JSON encoding in UTF-8.
        max_channels: channels one connection may be subscribed to at once.
        max_recipients: users one ``send`` or ``online`` may name.
        command_rate / command_burst: token bucket of commands per connection.
        byte_rate / byte_burst: token bucket of received bytes (UTF-8) per connection.
        max_strikes: consecutive rejected requests after which the connection is
            closed as abusive (4008). Any accepted request resets the count;
            refusals that are the hub's fault (broker unavailable, internal
            error) do not count.
        presence_ttl: seconds a presence entry lives without a heartbeat; nodes
            refresh theirs every third of it, so a dead node's users vanish within it.
        expiring_notice: seconds before a token's expiry when ``expiring`` is pushed.
        connect_timeout: seconds a connection may stay without ``connect``.
    """

    namespaces: Mapping[str, NamespaceRules] = field(default_factory=lambda: {"": NamespaceRules()})
    inbox: StreamLimits = field(default_factory=lambda: StreamLimits(1000, 7 * 86400.0))
    max_request_bytes: int = 128 * 1024
    max_message_bytes: int = 64 * 1024
    max_channels: int = 128
    max_recipients: int = 100
    command_rate: float = 50.0
    command_burst: float = 100.0
    byte_rate: float = 512 * 1024.0
    byte_burst: float = 1024 * 1024.0
    max_strikes: int = 50
    presence_ttl: float = 30.0
    expiring_notice: float = 30.0
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.byte_burst < self.max_request_bytes:
            # Otherwise a message of the largest allowed size could never pass.
            raise ValueError("byte_burst must be at least max_request_bytes")
        if self.command_burst < 1 or self.command_rate <= 0 or self.byte_rate <= 0:
            raise ValueError("rates must be positive and bursts at least 1")


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second.

    Args:
        rate: tokens added per second.
        burst: capacity (and initial content).
        clock: current time in seconds (injected so tests control it).
    """

    __slots__ = ("_clock", "_last", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._clock = clock
        self._last = clock()

    def take(self, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens if there are that many; say whether it did."""
        now = self._clock()
        elapsed = now - self._last
        self._last = now
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False
