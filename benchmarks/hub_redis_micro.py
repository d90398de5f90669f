"""The Redis broker's CPU per direct send, in-process: no WebSocket, no hub.

Theory of operation
-------------------

What a node's broker does for one ``send`` to one user: ``online([user])``,
the inbox publish script, and the live entry coming back on the subscriber
connection to the listener of that inbox. This script runs a
:class:`~hubbub.hub.brokers.redis_broker.RedisBroker` against a fresh
``redis-server`` (loopback, no persistence), subscribes ``--users`` inboxes,
then runs ``--sends`` such sends with ``--concurrency`` of them in flight and
divides the process's CPU time (``time.process_time``: user + system, this
process only, so the load of a shared machine moves it less than a rate) by
the sends, once every entry has reached its listener. ``--src DIR`` runs
another version's source tree, ``--no-hiredis`` hides hiredis from redis-py
(its Python parser and packer then). Usage::

    python benchmarks/hub_redis_micro.py --concurrency 128
    python benchmarks/hub_redis_micro.py --concurrency 1 --src /tmp/main/src --no-hiredis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

DATA = "S0000000001T" + "x" * 88  # 100 characters, as hub_bench.py sends


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    import redis.utils

    from hubbub.hub.brokers.redis_broker import RedisBroker
    from hubbub.hub.core.streams import StreamLimits

    broker = RedisBroker(url, prefix=f"micro{os.getpid()}:")
    await broker.start()
    received = 0
    done = asyncio.Event()
    target = args.sends

    def listener(stream: str, item: object) -> None:
        nonlocal received
        received += 1
        if received == target:
            done.set()

    for u in range(args.users):
        await broker.subscribe(f"$inbox:u{u}", listener)
    limits = StreamLimits(1000, 7 * 86400.0)
    slots = asyncio.Semaphore(args.concurrency)

    async def send(k: int) -> None:
        user = f"u{k % args.users}"
        async with slots:
            await broker.online([user])
            await broker.publish(f"$inbox:{user}", DATA, sender="x", limits=limits)

    target = 200  # warm-up
    await asyncio.gather(*(send(k) for k in range(200)))
    await asyncio.wait_for(done.wait(), 30)
    received, target = 0, args.sends
    done.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(send(k) for k in range(args.sends)))
    await asyncio.wait_for(done.wait(), 60)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await broker.close()
    return {
        "src": args.src or "installed",
        "hiredis": bool(redis.utils.HIREDIS_AVAILABLE),
        "concurrency": args.concurrency,
        "sends": args.sends,
        "cpu_us_per_send": round(cpu / args.sends * 1e6, 1),
        "sends_per_s": round(args.sends / wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sends", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--src", help="import hubbub from this source tree (another version)")
    parser.add_argument("--no-hiredis", action="store_true", help="redis-py without hiredis")
    args = parser.parse_args()
    if args.no_hiredis:
        sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py's fallback
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    sys.path.insert(0, str(Path(__file__).parent))
    from hub_bench_nodes import RedisProcess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = RedisProcess(port)
    redis.start()
    try:
        try:
            import uvloop

            result = uvloop.run(measure(redis.url, args))
        except ImportError:
            result = asyncio.run(measure(redis.url, args))
    finally:
        redis.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
