"""``hubbub serve --workers N``: real worker processes on one port and a real Redis.

The kernel spreads connections over the workers (SO_REUSEPORT) by a hash of
the client's port, so the tests open connections until ``/metrics`` (labelled
per worker) shows every worker holding some, then check what must hold across
them. :class:`WorkerReports` (what ``/healthz`` and ``/metrics`` merge) is also
tested on its own, without processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_helpers import SECRET
from redis_helpers import REDIS_SERVER, RedisServer, free_port

from hubbub.asyncio import ClientConnection, connect
from hubbub.exceptions import ConnectionClosed
from hubbub.hub import SUBPROTOCOL, mint_token
from hubbub.hub.metrics import HubMetrics
from hubbub.hub.server.workers import WorkerReports
from hubbub.hub.settings import settings
from hubbub.hub.workers import refusal

needs_redis = pytest.mark.skipif(
    not Path(REDIS_SERVER).exists(), reason="redis-server is not installed"
)

TOML = """
[limits]
command_rate = 1000
command_burst = 1000
"""


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def connections_per_worker(port: int) -> dict[str, float]:
    text = get(port, "/metrics")[1].decode()
    found = re.findall(r'^hubbub_connections\{worker="(\d+)"\} (\S+)$', text, re.M)
    return {worker: float(value) for worker, value in found}


class Workers:
    """``hubbub serve --workers 2 --broker redis://...`` as a process."""

    def __init__(self, workdir: Path, redis_url: str) -> None:
        self.port = free_port()
        config = workdir / "hub.toml"
        config.write_text(TOML)
        self.log = workdir / "workers.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hubbub", "serve", "--workers", "2", "--broker",
                 redis_url, "--port", str(self.port), "--secret", SECRET, "--config",
                 str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        self.wait_healthy()

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            status, body = get(self.port, "/healthz")
        except OSError:
            return 0, {}
        return status, json.loads(body)

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status, health = self.health()
            if status == 200:
                return health
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed")
    redis = RedisServer(tmp_path)
    redis.start()
    hub = None
    try:
        hub = Workers(tmp_path, redis.url)
        yield hub
    finally:
        if hub is not None:
            hub.stop()
        redis.stop()


async def open_user(hub: Workers, user: str) -> ClientConnection:
    ws = await connect(hub.uri, subprotocols=[SUBPROTOCOL])
    token = mint_token(user, SECRET, 3600)
    await ws.send(json.dumps({"id": 1, "method": "connect", "params": {"token": token}}))
    reply = json.loads(await ws.recv())
    assert reply["id"] == 1
    assert "result" in reply, reply
    return ws


async def spread(hub: Workers, user: str, limit: int = 200) -> list[ClientConnection]:
    """Connections of ``user`` until both workers hold at least one."""

    async def both_hold_some() -> bool:
        counts = await asyncio.to_thread(connections_per_worker, hub.port)
        return len(counts) == 2 and all(v > 0 for v in counts.values())

    conns: list[ClientConnection] = []
    while len(conns) < limit:
        conns.append(await open_user(hub, user))
        if len(conns) >= 2 and await both_hold_some():
            return conns
    # The worker that answers /metrics counts its own connections live, the
    # other's from its last report (once a second): 200 connections can open
    # between two reports. Give the reports a few seconds to catch up.
    for _ in range(25):
        await asyncio.sleep(0.2)
        if await both_hold_some():
            return conns
    for ws in conns:
        await ws.close()
    raise AssertionError(f"{limit} connections all landed on one worker")


async def next_push(ws: ClientConnection, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            message = json.loads(await ws.recv())
            if message.get("push") == kind:
                return message


@needs_redis
async def test_a_users_connections_on_two_workers_all_get_their_direct_events(
    workers: Workers,
) -> None:
    alice = await spread(workers, "alice")
    bob = await open_user(workers, "bob")
    try:
        for i in range(3):
            await bob.send(
                json.dumps({"id": 10 + i, "method": "send", "params": {"to": ["alice"], "data": i}})
            )
        for ws in alice:
            got = [(await next_push(ws, "message"))["data"] for _ in range(3)]
            assert got == [0, 1, 2]
    finally:
        for ws in [*alice, bob]:
            await ws.close()


@needs_redis
async def test_health_and_metrics_cover_every_worker(workers: Workers) -> None:
    health = workers.wait_healthy()
    assert [w["worker"] for w in health["workers"]] == [0, 1]
    pids = {w["pid"] for w in health["workers"]}
    assert len(pids) == 2
    assert workers.process.pid not in pids
    text = (await asyncio.to_thread(get, workers.port, "/metrics"))[1].decode()
    assert 'hubbub_worker_up{worker="0"} 1.0' in text
    assert 'hubbub_worker_up{worker="1"} 1.0' in text
    assert text.count("# TYPE hubbub_connections gauge") == 1  # one family, two series


async def drain(ws: ClientConnection) -> None:
    """Read until the connection closes (ConnectionClosed)."""
    while True:
        await ws.recv()


@needs_redis
async def test_sigterm_drains_every_worker(workers: Workers) -> None:
    conns = await spread(workers, "alice")
    pids = [w["pid"] for w in workers.wait_healthy()["workers"]]
    os.kill(workers.process.pid, signal.SIGTERM)
    for ws in conns:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(drain(ws), 20)
        assert ws.close_code == 4000  # DisconnectCode.SHUTDOWN: reconnect elsewhere
    assert await asyncio.to_thread(workers.process.wait, 40) == 0
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert "did not stop" not in workers.log.read_text()


@needs_redis
async def test_a_killed_worker_is_reported_and_restarted(workers: Workers) -> None:
    before = workers.wait_healthy()["workers"]
    os.kill(before[1]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        status, health = workers.health()
        if status == 200 and health["workers"][1]["pid"] not in (None, before[1]["pid"]):
            break
        assert time.monotonic() < deadline, workers.log.read_text()
        await asyncio.sleep(0.1)
    log = workers.log.read_text()
    assert "worker 1 (pid" in log
    assert "died (killed by SIGKILL); restarting it" in log
    text = (await asyncio.to_thread(get, workers.port, "/metrics"))[1].decode()
    assert 'hubbub_worker_restarts_total{worker="1"} 1.0' in text
    ws = await open_user(workers, "carol")  # and the hub still serves
    await ws.close()


def test_two_workers_on_the_memory_broker_are_refused_clearly() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hubbub", "serve", "--dev", "--port", "0", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "--workers 2 needs the Redis broker" in proc.stderr
    assert "--broker redis://" in proc.stderr


def test_workers_need_linux_and_a_shared_broker() -> None:
    assert refusal(1, "memory", "darwin") is None  # one worker runs anywhere
    assert refusal(2, "redis://127.0.0.1:6379/0", "linux") is None
    macos = refusal(2, "redis://127.0.0.1:6379/0", "darwin")
    assert macos is not None
    assert "needs Linux" in macos
    memory = refusal(4, "memory", "linux")
    assert memory is not None
    assert "--workers 4 needs the Redis broker" in memory


def test_workers_from_the_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('workers = "auto"\n')
    resolved, _ = settings(argparse.Namespace(config=str(path)), {})
    assert resolved["workers"] == len(os.sched_getaffinity(0))
    path.write_text("workers = 3\n")
    assert settings(argparse.Namespace(config=str(path)), {})[0]["workers"] == 3
    assert (
        settings(argparse.Namespace(config=str(path)), {"HUBBUB_WORKERS": "2"})[0]["workers"] == 2
    )
    path.write_text("workers = 0\n")
    with pytest.raises(ValueError, match="workers: the number of workers must be at least 1"):
        settings(argparse.Namespace(config=str(path)), {})
    path.write_text("workers = 1.5\n")
    with pytest.raises(ValueError, match='workers: expected a number of workers or "auto"'):
        settings(argparse.Namespace(config=str(path)), {})


def _exposition(connections: int) -> bytes:
    metrics = HubMetrics()
    metrics.connections.set(connections)
    metrics.disconnected(4000)
    return metrics.render()


def test_reports_label_every_workers_samples(tmp_path: Path) -> None:
    other = WorkerReports(tmp_path, 1, 2)
    other.publish({"ok": True}, _exposition(7))
    own = WorkerReports(tmp_path, 0, 2)
    text = own.metrics(_exposition(3)).decode()
    assert 'hubbub_connections{worker="0"} 3.0' in text
    assert 'hubbub_connections{worker="1"} 7.0' in text
    assert 'hubbub_disconnects_total{code="4000",worker="1"} 1.0' in text
    assert text.count("# TYPE hubbub_connections gauge") == 1
    health = own.health({"ok": True})
    assert health["ok"] is True
    assert [w["ok"] for w in health["workers"]] == [True, True]


def test_a_silent_or_unhealthy_worker_makes_the_hub_unhealthy(tmp_path: Path) -> None:
    own = WorkerReports(tmp_path, 0, 3, stale_after=5.0)
    WorkerReports(tmp_path, 1, 3).publish({"ok": False}, _exposition(1))
    # Worker 2 never reported.
    health = own.health({"ok": True})
    assert health["ok"] is False
    assert [w["ok"] for w in health["workers"]] == [True, False, False]
    # A report older than stale_after counts as a worker down.
    WorkerReports(tmp_path, 2, 3).publish({"ok": True}, _exposition(1))
    old = time.time() - 60
    os.utime(tmp_path / "worker-2.json", (old, old))
    text = own.metrics(_exposition(0)).decode()
    assert 'hubbub_worker_up{worker="2"} 0.0' in text
    assert 'hubbub_connections{worker="2"}' not in text
    assert 'hubbub_worker_up{worker="1"} 1.0' in text
