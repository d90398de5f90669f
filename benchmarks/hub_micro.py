"""The hub's Python cost per delivery, without sockets: fan-out, direct, housekeeping.

Theory of operation
-------------------

``hub_bench.py`` measures a real hub through real sockets, where the kernel's
share (a ``send(2)`` per delivery on loopback) and a shared machine's noise
blur what the Python code costs. This script drives a real
:class:`~hubbub.hub.core.node.Node` with the asyncio driver's real ``_Outbox`` and
``FrameCache`` (``hubbub.hub.server.frames``), whose connections are stand-ins: an
open protocol state and a transport whose ``write`` is a C function that
discards the bytes. What it reports is the hub's own work per delivery:

* ``fanout``: microseconds per delivery of ``publish`` to one channel with
  ``--sessions`` subscribers (encode once, one outbox write per subscriber);
* ``direct``: microseconds per ``send`` request to one other user (parse,
  inbox append, push, reply), as ``Node.handle`` runs it;
* ``periodic``: milliseconds per housekeeping round (``Node.periodic``), and
  of the memory broker's ``maintain`` alone.

Each figure is the best of ``--repeat`` rounds (the least disturbed by other
processes). Usage::

    python benchmarks/hub_micro.py --sessions 10000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import gc
import json
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any

from hubbub.hub import Authenticator, HubConfig, HubMetrics, MemoryBroker, NamespaceRules, Node
from hubbub.hub import server as hub_server
from hubbub.hub.server.frames import FrameCache
from hubbub.protocol.connection import State

DATA = "S0000000001T" + "x" * 88  # 100 characters, as hub_bench.py sends


def stand_in_connection() -> Any:
    """What ``_Outbox`` uses of a ServerConnection: its public writing seams.

    An open connection that shares frames and never pauses; what it is handed
    goes to a C function that discards it.
    """
    sink: collections.deque[bytes] = collections.deque(maxlen=0)

    def send_frames_nowait(frames: bytes, *, limit: int | None = None) -> bool:
        sink.append(frames)
        return True

    return types.SimpleNamespace(
        protocol=types.SimpleNamespace(state=State.OPEN),
        shares_frames=True,
        writing_paused=False,
        send_frames_nowait=send_frames_nowait,
        send_frames_soon=send_frames_nowait,  # held or not, discarded the same
        close_timeout=10.0,
    )


async def best(repeat: int, count: int, step: Callable[[int], Awaitable[Any]]) -> float:
    """Best seconds per call of ``step`` over ``repeat`` rounds of ``count`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(count):
            await step(i)
        times.append((time.perf_counter() - start) / count)
    return min(times)


async def build(args: argparse.Namespace) -> tuple[Node, list[Any]]:
    """A node with ``--sessions`` connected sessions, each subscribed to ``bench:fanout``."""
    # The namespace hub_bench.py uses: no presence, no join/leave pushes.
    rules = {"bench": NamespaceRules(presence=False, join_leave=False)}
    config = HubConfig(namespaces=rules, command_rate=1e9, command_burst=1e9)
    node = Node(
        MemoryBroker(),
        Authenticator(insecure_dev_mode=True),
        config,
        clock=time.time,
        metrics=HubMetrics(),
    )
    frames = FrameCache()
    sessions = []
    for i in range(args.sessions):
        outbox = hub_server._Outbox(stand_in_connection(), 4096, frames)
        session = node.open_session(outbox.send, outbox.close, push=outbox.push)
        sessions.append(session)
        for request in (
            {"id": 1, "method": "connect", "params": {"name": f"u{i}"}},
            {"id": 2, "method": "subscribe", "params": {"channel": "bench:fanout"}},
        ):
            await node.handle(session, json.dumps(request))
    return node, sessions


def send_requests(count: int, users: int) -> list[str]:
    """``count`` ``send`` requests of 100-character data, each to one other user."""
    return [
        json.dumps(
            {
                "id": 10 + k,
                "method": "send",
                "params": {"to": [f"u{(k + 1) % users}"], "data": DATA},
            }
        )
        for k in range(count)
    ]


async def callgrind_direct(args: argparse.Namespace) -> None:
    """``--sends`` requests through ``Node.handle`` inside ``functools.reduce``, and nothing else.

    ``hub_callgrind.py node`` runs this under callgrind with collection
    toggled on ``functools_reduce``: it counts exactly these requests. Each
    is handled as ``hub.server.inline`` does on the in-memory broker.
    """
    node, sessions = await build(args)
    requests = send_requests(args.sends, len(sessions))
    # As `hubbub serve` does after start-up (cli._tune_gc).
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(gc.get_threshold()[0], 10_000))
    n = len(sessions)
    done = object()
    # Node.handle_now (and a coroutine only for what it leaves), as the
    # inline driver calls it; a version without it (--src of an older tree)
    # is driven through Node.handle, as its own inline driver did.
    handle_now = getattr(node, "handle_now", node.handle)

    def step(_: None, k: int) -> None:
        rest = handle_now(sessions[k % n], requests[k])
        if rest is not None and next(rest.__await__(), done) is not done:
            raise RuntimeError("a request suspended: the in-memory broker never waits")

    for k in range(min(200, args.sends)):  # warm the caches of first calls
        step(None, k)
    functools.reduce(step, range(args.sends), None)


async def run(args: argparse.Namespace) -> dict[str, float]:
    node, sessions = await build(args)
    n = len(sessions)

    async def publish(_i: int) -> None:
        await node.publish("bench:fanout", DATA)

    requests = send_requests(args.sends, n)

    async def send(k: int) -> None:
        await node.handle(sessions[k % n], requests[k])

    async def periodic(_i: int) -> None:
        await node.periodic()

    async def maintain(_i: int) -> None:
        await node.broker.maintain()

    await periodic(0)  # the first round sorts out which sessions it must watch
    return {
        "fanout_us_per_delivery": round(await best(args.repeat, 5, publish) / n * 1e6, 3),
        "direct_us_per_message": round(await best(args.repeat, args.sends, send) * 1e6, 2),
        "periodic_ms": round(await best(args.repeat, 5, periodic) * 1e3, 3),
        "broker_maintain_ms": round(await best(args.repeat, 5, maintain) * 1e3, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--sends", type=int, default=5_000, help="send requests per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best is reported")
    parser.add_argument(
        "--callgrind-direct",
        action="store_true",
        help="only the sends, inside functools.reduce (for hub_callgrind.py node)",
    )
    args = parser.parse_args()
    if args.callgrind_direct:
        asyncio.run(callgrind_direct(args))
        return
    print(json.dumps({"sessions": args.sessions, **asyncio.run(run(args))}))


if __name__ == "__main__":
    main()
