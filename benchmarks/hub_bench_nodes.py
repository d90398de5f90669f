"""Multi-node support for benchmarks/hub_bench.py: a real Redis and the node comparison.

Theory of operation
-------------------

``hub_bench.py --nodes N --broker redis`` starts, for every repetition, a fresh
``redis-server`` (:class:`RedisProcess`: Debian's binary, no persistence, a
free loopback port) and N ``hubbub serve --broker redis://127.0.0.1:P/0``
nodes with the single-node benchmark's settings. The client processes spread
the subscribers evenly over the nodes (user ``u<i>`` on node ``i % N``) and
the publisher posts to node 0's HTTP API, so every delivery on another node
went node 0 -> Redis pub/sub -> that node: the cross-node path.

``--compare-nodes 1,2`` (:func:`compare`) runs, interleaved and repeated
``--reps`` times, one node on the memory broker, one node on Redis (the
broker's own cost) and each larger count on Redis, then prints the medians and
the ratios of N nodes to one node, for deliveries/s and for deliveries per hub
CPU-second. Interleaving spreads the drift of a shared machine's load over all
configurations instead of charging it to one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_ping(port: int) -> bool:
    """Whether a Redis on ``port`` answers PING (inline command, RESP reply)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """One ``redis-server`` on a loopback port, without persistence, in a temp dir."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.workdir = tempfile.mkdtemp(prefix="hub-bench-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        """Start the server; wait until it answers PING (10 s at most)."""
        cmd = [REDIS_SERVER, "--save", "", "--appendonly", "no", "--port", str(self.port)]
        cmd += ["--bind", "127.0.0.1", "--dir", self.workdir]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not redis_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Terminate the server by PID, reap it and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)


def configurations(counts: list[int]) -> list[tuple[str, int, str]]:
    """(label, nodes, broker) for ``--compare-nodes``: one node on both brokers."""
    out: list[tuple[str, int, str]] = []
    for n in counts:
        if n == 1:
            out += [("1 node, memory", 1, "memory"), ("1 node, redis", 1, "redis")]
        else:
            out.append((f"{n} nodes, redis", n, "redis"))
    return out


MEDIAN_KEYS = [
    "deliveries_per_s",
    "p50_ms",
    "p99_ms",
    "cross_p50_ms",
    "cross_p99_ms",
    "hub_cpu_pct",
    "redis_cpu_pct",
    "clients_cpu_pct",
    "hub_deliveries_per_cpu_s",
    "deliveries_per_cpu_s_with_redis",
]


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["missing"] = sum(r["missing"] for r in runs)
    return out


def compare(
    args: argparse.Namespace,
    run_once: Callable[[argparse.Namespace, str], dict[str, Any]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run the configurations interleaved, ``args.reps`` times; medians and ratios."""
    counts = [int(n) for n in args.compare_nodes.split(",")]
    configs = configurations(counts)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _n, _b in configs}
    for rep in range(args.reps):
        for label, nodes, broker in configs:
            log(f"compare: repetition {rep + 1}/{args.reps}, {label}")
            cargs = argparse.Namespace(**vars(args))
            cargs.nodes, cargs.broker = nodes, broker
            run = run_once(cargs, "fanout")
            run["config"] = label
            runs[label].append(run)
            print(json.dumps(run), flush=True)
    medians = {label: median_of(r) for label, r in runs.items()}
    ratios: dict[str, dict[str, float | None]] = {}
    for label, nodes, _broker in configs:
        if nodes == 1:
            continue
        for base in ("1 node, memory", "1 node, redis"):
            if base not in medians:
                continue
            ratios[f"{label} / {base}"] = {
                key: ratio(medians[label][key], medians[base][key])
                for key in ("deliveries_per_s", "hub_deliveries_per_cpu_s")
            }
    print_table(medians, ratios)
    return {"runs": runs, "median": medians, "ratios": ratios}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def print_table(medians: dict[str, dict[str, Any]], ratios: dict[str, Any]) -> None:
    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"

    head = "| configuration | deliveries/s | p50 ms | p99 ms | cross p50 | cross p99 | hub CPU %"
    head += " | redis CPU % | clients CPU % | deliveries / hub CPU-s | missing |"
    print(head)
    print("|" + "---|" * head.count(" | ") + "---|")
    for label, m in medians.items():
        cells = [fmt(m[k]) for k in MEDIAN_KEYS if k != "deliveries_per_cpu_s_with_redis"]
        print(f"| {label} | " + " | ".join(cells) + f" | {m['missing']} |")
    for name, values in ratios.items():
        print(
            f"ratio {name}: deliveries/s x{values['deliveries_per_s']}, "
            f"per hub CPU-s x{values['hub_deliveries_per_cpu_s']}"
        )
