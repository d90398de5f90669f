"""What a node counts: its hot-path counters, and the interface of the rest.

:class:`Traffic` holds the hot-path counters as plain integers; they live in the
core because every session counts into them. :class:`NodeMetrics` is what the
node is handed for the rest; :class:`hubbub.hub.metrics.HubMetrics` (the ``hub``
extra's prometheus_client) implements it and exports both at scrape time.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Protocol

__all__ = ["CodeCounter", "Counter", "Gauge", "NodeMetrics", "Traffic"]


class Traffic:
    """The counters of the hot path, as plain integers.

    A prometheus_client ``Counter`` takes a lock per increment; these are
    incremented for every message in and out, and read only at scrape time.
    """

    __slots__ = (
        "chars_in",
        "chars_out",
        "commands",
        "deliveries",
        "delivery_failures",
        "messages_in",
        "messages_out",
    )

    def __init__(self) -> None:
        self.messages_in = 0
        self.chars_in = 0
        self.messages_out = 0
        self.chars_out = 0
        self.commands: collections.Counter[str] = collections.Counter()
        self.deliveries: collections.Counter[str] = collections.Counter()
        self.delivery_failures = 0  # sessions closed (1011) because sending to them raised


class Counter(Protocol):
    """A counter the node increments (a prometheus_client ``Counter`` will do)."""

    def inc(self, amount: float = 1) -> None: ...


class Gauge(Counter, Protocol):
    """A gauge the node moves both ways (a prometheus_client ``Gauge`` will do)."""

    def dec(self, amount: float = 1) -> None: ...


class CodeCounter(Protocol):
    """A counter by error code (a prometheus_client ``Counter`` with a ``code`` label)."""

    def labels(self, *, code: str) -> Counter: ...


class NodeMetrics(Protocol):
    """What a node counts into: :class:`hubbub.hub.metrics.HubMetrics`, handed to it.

    The core names only this interface, so that it imports no prometheus_client
    (which runs threads); the server builds the real counters and exports them.
    """

    @property
    def connections(self) -> Gauge: ...

    @property
    def connections_opened(self) -> Counter: ...

    @property
    def subscriptions(self) -> Gauge: ...

    @property
    def errors(self) -> CodeCounter: ...

    @property
    def queued(self) -> Counter: ...

    @property
    def traffic(self) -> Traffic: ...

    def disconnected(self, code: int) -> None: ...

    def delivered(self, kind: str, count: int, size: int = 0) -> None: ...

    # What the server that runs the node asks of them (/metrics):

    def gauge_function(self, name: str, doc: str, function: Callable[[], float]) -> None: ...

    def render(self) -> bytes: ...
