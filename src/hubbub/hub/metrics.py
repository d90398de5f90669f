"""Counters for ``/metrics`` in the Prometheus text format.

Each :class:`HubMetrics` has its own registry (not prometheus_client's global
one), so that several nodes in one process, as in the tests, do not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..exceptions import needs_extra
from .core.traffic import Traffic

with needs_extra("hub", "hubbub.hub"):
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
    from prometheus_client.core import CounterMetricFamily, Metric
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "HubMetrics", "Traffic"]

#: Content-Type of :meth:`HubMetrics.render`.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class _TrafficCollector(Collector):
    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic

    def collect(self) -> Iterator[Metric]:
        t = self.traffic
        for name, doc, value in (
            ("hubbub_messages_in", "Messages received from clients", t.messages_in),
            ("hubbub_bytes_in", "Bytes (UTF-8) of the messages received from clients", t.chars_in),
            ("hubbub_messages_out", "Messages sent to clients", t.messages_out),
            ("hubbub_bytes_out", "Characters sent to clients", t.chars_out),
            (
                "hubbub_delivery_failures",
                "Sessions closed with 1011 because delivering to them raised",
                t.delivery_failures,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        commands = CounterMetricFamily(
            "hubbub_commands", "Commands executed, by method", labels=["method"]
        )
        for method, count in sorted(t.commands.items()):
            commands.add_metric([method], count)
        yield commands
        deliveries = CounterMetricFamily(
            "hubbub_deliveries",
            "Publications and direct events pushed to sessions, by kind",
            labels=["kind"],
        )
        for kind, count in sorted(t.deliveries.items()):
            deliveries.add_metric([kind], count)
        yield deliveries


class HubMetrics:
    """The hub's counters and gauges."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.connections = Gauge(
            "hubbub_connections", "Open client sessions on this node", registry=registry
        )
        self.connections_opened = Counter(
            "hubbub_connections_opened", "Client sessions opened", registry=registry
        )
        self.subscriptions = Gauge(
            "hubbub_subscriptions", "Channel subscriptions on this node", registry=registry
        )
        self.traffic = Traffic()
        registry.register(_TrafficCollector(self.traffic))
        self._functions: dict[str, Gauge] = {}
        self.errors = Counter(
            "hubbub_errors", "Error replies, by error code", ["code"], registry=registry
        )
        self.queued = Counter(
            "hubbub_inbox_queued",
            "Direct events stored for recipients with no live connection",
            registry=registry,
        )
        self.disconnects = Counter(
            "hubbub_disconnects",
            "Sessions closed by the hub, by close code",
            ["code"],
            registry=registry,
        )

    def disconnected(self, code: int) -> None:
        """Count one session closed by the hub with ``code`` (4000-4011, 1011)."""
        self.disconnects.labels(code=str(code)).inc()

    def delivered(self, kind: str, count: int, size: int = 0) -> None:
        """Count ``count`` deliveries of ``kind`` (``publication`` or ``message``).

        With ``size``, they are also counted as ``count`` messages of ``size``
        characters sent (fan-out counts them here, not message by message).
        """
        traffic = self.traffic
        traffic.deliveries[kind] += count
        if size:
            traffic.messages_out += count
            traffic.chars_out += count * size

    def gauge_function(self, name: str, doc: str, function: Callable[[], float]) -> None:
        """Add a gauge whose value ``function`` computes at scrape time (queue sizes...).

        Adding a gauge of the same name again replaces the previous one.
        """
        previous = self._functions.pop(name, None)
        if previous is not None:
            self.registry.unregister(previous)
        gauge = self._functions[name] = Gauge(name, doc, registry=self.registry)
        gauge.set_function(function)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
