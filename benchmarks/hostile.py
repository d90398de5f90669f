"""Hostile clients against a hubbub server, with a well-behaved client measuring.

Starts the target server in a child process: ``hubbub echo`` (callback mode)
or an ``async for`` echo server on :func:`hubbub.asyncio.serve` (queue mode).
For each attack, an attacker process hits it for ``--seconds`` while this
process, as a well-behaved client, repeatedly opens a connection, sends one
message, waits for its echo and closes (connect + echo latency), and the
server's RSS is sampled from /proc every 100 ms.

Attacks (issue 12):

* ``none``: the baseline;
* ``ping-flood``: 4 connections send 125-byte pings as fast as they can and
  never read (finding 1);
* ``deflate-burst``: 4 connections each send 1,000 messages of 1 MiB of zeros,
  compressed (about 1 MB on the wire), again and again, reading nothing
  (finding 2);
* ``conn-flood``: opens and closes 10,000 connections (finding 4);
* ``slow-body``: POSTs 4 MiB bodies over the limit without reading (finding 7).

Usage::

    .venv/bin/python benchmarks/hostile.py --server echo --seconds 10
    .venv/bin/python benchmarks/hostile.py --server async-for --attack ping-flood
    .venv/bin/python benchmarks/hostile.py --attack deflate-burst --repeat 5  # medians

The figures are latencies on whatever machine runs it: quote its load with
them. RSS growth is peak minus the RSS before the attack, and after: RSS once
the attack ended and a few seconds passed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
import zlib
from typing import Any

from conn_flood_memory import open_one, rss_mib

ASYNC_FOR_SERVER = r"""
import asyncio, sys
from hubbub.cli import _tune_malloc
from hubbub.asyncio import serve

_tune_malloc()

async def main() -> None:
    async def handler(ws):
        async for message in ws:
            await ws.send(message)

    async with serve(handler, "127.0.0.1", 0) as server:
        print(server.port, flush=True)
        await asyncio.Future()

asyncio.run(main())
"""

ATTACKS = ("none", "ping-flood", "deflate-burst", "conn-flood", "slow-body")


def start_server(kind: str) -> tuple[subprocess.Popen[str], int]:
    if kind == "echo":
        cmd = [sys.executable, "-m", "hubbub", "echo", "--port", "0"]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "hubbub echo listening on ws://127.0.0.1:PORT"
        return proc, int(line.rsplit(":", 1)[1])
    proc = subprocess.Popen(
        [sys.executable, "-c", ASYNC_FOR_SERVER], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


# --- the attacker (a child process) -------------------------------------------------------


def frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """A client frame masked with a zero key (which leaves the payload as it is)."""
    head = bytearray([0x80 | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return bytes(head) + b"\0\0\0\0" + payload


async def ws_socket(port: int, extensions: str | None = None) -> socket.socket:
    return await open_one(port, extensions, rcvbuf=4096)


async def send_for(sock: socket.socket, data: bytes, until: float) -> None:
    loop = asyncio.get_running_loop()
    while time.monotonic() < until:
        try:
            await asyncio.wait_for(
                loop.sock_sendall(sock, data), max(0.01, until - time.monotonic())
            )
        except (TimeoutError, OSError):
            return


async def attack(kind: str, port: int, seconds: float) -> None:
    until = time.monotonic() + seconds
    if kind == "ping-flood":
        socks = [await ws_socket(port) for _ in range(4)]
        pings = frame(0x9, b"p" * 125) * 1000
        await asyncio.gather(*(send_for(s, pings, until) for s in socks))
    elif kind == "deflate-burst":
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = (c.compress(bytes(2**20)) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        burst = frame(0x2, payload, rsv1=True) * 1000
        socks = [await ws_socket(port, "permessage-deflate") for _ in range(4)]
        await asyncio.gather(*(send_for(s, burst, until) for s in socks))
    elif kind == "conn-flood":
        while time.monotonic() < until:
            batch = await asyncio.gather(
                *(ws_socket(port) for _ in range(500)), return_exceptions=True
            )
            for s in batch:
                if isinstance(s, socket.socket):
                    s.close()
    elif kind == "slow-body":
        loop = asyncio.get_running_loop()
        body = b"x" * 4 * 2**20

        async def one() -> None:
            sock = socket.socket()
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, ("127.0.0.1", port))
                head = f"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
                await send_for(sock, head.encode() + body, until)
            finally:
                sock.close()

        while time.monotonic() < until:
            await asyncio.gather(*(one() for _ in range(8)), return_exceptions=True)
    else:
        await asyncio.sleep(seconds)
    for s in locals().get("socks", []):
        s.close()


def attacker(kind: str, port: int, seconds: float) -> None:
    asyncio.run(attack(kind, port, seconds))


# --- the well-behaved client ---------------------------------------------------------------


async def measure(port: int, seconds: float, pid: int, samples: list[float]) -> list[float]:
    from hubbub.asyncio import connect

    latencies: list[float] = []
    until = time.monotonic() + seconds

    async def sample_rss() -> None:
        while time.monotonic() < until:
            samples.append(rss_mib(pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.ensure_future(sample_rss())
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            async with connect(f"ws://127.0.0.1:{port}", open_timeout=30) as ws:
                await ws.send("hello")
                await asyncio.wait_for(ws.recv(), 30)
        except Exception as exc:  # a failure counts, as a very long latency
            print(f"  well-behaved client failed: {exc!r}")
            latencies.append(float("inf"))
            continue
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.01)
    await sampler
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(server_kind: str, attack_kind: str, seconds: float) -> dict[str, Any]:
    proc, port = start_server(server_kind)
    try:
        time.sleep(0.5)
        before = rss_mib(proc.pid)
        child = multiprocessing.Process(target=attacker, args=(attack_kind, port, seconds))
        child.start()
        samples: list[float] = []
        latencies = asyncio.run(measure(port, seconds, proc.pid, samples))
        child.join(seconds + 30)
        if child.is_alive():
            child.kill()
        time.sleep(3)
        after = rss_mib(proc.pid)
        return dict(
            server=server_kind,
            attack=attack_kind,
            n=len(latencies),
            p50_ms=statistics.median(latencies) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            rss_before=before,
            rss_growth=max(samples, default=before) - before,
            rss_after=after,
        )
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=("echo", "async-for", "both"), default="both")
    parser.add_argument("--attack", choices=(*ATTACKS, "all"), default="all")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each (server, attack) this many times, alternating; print the medians",
    )
    args = parser.parse_args()
    servers = ("echo", "async-for") if args.server == "both" else (args.server,)
    attacks = ATTACKS if args.attack == "all" else (args.attack,)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        f"{'server':10} {'attack':14} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'RSS MiB':>8} {'growth':>8} {'after':>8}"
    )
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for server_kind in servers:
            for attack_kind in attacks:
                r = run(server_kind, attack_kind, args.seconds)
                results.setdefault((server_kind, attack_kind), []).append(r)
                show(r)
    if args.repeat > 1:
        print(f"medians of {args.repeat} runs:")
        for (server_kind, attack_kind), runs in results.items():
            median = {
                key: statistics.median(r[key] for r in runs)
                for key in ("n", "p50_ms", "p99_ms", "rss_before", "rss_growth", "rss_after")
            }
            show(dict(median, server=server_kind, attack=attack_kind, n=int(median["n"])))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def show(r: dict[str, Any]) -> None:
    print(
        f"{r['server']:10} {r['attack']:14} {r['n']:5d} {r['p50_ms']:8.1f} "
        f"{r['p99_ms']:8.1f} {r['rss_before']:8.1f} {r['rss_growth']:+8.1f} "
        f"{r['rss_after']:8.1f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
