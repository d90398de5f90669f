"""The hub's CPU instructions per delivery, counted by callgrind (a busy machine cannot move them).

Theory of operation
-------------------

On a shared machine, rates and even CPU seconds move by tens of percent from
run to run. Instruction counts do not: this script runs a real ``hubbub serve``
(in-process broker, the settings of ``hub_bench.py``) under valgrind's
callgrind with instrumentation off, opens ``--users`` connections with
hubbub's own client (no compression, as ``hub_bench.py``'s clients), then
turns instrumentation on for a fixed amount of work only and divides the
hub's instructions by the deliveries:

* ``direct``: ``--messages`` ``send`` requests, each to one other user, at
  most 20 in flight; every reply and every ``message`` push is read;
* ``fanout``: ``--messages`` ``publish`` requests to a channel every
  connection subscribed, one at a time, each read by every subscriber; with
  ``--batch N``, the same publications in ``POST /api/publish_batch``
  requests of N each (what one loop iteration fans out: one write per
  subscriber and batch).

User-space instructions only (what the kernel does for each ``send(2)`` is
not counted: see ``perf`` in docs/hub-performance.md). Housekeeping that runs
every second (ticks, pings) is counted too, so a much slower run counts a
little more. ``--src DIR`` runs the hub from another source tree (a copy of
another version's ``src``) for before/after pairs. Needs ``valgrind``. Usage::

    python benchmarks/hub_callgrind.py direct --users 100 --messages 2000
    python benchmarks/hub_callgrind.py fanout --users 500 --messages 40 --src /tmp/main/src
    python benchmarks/hub_callgrind.py fanout --users 500 --messages 40 --batch 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hub_bench import HUB_TOML

from hubbub.asyncio import ClientConnection, connect

DATA = "S0000000001T" + "x" * 88  # 100 characters, as hub_bench.py sends
IN_FLIGHT = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def callgrind_control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, stdout=subprocess.DEVNULL)


async def open_clients(port: int, users: int, channel: str | None) -> list[ClientConnection]:
    clients = []
    for i in range(users):
        ws = await connect(
            f"ws://127.0.0.1:{port}/",
            subprotocols=["hubbub.json.v1"],
            open_timeout=60,
            ping_interval=None,  # a slow hub under valgrind must not be pinged away
            compression=None,
        )
        await ws.send(json.dumps({"id": 1, "method": "connect", "params": {"name": f"u{i}"}}))
        await ws.recv()
        if channel is not None:
            params = {"channel": channel}
            await ws.send(json.dumps({"id": 2, "method": "subscribe", "params": params}))
            await ws.recv()
        clients.append(ws)
    return clients


async def direct(clients: list[ClientConnection], messages: int) -> int:
    users = len(clients)
    rnd = random.Random(1)
    owed = [0] * users  # messages each connection must still read

    async def reader(i: int, ws: ClientConnection) -> None:
        while True:
            await ws.recv()
            owed[i] -= 1

    readers = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(clients)]
    for k in range(messages):
        i = rnd.randrange(users)
        j = (i + 1 + rnd.randrange(users - 1)) % users
        owed[i] += 1  # the reply
        owed[j] += 1  # the push
        request = {"id": 10 + k, "method": "send", "params": {"to": [f"u{j}"], "data": DATA}}
        await clients[i].send(json.dumps(request))
        while sum(owed) > 2 * IN_FLIGHT:
            await asyncio.sleep(0.002)
    while any(owed):
        await asyncio.sleep(0.01)
    for task in readers:
        task.cancel()
    return messages


async def fanout(clients: list[ClientConnection], messages: int, channel: str) -> int:
    publisher = clients[0]

    async def drain(ws: ClientConnection, n: int) -> None:
        for _ in range(n):
            await ws.recv()

    for k in range(messages):
        request = {"id": 10 + k, "method": "publish", "params": {"channel": channel, "data": DATA}}
        await publisher.send(json.dumps(request))
        # The publisher reads its reply and the publication.
        await asyncio.gather(*(drain(ws, 2 if ws is publisher else 1) for ws in clients))
    return messages * len(clients)


async def fanout_batches(
    clients: list[ClientConnection], messages: int, channel: str, port: int, batch: int
) -> int:
    async def drain(ws: ClientConnection, n: int) -> None:
        for _ in range(n):
            await ws.recv()

    for _ in range(messages // batch):
        pubs = [{"channel": channel, "data": DATA}] * batch
        body = json.dumps({"publications": pubs}).encode()
        # A connection per request: the hub may close it after its answer.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"POST /api/publish_batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer K\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert b" 200 " in head, head
        finally:
            writer.close()
        await asyncio.gather(*(drain(ws, batch) for ws in clients))
    return messages // batch * batch * len(clients)


def total_instructions(out: Path) -> int:
    total = 0
    for part in out.parent.glob(out.name + "*"):
        for line in part.read_text(errors="replace").splitlines():
            match = re.match(r"(?:summary|totals): (\d+)", line)
            if match:
                total = max(total, int(match.group(1)))
    return total


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="hub-callgrind-"))
    config = work / "hub.toml"
    config.write_text(HUB_TOML)
    out = work / "callgrind.out"
    env = dict(os.environ, PYTHONHASHSEED="0")
    if args.src:
        env["PYTHONPATH"] = args.src
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    cmd += [sys.executable, "-m", "hubbub", "serve", "--dev", "--api-key", "K"]
    cmd += ["--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with (work / "hub.log").open("wb") as log:
        hub = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or hub.poll() is not None:
                    raise RuntimeError(f"the hub did not start: see {work / 'hub.log'}") from None
                await asyncio.sleep(0.2)
        channel = "bench:callgrind" if args.scenario == "fanout" else None
        clients = await open_clients(port, args.users, channel)
        await asyncio.sleep(1)
        callgrind_control("-i", "on", str(hub.pid))
        if args.scenario == "direct":
            deliveries = await direct(clients, args.messages)
        elif args.batch:
            assert channel is not None
            deliveries = await fanout_batches(clients, args.messages, channel, port, args.batch)
        else:
            assert channel is not None
            deliveries = await fanout(clients, args.messages, channel)
        callgrind_control("-i", "off", str(hub.pid))
        callgrind_control("-d", str(hub.pid))
        for ws in clients:
            ws.abort()
    finally:
        hub.terminate()
        hub.wait(60)
    instructions = total_instructions(out)
    return {
        "scenario": args.scenario,
        "src": args.src or "installed",
        "users": args.users,
        "batch": args.batch,
        "deliveries": deliveries,
        "instructions": instructions,
        "instructions_per_delivery": round(instructions / deliveries),
        "profile": str(out) + ".1",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("scenario", choices=["direct", "fanout"])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--messages", type=int, default=2000, help="sends, or publications")
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        help="fanout: publish with POST /api/publish_batch, N publications per request "
        "(default 0: WebSocket publish requests, one at a time)",
    )
    parser.add_argument("--src", help="run the hub with PYTHONPATH=SRC (another version)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
