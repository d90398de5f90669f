"""The blocking adapter against ``websockets.sync``: servers for run.py, and a client race.

Usage::

    python benchmarks/sync_bench.py serve --impl hubbub --port 8765
    python benchmarks/sync_bench.py clients --scenarios rr,large64k --duration 4

``serve`` runs a thread-per-connection echo server with the benchmark's
convention (see ``benchmarks/peers.py``: echo every message; a text message
``broadcast:<payload>`` sends ``<payload>`` to every open connection, one
``send()`` each): ``hubbub.sync.serve`` (``--impl hubbub``) or
``websockets.sync.server.serve`` (``--impl websockets``), compression and
keepalive off, 64 MiB messages allowed. ``benchmarks/run.py`` lists them as
``hubbub-sync`` and ``websockets-sync`` and drives them with its C load
generator.

``clients`` measures the blocking *clients*: one ``hubbub echo`` server (callback
mode, a separate process) and, in turns, each library's blocking client doing
request/response or keeping messages in flight from one thread. It reports
messages (or MB) per second and per client CPU-second (the process's own CPU
time, read around the measured part), and the ratio hubbub / websockets within
each repetition. On a shared machine read the per-CPU-second ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIG = 64 * 2**20
BACKLOG = 1024
PREFIX = "broadcast:"
HERE = Path(__file__).resolve().parent


# --- servers ----------------------------------------------------------------------------


def hubbub_server(port: int) -> None:
    from hubbub.sync import serve

    def echo(ws: Any) -> None:
        for message in ws:
            if isinstance(message, str) and message.startswith(PREFIX):
                payload = message[len(PREFIX) :]
                for other in ws.server.connections:
                    other.send(payload)
            else:
                ws.send(message)

    with serve(
        echo,
        "127.0.0.1",
        port,
        max_size=BIG,
        compression=None,
        ping_interval=None,
        backlog=BACKLOG,
    ) as server:
        server.serve_forever()


def websockets_server(port: int) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import serve

    connections: set[Any] = set()
    lock = threading.Lock()

    def echo(ws: Any) -> None:
        with lock:
            connections.add(ws)
        try:
            for message in ws:
                if isinstance(message, str) and message.startswith(PREFIX):
                    payload = message[len(PREFIX) :]
                    with lock:
                        others = list(connections)
                    for other in others:
                        with contextlib.suppress(ConnectionClosed):
                            other.send(payload)
                else:
                    ws.send(message)
        finally:
            with lock:
                connections.discard(ws)

    with serve(
        echo, "127.0.0.1", port, max_size=BIG, compression=None, ping_interval=None
    ) as server:
        server.serve_forever()


SERVERS: dict[str, Callable[[int], None]] = {
    "hubbub": hubbub_server,
    "websockets": websockets_server,
}


# --- clients ----------------------------------------------------------------------------


def hubbub_client(url: str) -> tuple[Callable[[Any], None], Callable[[], Any], Callable[[], None]]:
    from hubbub.sync import connect

    ws = connect(url, max_size=BIG, compression=None, ping_interval=None)
    return ws.send, ws.recv, ws.close


def websockets_client(
    url: str,
) -> tuple[Callable[[Any], None], Callable[[], Any], Callable[[], None]]:
    from websockets.sync.client import connect

    ws = connect(url, max_size=BIG, compression=None, ping_interval=None)
    return ws.send, ws.recv, ws.close


CLIENTS = {"hubbub": hubbub_client, "websockets": websockets_client}

# name: (message, messages in flight)
CLIENT_SCENARIOS: dict[str, tuple[bytes | str, int]] = {
    "rr": ("x" * 64, 1),
    "stream": ("x" * 64, 100),
    "large64k": (bytes(65536), 8),
    "large1m": (bytes(2**20), 2),
}


def run_client(
    impl: str, url: str, scenario: str, duration: float, warmup: float
) -> dict[str, Any]:
    """One blocking client in this process: rate and rate per CPU-second of this process."""
    message, window = CLIENT_SCENARIOS[scenario]
    send, recv, close = CLIENTS[impl](url)
    size = len(message)
    try:
        for _ in range(window):
            send(message)
        count = 0
        start = time.monotonic()
        measuring = False
        t0 = c0 = 0.0
        while True:
            recv()
            send(message)
            count += 1
            now = time.monotonic()
            if not measuring and now - start >= warmup:
                measuring, count = True, 0
                t0, c0 = now, time.process_time()
            elif measuring and now - t0 >= duration:
                break
        t1, c1 = time.monotonic(), time.process_time()
        for _ in range(window):
            recv()
    finally:
        close()
    rate = count / (t1 - t0)
    value = rate * size / 1e6 if scenario.startswith("large") else rate
    return {
        "impl": impl,
        "scenario": scenario,
        "value": value,
        "per_cpu_s": value * (t1 - t0) / (c1 - c0),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clients(args: argparse.Namespace) -> int:
    """Race the blocking clients against one ``hubbub echo`` server."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hubbub",
            "echo",
            "--port",
            str(port),
            "--ping-interval",
            "0",
            "--max-size",
            "64MiB",
            "--no-compression",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("hubbub echo did not start")
                time.sleep(0.05)
        results: list[dict[str, Any]] = []
        for scenario in args.scenarios.split(","):
            for rep in range(args.reps):
                order = list(CLIENTS) if rep % 2 == 0 else list(reversed(CLIENTS))
                for impl in order:
                    # Each client in a fresh process: its CPU time is its own.
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "client",
                            "--impl",
                            impl,
                            "--url",
                            f"ws://127.0.0.1:{port}/",
                            "--scenario",
                            scenario,
                            "--duration",
                            str(args.duration),
                            "--warmup",
                            str(args.warmup),
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=120,
                    )
                    result = json.loads(out.stdout)
                    result["rep"] = rep
                    results.append(result)
                    print(json.dumps(result), flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
    print("\n| scenario | hubbub | websockets | ratio | per CPU-s ratio |\n|---|---|---|---|---|")
    for scenario in args.scenarios.split(","):
        rows = {(r["impl"], r["rep"]): r for r in results if r["scenario"] == scenario}
        reps = range(args.reps)
        ratio = statistics.median(
            rows["hubbub", r]["value"] / rows["websockets", r]["value"] for r in reps
        )
        cpu_ratio = statistics.median(
            rows["hubbub", r]["per_cpu_s"] / rows["websockets", r]["per_cpu_s"] for r in reps
        )
        ours = statistics.median(rows["hubbub", r]["value"] for r in reps)
        theirs = statistics.median(rows["websockets", r]["value"] for r in reps)
        print(f"| {scenario} | {ours:,.0f} | {theirs:,.0f} | {ratio:.2f}x | {cpu_ratio:.2f}x |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="a thread-per-connection echo server")
    serve.add_argument("--impl", choices=list(SERVERS), required=True)
    serve.add_argument("--port", type=int, required=True)
    race = sub.add_parser("clients", help="race the blocking clients")
    race.add_argument("--scenarios", default=",".join(CLIENT_SCENARIOS))
    race.add_argument("--reps", type=int, default=3)
    race.add_argument("--duration", type=float, default=4.0)
    race.add_argument("--warmup", type=float, default=1.0)
    one = sub.add_parser("client", help="one client run (used by clients)")
    one.add_argument("--impl", choices=list(CLIENTS), required=True)
    one.add_argument("--url", required=True)
    one.add_argument("--scenario", choices=list(CLIENT_SCENARIOS), required=True)
    one.add_argument("--duration", type=float, default=4.0)
    one.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    if args.command == "serve":
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        SERVERS[args.impl](args.port)
        return 0
    if args.command == "client":
        print(
            json.dumps(run_client(args.impl, args.url, args.scenario, args.duration, args.warmup))
        )
        return 0
    return clients(args)


if __name__ == "__main__":
    sys.exit(main())
