"""``/healthz`` and ``/metrics`` of ``hubbub serve --workers N``: every worker in one answer.

Theory of operation
-------------------

The N worker processes listen on one port (``SO_REUSEPORT``): the kernel hands
each new connection to one of them, so a probe of ``/healthz`` or a scrape of
``/metrics`` reaches one worker, chosen by a hash of the client's address and
port. That worker must answer for all of them. Each worker therefore writes
its own health and its metrics exposition, every second, to a directory the
supervisor made for the run (:meth:`WorkerReports.publish`: written to a
temporary name, then renamed, so a reader never sees half a file); the worker
that answers adds its own live figures to the others' last reports.

``/metrics`` **labels** every sample with ``worker="<index>"`` rather than
summing: a restarted worker's counters start again from zero, which
Prometheus' ``rate()`` handles per series (a reset) but would misread in a sum
(a drop of the total); gauges such as ``hubbub_connections`` per worker show
an uneven spread. ``sum without (worker) (...)`` gives the hub's totals. Two
series are added: ``hubbub_worker_up`` (1 when the worker reported in the
last :attr:`WorkerReports.stale_after` seconds) and
``hubbub_worker_restarts_total`` (written by the supervisor,
:mod:`hubbub.hub.workers`).

``/healthz`` is the answering worker's own health, plus a ``workers`` list
(index, pid, ok, seconds since its last report); ``ok`` is true only when
every worker is up and healthy, so a load balancer's probe sees a crashed or
stuck worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...exceptions import needs_extra

with needs_extra("hub", "hubbub.hub"):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from . import Hub

__all__ = ["SUPERVISOR_FILE", "WorkerReports", "publish_reports"]

logger = logging.getLogger(__name__)

#: The supervisor's own report in the directory (restarts per worker).
SUPERVISOR_FILE = "supervisor.json"


def _write_atomically(path: Path, data: bytes) -> None:
    # rename() replaces the file in one step (POSIX): readers see the old
    # report or the new one, never a partial write.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_bytes(data)
    partial.replace(path)


class _Merged(Collector):
    """The families of every worker's exposition, each sample labelled with its worker."""

    def __init__(self, expositions: dict[int, str], up: dict[int, bool], restarts: dict[int, int]):
        self.expositions = expositions
        self.up = up
        self.restarts = restarts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for index, text in sorted(self.expositions.items()):
            for family in text_string_to_metric_families(text):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    labels = {"worker": str(index), **sample.labels}
                    merged.samples.append(sample._replace(labels=labels))
        yield from families.values()
        up = GaugeMetricFamily(
            "hubbub_worker_up",
            "1 when the worker reported in the last seconds (hubbub serve --workers)",
            labels=["worker"],
        )
        restarts = CounterMetricFamily(
            "hubbub_worker_restarts",
            "Times the supervisor restarted the worker after it died",
            labels=["worker"],
        )
        for index, is_up in sorted(self.up.items()):
            up.add_metric([str(index)], 1.0 if is_up else 0.0)
            restarts.add_metric([str(index)], self.restarts.get(index, 0))
        yield up
        yield restarts


class WorkerReports:
    """One worker's view of the run's report directory.

    Args:
        directory: made by the supervisor for this run, removed when it ends.
        index: this worker's number, 0 to ``count - 1``.
        count: how many workers the hub runs.
        stale_after: a report older than this (seconds) counts as a worker down.
    """

    def __init__(self, directory: Path, index: int, count: int, stale_after: float = 5.0) -> None:
        self.directory = directory
        self.index = index
        self.count = count
        self.stale_after = stale_after

    def _path(self, index: int, suffix: str) -> Path:
        return self.directory / f"worker-{index}.{suffix}"

    def publish(self, health: dict[str, Any], metrics: bytes) -> None:
        """Write this worker's health and metrics for the others to read."""
        _write_atomically(self._path(self.index, "prom"), metrics)
        report = {"pid": os.getpid(), "health": health}
        _write_atomically(self._path(self.index, "json"), json.dumps(report).encode())

    def ready(self) -> bool:
        """Whether this worker has published at least once (the supervisor's startup check)."""
        return self._path(self.index, "json").exists()

    def _report(self, index: int) -> tuple[float, dict[str, Any]] | None:
        """(age in seconds, report) of another worker, or None if it never reported."""
        path = self._path(index, "json")
        try:
            age = time.time() - path.stat().st_mtime
            return age, json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None

    def _restarts(self) -> dict[int, int]:
        try:
            data = json.loads((self.directory / SUPERVISOR_FILE).read_bytes())
            return {int(k): int(v) for k, v in data.get("restarts", {}).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def health(self, own: dict[str, Any]) -> dict[str, Any]:
        """``/healthz``: this worker's health, ``ok`` only if every worker is up and ok."""
        workers: list[dict[str, Any]] = []
        for index in range(self.count):
            if index == self.index:
                workers.append({"worker": index, "pid": os.getpid(), "ok": own["ok"], "age": 0.0})
                continue
            found = self._report(index)
            if found is None:
                workers.append({"worker": index, "pid": None, "ok": False, "age": None})
                continue
            age, report = found
            ok = bool(report["health"].get("ok")) and age <= self.stale_after
            workers.append({"worker": index, "pid": report["pid"], "ok": ok, "age": round(age, 1)})
        ok = all(w["ok"] for w in workers)
        return {**own, "ok": ok, "worker": self.index, "workers": workers}

    def metrics(self, own: bytes) -> bytes:
        """``/metrics``: every worker's samples labelled ``worker="<index>"`` (module doc)."""
        expositions = {self.index: own.decode()}
        up = {self.index: True}
        for index in range(self.count):
            if index == self.index:
                continue
            found = self._report(index)
            up[index] = found is not None and found[0] <= self.stale_after
            if up[index]:
                try:
                    expositions[index] = self._path(index, "prom").read_text()
                except OSError:
                    up[index] = False
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(expositions, up, self._restarts()))
        return generate_latest(registry)


async def publish_reports(hub: Hub, reports: WorkerReports, interval: float = 1.0) -> None:
    """Publish ``hub``'s health and metrics every ``interval`` seconds, until cancelled."""
    node = hub.node
    while True:
        try:
            reports.publish(node.health(), node.metrics.render())
        except OSError:  # a full disk: /healthz then shows this worker stale
            logger.exception("worker %d cannot write its report", reports.index)
        await asyncio.sleep(interval)
