"""``hubbub serve --workers N``: N hub processes on one port and one broker.

Theory of operation
-------------------

One hub process runs one event loop on one core. With ``--workers N`` the
command becomes a **supervisor** that serves nothing itself: it forks N
workers, each a complete hub (:func:`hubbub.hub.settings.serve_hub`) whose
listening socket sets ``SO_REUSEPORT``, so the kernel spreads new connections
over them (by a hash of the client's address and port). Workers share nothing
in memory: they reach each other through the broker exactly as nodes on
separate machines do (docs/redis.md), so N workers need the Redis broker; the
in-memory broker lives inside one process and is refused with N > 1
(:func:`refusal`, docs/scaling.md says why no broker is embedded instead).

* **Port 0**: the supervisor binds a socket with ``SO_REUSEPORT`` to learn the
  port and holds it (bound, never listening: the kernel gives connections only
  to listening sockets) until the end, so every worker listens on that port.
* **Health and metrics** answer for every worker
  (:mod:`hubbub.hub.server.workers`): the workers report to a temporary
  directory the supervisor removes at the end.
* **Shutdown**: SIGTERM or SIGINT to the supervisor is passed on as SIGTERM to
  every worker, which shuts down as a single hub does (clients get 4000 and
  reconnect elsewhere); the supervisor waits up to :data:`SHUTDOWN_TIMEOUT`
  seconds, then kills what is left. Workers ask the kernel for SIGTERM if the
  supervisor dies (``PR_SET_PDEATHSIG``), so none is left behind.
* **A worker that dies** (a crash, the OOM killer) is reported on stderr and
  restarted with the same index: its clients reconnect and land on any worker.
  A worker that fails before it ever served, or more than
  :data:`MAX_RESTARTS` restarts in :data:`RESTART_WINDOW` seconds, stops the
  whole hub with exit status 1: a crash loop is a configuration problem
  (a port taken, Redis unreachable) that restarting would only hide.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from .core.config import HubConfig

__all__ = ["MAX_RESTARTS", "RESTART_WINDOW", "SHUTDOWN_TIMEOUT", "WorkerRole", "refusal"]

SHUTDOWN_TIMEOUT = 30.0
"""Seconds the supervisor gives the workers to drain after SIGTERM before SIGKILL."""

STARTUP_TIMEOUT = 60.0
"""Seconds every worker has to start serving (connect to Redis, listen)."""

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
"""More than :data:`MAX_RESTARTS` restarts within this many seconds stop the hub."""

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class WorkerRole:
    """What one worker process is told: its index, the count, where to report."""

    index: int
    count: int
    reports: Path


def worker_count(value: Any) -> int:
    """Parse ``--workers``: a positive integer, or ``auto`` for the usable CPUs.

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    text = str(value).strip().lower()
    if text == "auto":
        # The CPUs this process may run on (taskset, cgroup cpusets), not all
        # the machine's.
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of workers or 'auto', got {value!r}"
        ) from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"the number of workers must be at least 1, got {count}")
    return count


def refusal(count: int, broker: str, platform: str = sys.platform) -> str | None:
    """Why ``count`` workers cannot run on ``broker`` here, or None when they can."""
    if count > 1 and not platform.startswith("linux"):
        # macOS accepts SO_REUSEPORT but gives every connection to one socket;
        # Windows has neither it nor fork().
        return (
            f"--workers {count} needs Linux, whose SO_REUSEPORT spreads connections over "
            "the workers; elsewhere run several nodes behind a load balancer "
            "(docs/howto/redis.md)"
        )
    if count > 1 and broker == "memory":
        return (
            f"--workers {count} needs the Redis broker: each worker is its own process and "
            "the in-memory broker lives inside one, so users connected to different workers "
            "could not reach each other. Add --broker redis://HOST:PORT/DB (docs/scaling.md)"
        )
    return None


def _die_with_parent() -> None:
    # Linux: SIGTERM (a graceful drain) when the supervisor dies, even by SIGKILL.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


#: What one worker runs: ``serve(resolved, config, role)`` serves the hub until it is
#: stopped. Handed in by :mod:`hubbub.hub.settings`, which owns serving and imports this
#: module (so this one does not import it back).
ServeWorker = Callable[[dict[str, Any], HubConfig, "WorkerRole"], None]


def _worker_main(
    serve: ServeWorker,
    resolved: dict[str, Any],
    config: HubConfig,
    role: WorkerRole,
    reserved: int | None,
) -> None:
    """The body of one worker process (forked: settings already resolved and checked)."""
    if reserved is not None:
        os.close(reserved)  # the supervisor's port reservation, inherited
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)  # the loop installs its own handlers
    _die_with_parent()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s worker {role.index} %(name)s %(levelname)s %(message)s")
        )
    serve(resolved, config, role)


def _reserve_port(host: str) -> socket.socket:
    """Bind (not listen) a SO_REUSEPORT socket to a free port of ``host``."""
    family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class _Supervisor:
    def __init__(
        self,
        serve: ServeWorker,
        resolved: dict[str, Any],
        config: HubConfig,
        count: int,
        reports: Path,
    ) -> None:
        self.serve = serve
        self.resolved = resolved
        self.config = config
        self.count = count
        self.reports = reports
        self.reserved: int | None = None
        self.workers: dict[int, BaseProcess] = {}
        self.restarts: dict[int, int] = dict.fromkeys(range(count), 0)
        self.recent: deque[float] = deque()
        self.stop_signal: int | None = None
        self.context = multiprocessing.get_context("fork")

    def say(self, text: str) -> None:
        print(f"hubbub serve: {text}", file=sys.stderr, flush=True)

    def start(self, index: int) -> None:
        role = WorkerRole(index, self.count, self.reports)
        process = self.context.Process(
            target=_worker_main,
            args=(self.serve, self.resolved, self.config, role, self.reserved),
            name=f"hubbub-worker-{index}",
        )
        process.start()
        self.workers[index] = process

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_signal = signum

    def wait_ready(self) -> bool:
        """Wait until every worker reported once; False if one died first."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self.stop_signal is None:
            if all((self.reports / f"worker-{i}.json").exists() for i in self.workers):
                return True
            for index, process in self.workers.items():
                if not process.is_alive():
                    self.say(
                        f"worker {index} failed to start ({_describe_exit(process.exitcode)}); "
                        "stopping"
                    )
                    return False
            if time.monotonic() > deadline:
                self.say(f"the workers did not start within {STARTUP_TIMEOUT:g} s; stopping")
                return False
            time.sleep(0.05)
        return True

    def restart(self, index: int) -> bool:
        """Report a dead worker and start another; False when they die too often."""
        process = self.workers[index]
        now = time.monotonic()
        self.recent.append(now)
        while self.recent and self.recent[0] < now - RESTART_WINDOW:
            self.recent.popleft()
        if len(self.recent) > MAX_RESTARTS:
            self.say(
                f"worker {index} (pid {process.pid}) died ({_describe_exit(process.exitcode)}), "
                f"more than {MAX_RESTARTS} restarts in {RESTART_WINDOW:g} s: stopping the hub"
            )
            return False
        self.say(
            f"worker {index} (pid {process.pid}) died ({_describe_exit(process.exitcode)}); "
            "restarting it"
        )
        self.restarts[index] += 1
        data = json.dumps({"restarts": self.restarts}).encode()
        (self.reports / "supervisor.json.partial").write_bytes(data)
        (self.reports / "supervisor.json.partial").replace(self.reports / "supervisor.json")
        self.start(index)
        return True

    def supervise(self) -> bool:
        """Until a signal: restart workers that die. False if the hub must stop on failure."""
        while self.stop_signal is None:
            sentinels = {p.sentinel: i for i, p in self.workers.items()}
            for sentinel in wait(list(sentinels), timeout=0.2):
                index = sentinels[sentinel]  # type: ignore[index]
                self.workers[index].join()
                if self.stop_signal is None and not self.restart(index):
                    return False
        return True

    def stop(self) -> bool:
        """SIGTERM every worker, wait for them to drain; True if all exited cleanly."""
        for process in self.workers.values():
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        clean = True
        for index, process in self.workers.items():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                self.say(f"worker {index} did not stop in {SHUTDOWN_TIMEOUT:g} s: killing it")
                process.kill()
                process.join()
                clean = False
            elif process.exitcode != 0:
                clean = False
        return clean

    def run(self) -> int:
        reservation = None
        if self.resolved["port"] == 0:
            reservation = _reserve_port(self.resolved["host"])
            self.resolved = {**self.resolved, "port": reservation.getsockname()[1]}
            self.reserved = reservation.fileno()
        previous = {
            sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for index in range(self.count):
                self.start(index)
            ok = self.wait_ready()
            if ok and self.stop_signal is None:
                pids = ", ".join(str(p.pid) for p in self.workers.values())
                self.say(
                    f"{self.count} workers on port {self.resolved['port']} (pids {pids}), "
                    f"broker {self.resolved['broker']}"
                )
                ok = self.supervise()
            clean = self.stop()
            return 0 if ok and clean else 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if reservation is not None:
                reservation.close()


def run_workers(serve: ServeWorker, resolved: dict[str, Any], config: HubConfig, count: int) -> int:
    """Supervise ``count`` worker processes until SIGTERM/SIGINT; the exit status.

    Args:
        serve: what each worker runs (see :data:`ServeWorker`).
        resolved: the resolved settings of ``hubbub serve``.
        config: the hub's configuration.
        count: how many workers.
    """
    reports = Path(tempfile.mkdtemp(prefix="hubbub-workers-"))
    try:
        return _Supervisor(serve, resolved, config, count, reports).run()
    finally:
        shutil.rmtree(reports, ignore_errors=True)
