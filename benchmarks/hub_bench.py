"""Hub benchmark: channel fan-out and direct messages through a real ``hubbub serve``.

Theory of operation
-------------------

The hub runs in its own process (``python -m hubbub serve --dev --api-key K
--config T.toml``, uvloop when installed, on a free loopback port). The load
side is several client processes (``--processes``), each holding its share of
the WebSocket connections on one asyncio loop: minimal, cheap connections
described in ``hub_bench_clients.py``.

Scenarios:

``fanout``
    ``--subscribers`` connections join channel ``bench:fanout``; the main process
    publishes with ``POST /api/publish``, either at ``--rate`` publishes/s or,
    with ``--rate max``, keeping ``--window`` publishes not yet delivered to
    every subscriber (workers publish the lowest sequence number all their
    connections have reached in shared memory). With ``--batch N`` each request
    is ``POST /api/publish_batch`` with N publications (an application server
    publishing what it has gathered, as Centrifugo's batch API allows): the hub
    fans them out in one loop iteration, one write per subscriber. Every
    subscriber must receive every publication, in order: the report says how
    many deliveries are missing.

``direct``
    ``--users`` connections, one per user, send ``send`` requests with one
    random other recipient; at ``--rate`` sends/s in total or, with ``max``,
    ``--window`` requests in flight per client process. Every ``live`` send
    must arrive as one ``message`` push.

Deliveries/s count pushes received in the measured window (``--duration``,
after ``--warmup``); latency is send time to the receiving loop's read. The
hub's CPU time comes from ``/proc/<pid>/stat`` over the same window, giving
deliveries per hub CPU-second: the figure least disturbed by the clients
sharing the machine's cores.

Several nodes (``--nodes N --broker redis``, and ``--compare-nodes 1,2``):
see ``hub_bench_nodes.py``. The hub figures then add up every node.
Several workers of one node (``--workers N --broker redis``) count the CPU of
the supervisor and every worker. Side by side (``hub_bench_peers.py``):
``--compare-peers`` runs Node's socket.io v4 (``--peer socketio``) against
the hub, ``--compare-workers 1,2`` one worker against two.

Usage::

    python benchmarks/hub_bench.py fanout --subscribers 10000 --duration 10
    python benchmarks/hub_bench.py direct --users 10000 --rate max --json out.json
    python benchmarks/hub_bench.py fanout --nodes 2 --broker redis
    python benchmarks/hub_bench.py fanout --compare-nodes 1,2 --reps 3
    python benchmarks/hub_bench.py fanout,direct --compare-peers --reps 3
    python benchmarks/hub_bench.py fanout,direct --compare-workers 1,2 --reps 3
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

from hub_bench_cclient import CClient, find_hub_loadgen, pin_processes, shared_memory
from hub_bench_clients import (
    CHANNEL,
    CONNECTING,
    DRAINING,
    MEASURING,
    RUNNING,
    install_uvloop,
    make_data,
    raise_nofile,
    worker_main,
)
from hub_bench_nodes import RedisProcess, compare
from hub_bench_peers import (
    add_cpu_per_delivery,
    add_side_by_side_options,
    check_side_by_side_options,
    compare_peers,
    compare_workers,
    redis_info,
    redis_per_delivery,
    start_socketio,
    wait_healthy,
    worker_pids,
)

TICK = os.sysconf("SC_CLK_TCK")
API_KEY = "hub-bench-api-key"
# The hub's settings for the run. The "bench" namespace has no presence and no
# join/leave pushes: with them each of N subscribes notifies every member
# already there, O(N^2) pushes before the measurement starts (10,000
# subscribers: 50 million). The command bucket is raised so that the closed
# loop of the direct scenario at small scale (few users, many sends each)
# measures the hub rather than its rate limiter.
HUB_TOML = """\
[limits]
command_rate = 10000.0
command_burst = 20000.0

[namespaces.""]

[namespaces.bench]
presence = false
join_leave = false
"""
# --------------------------------------------------------------------------- main process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_hub(
    port: int,
    profile: str | None = None,
    broker: str | None = None,
    toml: str = HUB_TOML,
    workers: int = 1,
) -> subprocess.Popen[bytes]:
    """``hubbub serve --dev`` (uvloop if installed, RLIMIT_NOFILE raised by the CLI)."""
    config = Path(tempfile.gettempdir()) / f"hub-bench-{os.getpid()}-{port}.toml"
    config.write_text(toml)
    cmd = [sys.executable, "-m", "hubbub", "serve", "--dev", "--api-key", API_KEY]
    if profile:  # cProfile writes its statistics when the hub exits on SIGTERM
        cmd[1:1] = ["-m", "cProfile", "-o", profile]
    cmd += ["--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    if broker:
        cmd += ["--broker", broker]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    # The log goes to a file: a pipe nobody reads would stall the hub once full.
    log_path = Path(tempfile.gettempdir()) / f"hub-bench-{os.getpid()}-{port}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
    if wait_healthy(proc, port):
        return proc
    err = log_path.read_text(errors="replace")
    raise RuntimeError(f"the hub did not start: {err[-2000:]}")


def stop_hub(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(40)  # --workers: the supervisor waits for every worker to drain
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Publisher:
    """``POST /api/publish`` over one kept-alive HTTP/1.1 connection (reopened if closed)."""

    def __init__(self, port: int, payload: int) -> None:
        self.port = port
        self.payload = payload
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def publish(self, seq: int, count: int = 1) -> None:
        """Publish ``seq``, or ``seq`` to ``seq + count - 1`` in one ``publish_batch``."""
        if count == 1:
            path = "publish"
            params: Any = {"channel": CHANNEL, "data": make_data(seq, self.payload)}
        else:
            path = "publish_batch"
            pubs = [
                {"channel": CHANNEL, "data": make_data(seq + i, self.payload)} for i in range(count)
            ]
            params = {"publications": pubs}
        body = json.dumps(params).encode()
        head = (
            f"POST /api/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            self.writer.write(head + body)
            try:
                status = await self.reader.readline()
                if not status:
                    raise ConnectionError("closed")
                length, close = 0, False
                while (line := await self.reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "connection" and "close" in value.lower():
                        close = True
                answer = await self.reader.readexactly(length)
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
                continue
            if close:
                self.close()
            if b" 200 " not in status:
                raise RuntimeError(f"publish: {status!r} {answer[:200]!r}")
            return

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def run_publisher(args: argparse.Namespace, shared: dict[str, Any]) -> int:
    """Publish until the phase leaves RUNNING/MEASURING; return the last sequence number."""
    pub = Publisher(args.port, args.payload)
    phase, progress = shared["phase"], shared["progress"]
    seq = 0
    batch = args.batch
    interval = 0.0 if args.rate == "max" else batch / float(args.rate)
    next_at = time.monotonic()
    try:
        while phase.value in (RUNNING, MEASURING):
            if interval:
                next_at += interval
                # Short sleeps: a slow rate must not delay the end of the run.
                while (delay := next_at - time.monotonic()) > 0 and phase.value != DRAINING:
                    await asyncio.sleep(min(delay, 0.05))
                if phase.value == DRAINING:
                    break
            else:
                while seq + batch - min(progress[:]) > args.window and phase.value != DRAINING:
                    await asyncio.sleep(0.0005)
            await pub.publish(seq + 1, batch)
            seq += batch
    finally:
        pub.close()
    return seq


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k] / 1e6  # ns -> ms


def run_once(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    """One repetition of one scenario against a fresh hub."""
    args = argparse.Namespace(**vars(args))
    args.scenario = scenario
    n = args.subscribers if scenario == "fanout" else args.users
    if scenario == "direct" and args.rate != "max":
        pass
    nodes = getattr(args, "nodes", 1)
    args.ports = [free_port() for _ in range(nodes)]
    args.port = args.ports[0]  # the publisher's node
    ctx = mp.get_context("fork")
    P = args.processes
    shared, shm_path = shared_memory(P, CONNECTING)
    redis: RedisProcess | None = None
    hubs: list[subprocess.Popen[bytes]] = []
    procs: list[tuple[Any, Pipe | CClient]] = []
    result: dict[str, Any] = {"scenario": scenario, "connections": n, "nodes": nodes}
    result["broker"] = getattr(args, "broker", "memory")
    started = time.monotonic()
    try:
        if result["broker"] == "redis":
            redis = RedisProcess(free_port())
            redis.start()
        broker = redis.url if redis else None
        if broker and args.redis_max_connections:
            # redis-py's pool fails a command at once ("Too many connections")
            # beyond 100 (its default); a connection storm exceeds that.
            broker += f"?max_connections={args.redis_max_connections}"
        args.redis_port = redis.port if redis else None
        for i, port in enumerate(args.ports):
            profile = args.hub_profile if i == 0 else None
            if args.peer == "socketio":
                hubs.append(start_socketio(port))
            else:
                hubs.append(start_hub(port, profile, broker, workers=args.workers))
        started = time.monotonic()
        stride = max(1, n // args.sample_conns) if scenario == "fanout" else 1
        for wid in range(P):
            if args.client_binary:
                cclient = CClient(
                    args.client_binary, args, wid, n, shm_path=shm_path, sample_stride=stride
                )
                procs.append((cclient, cclient))
                continue
            users = [f"u{i}" for i in range(wid, n, P)]
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=worker_main, args=(args, wid, users, shared, child))
            proc.start()
            procs.append((proc, parent))
        # Connect, with progress.
        last_print = 0.0
        while True:
            opened = sum(shared["opened"][:])
            elapsed = time.monotonic() - started
            failed = [p for p, pipe in procs if pipe.poll() or not p.is_alive()]
            if opened >= n or failed or elapsed > args.connect_timeout:
                break
            if elapsed - last_print >= 1:
                last_print = elapsed
                log(args, f"  [{scenario}] {elapsed:5.1f} s: {opened}/{n} connections open")
            time.sleep(0.05)
        result["connect_s"] = round(time.monotonic() - started, 2)
        if opened < n:
            errors = [pipe.recv().get("error") for _p, pipe in procs if pipe.poll()]
            raise RuntimeError(f"only {opened}/{n} connections opened: {errors}")
        log(args, f"  [{scenario}] {n} connections open in {result['connect_s']} s")
        pids = [proc.pid for proc, _pipe in procs if proc.pid is not None]
        hub_pids = [hub.pid for hub in hubs]
        if args.workers > 1:  # the supervisor's CPU and every worker's
            hub_pids += worker_pids(args.port)
        if args.pin:
            result["pinned"] = pin_processes(hub_pids, [*pids, os.getpid()])
        redis_pid = redis.pid if redis else None
        result.update(
            asyncio.run(drive(args, scenario, shared, hub_pids, redis=redis_pid, clients=pids))
        )
        results: list[dict[str, Any]] = [
            pipe.recv() if pipe.poll(args.drain + 30) else {"error": "no result"}
            for _p, pipe in procs
        ]
    finally:
        shared["phase"].value = DRAINING
        for proc, _pipe in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        for hub in hubs:
            stop_hub(hub)
        if redis is not None:
            redis.stop()
        os.unlink(shm_path)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"client process failed: {errors}")
    lat: list[int] = []
    for r in results:
        a = array.array("q")
        a.frombytes(r["lat"])
        lat.extend(a)
    lat.sort()
    cross = array.array("q")
    for r in results:
        cross.frombytes(r["lat_cross"])
    lat_cross = sorted(cross)
    window = result.pop("window_s")
    deliveries = sum(r["deliveries"] for r in results)
    total = sum(r["total"] for r in results)
    if scenario == "fanout":
        expected = result["published"] * n
    else:
        expected = sum(r["sent_live"] for r in results)
        result["sent_not_live"] = sum(r["sent_other"] for r in results)
        result["sent"] = expected + result["sent_not_live"]
    result.update(
        deliveries=deliveries,
        deliveries_per_s=round(deliveries / window),
        p50_ms=round(percentile(lat, 0.50), 3),
        p99_ms=round(percentile(lat, 0.99), 3),
        max_ms=round(lat[-1] / 1e6, 3) if lat else None,
        latency_samples=len(lat),
        total_delivered=total,
        expected=expected,
        missing=expected - total,
        closed_connections=sum(r["closed"] for r in results),
        close_codes=sorted({c for r in results for c in r["close_codes"]}),
        errors=[e for r in results for e in r["errors"]][:5],
    )
    result["hub_deliveries_per_cpu_s"] = (
        round(deliveries / result["hub_cpu_s"]) if result["hub_cpu_s"] else None
    )
    add_cpu_per_delivery(result)
    info = result.pop("redis_info", None)
    if info is not None:
        result.update(redis_per_delivery(info[0], info[1], deliveries))
    result["server"] = args.peer
    result["workers"] = args.workers
    if nodes > 1 or result["broker"] == "redis":
        add_node_figures(result, results, lat_cross, nodes, deliveries)
    return result


def add_node_figures(
    result: dict[str, Any],
    results: list[dict[str, Any]],
    lat_cross: list[int],
    nodes: int,
    deliveries: int,
) -> None:
    """Multi-node figures: cross-node latency, completeness per node, CPU with Redis."""
    per_node = [0] * nodes
    conns = [0] * nodes
    for r in results:
        for count, node in zip(r["counts"], r["nodes"], strict=True):
            per_node[node] += count
            conns[node] += 1
    result["connections_per_node"] = conns
    result["delivered_per_node"] = per_node
    if result["scenario"] == "fanout":
        result["missing_per_node"] = [
            result["published"] * c - d for c, d in zip(conns, per_node, strict=True)
        ]
        result["cross_p50_ms"] = round(percentile(lat_cross, 0.50), 3) if lat_cross else None
        result["cross_p99_ms"] = round(percentile(lat_cross, 0.99), 3) if lat_cross else None
        result["cross_latency_samples"] = len(lat_cross)
    cpu = result["hub_cpu_s"] + (result.get("redis_cpu_s") or 0.0)
    result["deliveries_per_cpu_s_with_redis"] = round(deliveries / cpu) if cpu else None


async def drive(
    args: argparse.Namespace,
    scenario: str,
    shared: dict[str, Any],
    hubs: list[int],
    *,
    redis: int | None,
    clients: list[int],
) -> dict[str, Any]:
    """Run the warm-up and the measured window; return timing and CPU use."""
    phase = shared["phase"]
    phase.value = RUNNING
    publisher = asyncio.create_task(run_publisher(args, shared)) if scenario == "fanout" else None
    await asyncio.sleep(args.warmup)
    info0 = redis_info(args.redis_port) if args.redis_port else None
    cpu0, t0 = [cpu_seconds(p) for p in hubs], time.monotonic()
    redis0 = cpu_seconds(redis) if redis else 0.0
    clients0 = sum(cpu_seconds(c) for c in clients)
    phase.value = MEASURING
    while (elapsed := time.monotonic() - t0) < args.duration:
        await asyncio.sleep(min(1.0, args.duration - elapsed))
        log(args, f"  [{scenario}] measuring: {time.monotonic() - t0:4.1f}/{args.duration} s")
    phase.value = DRAINING
    t1, cpu1 = time.monotonic(), [cpu_seconds(p) for p in hubs]
    redis1 = cpu_seconds(redis) if redis else 0.0
    info1 = redis_info(args.redis_port) if args.redis_port else None
    clients1 = sum(cpu_seconds(c) for c in clients)
    outboxes = [hub_gauge(port, "hubbub_outbox_messages") for port in args.ports]
    hub_cpu = sum(cpu1) - sum(cpu0)
    out: dict[str, Any] = {
        "window_s": t1 - t0,
        "hub_cpu_s": round(hub_cpu, 3),
        "hub_cpu_pct": round(100 * hub_cpu / (t1 - t0), 1),
        "hub_rss_mib": round(sum(rss_mib(p) for p in hubs), 1),
        "clients_cpu_pct": round(100 * (clients1 - clients0) / (t1 - t0), 1),
        "hub_outbox_messages_at_end": None if None in outboxes else sum(filter(None, outboxes)),
    }
    if len(hubs) > 1 or redis:
        out["hub_cpu_pct_per_node"] = [
            round(100 * (b - a) / (t1 - t0), 1) for a, b in zip(cpu0, cpu1, strict=True)
        ]
    if info0 is not None and info1 is not None:
        out["redis_info"] = (info0, info1)
    if redis:
        out["redis_cpu_s"] = round(redis1 - redis0, 3)
        out["redis_cpu_pct"] = round(100 * (redis1 - redis0) / (t1 - t0), 1)
    if publisher is not None:
        published = await publisher
        shared["final_seq"].value = published
        out["published"] = published
        out["publishes_per_s"] = round(published / (t1 - t0 + args.warmup), 1)
    return out


def hub_gauge(port: int, name: str) -> float | None:
    """One value of the hub's /metrics (messages queued for slow clients, ...)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return None


def log(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ["deliveries_per_s", "p50_ms", "p99_ms", "hub_cpu_pct", "clients_cpu_pct"]
    keys += ["hub_deliveries_per_cpu_s"]
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["missing"] = sum(r["missing"] for r in runs)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "scenarios",
        nargs="?",
        default="fanout,direct",
        help="comma-separated: fanout, direct (default both)",
    )
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument(
        "--rate", default="max", help="publishes/s (fanout) or sends/s (direct), or 'max' (default)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=0,
        help="with --rate max: publishes not yet fully delivered (fanout, "
        "default 2), or requests in flight per process (direct, default 128 in all)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="fanout: publications per request (POST /api/publish_batch above 1; "
        "--window then defaults to twice this)",
    )
    parser.add_argument("--payload", type=int, default=100, help="data bytes (default 100)")
    parser.add_argument(
        "--client",
        choices=("auto", "c", "python"),
        default="auto",
        help="c: hub_loadgen.c (compiled on first use), python: hub_bench_clients.py; "
        "auto (default): c if a C compiler is found",
    )
    parser.add_argument(
        "--processes", type=int, default=0, help="client processes (default 1 for c, 2 for python)"
    )
    parser.add_argument("--reps", type=int, default=1, help="repetitions (fresh hub each)")
    parser.add_argument(
        "--sample-conns",
        type=int,
        default=2000,
        help="connections whose latencies are recorded (fanout)",
    )
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument(
        "--drain",
        type=float,
        default=30.0,
        help="seconds to wait for deliveries in flight after the window",
    )
    parser.add_argument("--json", metavar="OUT", help="write every run and the medians here")
    parser.add_argument(
        "--hub-profile", metavar="FILE", help="run the hub under cProfile, stats to FILE"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the hub to a CPU of its own and the clients to the others (measuring only)",
    )
    parser.add_argument("--nodes", type=int, default=1, help="hub nodes (needs --broker redis)")
    parser.add_argument(
        "--broker", choices=("memory", "redis"), default="memory", help="redis: a real redis-server"
    )
    parser.add_argument(
        "--redis-max-connections",
        type=int,
        default=1000,
        help="each node's Redis pool size, in the broker URL (0: redis-py's default, 100)",
    )
    parser.add_argument(
        "--compare-nodes",
        metavar="1,2",
        help="fanout only: node counts run interleaved --reps times (1 = memory and redis)",
    )
    add_side_by_side_options(parser)
    args = parser.parse_args(argv)
    if args.nodes < 1 or (args.nodes > 1 and args.broker != "redis"):
        parser.error("--nodes above 1 needs --broker redis")
    if args.rate != "max" and float(args.rate) <= 0:
        parser.error("--rate must be positive or 'max'")
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.window and args.window < args.batch:
        parser.error("--window must be at least --batch")
    for name in args.scenarios.split(","):
        if name not in ("fanout", "direct"):
            parser.error(f"unknown scenario {name!r}")
    args.client_binary = None
    if args.client != "python":
        args.client_binary = find_hub_loadgen()
        if args.client_binary is None:
            if args.client == "c":
                parser.error("--client c: no C compiler (set CC) to build hub_loadgen.c")
            print("no C compiler: using the Python clients", file=sys.stderr)
    args.client = "c" if args.client_binary else "python"
    check_side_by_side_options(parser, args)
    args.processes = args.processes or (1 if args.client_binary else 2)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile()
    install_uvloop()
    report: dict[str, Any] = {"args": {k: v for k, v in vars(args).items() if k != "json"}}
    if args.compare_peers or args.compare_workers:
        compared = compare_peers if args.compare_peers else compare_workers
        report["compare"] = compared(args, run_once, lambda text: log(args, text))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        return 0
    if args.compare_nodes:
        cargs = argparse.Namespace(**vars(args))
        cargs.window = cargs.window or 2 * cargs.batch
        report["compare"] = compare(cargs, run_once, lambda text: log(args, text))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        return 0
    for scenario in args.scenarios.split(","):
        sargs = argparse.Namespace(**vars(args))
        if not sargs.window:
            # direct: 128 requests in flight in all, however many processes
            sargs.window = (
                2 * sargs.batch if scenario == "fanout" else max(1, 128 // sargs.processes)
            )
        runs = []
        for rep in range(args.reps):
            log(args, f"{scenario}: repetition {rep + 1}/{args.reps}")
            run = run_once(sargs, scenario)
            runs.append(run)
            print(json.dumps(run), flush=True)
        report[scenario] = {"runs": runs, "median": summarize(runs)}
        print(f"{scenario} median: {json.dumps(report[scenario]['median'])}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
