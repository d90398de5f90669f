"""The node's hot-path counters, as plain integers (read by :mod:`hubbub.hub.metrics`).

They live in the core because every session counts into them; the Prometheus
collector that exports them at scrape time is the ``hub`` extra's part.
"""

from __future__ import annotations

import collections

__all__ = ["Traffic"]


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
