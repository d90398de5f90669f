"""Memory kept by a server after a flood of connections (issue 12, finding 4).

Starts an asyncio echo server in a child process (``hubbub.asyncio.serve``,
like ``hubbub echo``, with its malloc tuning), opens ``--connections``
WebSocket connections to it (full opening handshake, ``--batch`` at a time,
all held open together), closes them all, and samples the server's RSS from
/proc: before, at the peak, and a few seconds after the last close. With
``--no-trim`` the server's :class:`hubbub.allocator.HeapTrimmer` is off (the
behaviour before the fix).

Usage::

    .venv/bin/python benchmarks/conn_flood_memory.py --connections 10000 --rounds 3
    .venv/bin/python benchmarks/conn_flood_memory.py --connections 10000 --rounds 3 --no-trim

Memory figures are fine on a shared machine; this measures no speed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import time

SERVER = r"""
import asyncio, sys
from hubbub.cli import _tune_malloc
from hubbub.asyncio import serve

_tune_malloc()

async def main(trim: bool) -> None:
    async def handler(ws):
        ws.on_message = ws.send_nowait
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        if not trim:
            server.heap_trimmer.threshold = None
        print(server.port, flush=True)
        await asyncio.Future()

asyncio.run(main(sys.argv[1] == "trim"))
"""


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def open_one(
    port: int, extensions: str | None = None, rcvbuf: int | None = None
) -> socket.socket:
    """A raw socket past the opening handshake (also used by hostile.py)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    await loop.sock_sendall(
        sock,
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        ).encode(),
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await loop.sock_recv(sock, 1)  # not past the head
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head[:80])
    return sock


async def flood(port: int, count: int, batch: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    for start in range(0, count, batch):
        n = min(batch, count - start)
        socks += await asyncio.gather(*(open_one(port) for _ in range(n)))
    return socks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the closes")
    parser.add_argument("--no-trim", action="store_true", help="turn the heap trimmer off")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, "no" if args.no_trim else "trim"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        time.sleep(0.5)
        print(f"trim={'off' if args.no_trim else 'on'} connections={args.connections}")
        print(f"start: RSS {rss_mib(server.pid):.1f} MiB")
        for round_ in range(1, args.rounds + 1):
            socks = asyncio.run(flood(port, args.connections, args.batch))
            peak = rss_mib(server.pid)
            for sock in socks:
                sock.close()
            time.sleep(args.settle)
            after = rss_mib(server.pid)
            settle = f"{args.settle:.0f} s after closing"
            print(f"round {round_}: peak {peak:.1f} MiB, {settle} {after:.1f} MiB")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
