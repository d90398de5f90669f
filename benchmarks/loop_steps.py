"""What keeps the event loop under an attack: every loop iteration and its long callbacks.

Runs an echo server in a child process whose asyncio loop times each
iteration and each callback in it (CPython's ``asyncio`` internals are
wrapped: a measuring tool, not for production), while ``benchmarks/hostile.py``'s
attacker and well-behaved client run against it. At the end it prints the
well-behaved client's connect + echo latency, the iterations' p50 / p99 /
max, how many iterations ran 0, 1, 2 ... callbacks longer than 0.5 ms, and
which callbacks those were (count and mean)::

    .venv/bin/python benchmarks/loop_steps.py --server async-for --seconds 8
    .venv/bin/python benchmarks/loop_steps.py --server callback --attack deflate-burst

``async-for`` is ``hostile.py``'s handler (``async for message in ws: await
ws.send(message)``); ``callback`` answers from ``on_message`` with
``send_nowait`` as ``hubbub echo`` does. Both negotiate permessage-deflate.
Times are wall-clock: on a loaded machine a callback may be preempted, so
compare runs made in the same conditions, and read the counts of callbacks
by kind (``Turns._run``: a turn of :mod:`hubbub.asyncio.turns`) more than
the milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from asyncio import base_events, events
from typing import Any

import hostile

HEAVY = 0.0005  # seconds: a callback longer than this is listed


def serve(mode: str) -> None:
    """The instrumented server (in the child process): prints its port, reports on SIGTERM."""
    from hubbub.asyncio import ServerConnection, serve

    iterations: list[tuple[float, list[tuple[str, float]]]] = []
    current: list[tuple[str, float]] = []
    run_handle = events.Handle._run  # noqa: SLF001
    run_once = base_events.BaseEventLoop._run_once  # type: ignore[attr-defined]  # noqa: SLF001

    def timed_run(handle: events.Handle) -> None:
        # Read first: a handle cancelled while it runs forgets its callback.
        callback: Any = handle._callback  # type: ignore[attr-defined]  # noqa: SLF001
        start = time.perf_counter()
        run_handle(handle)
        took = time.perf_counter() - start
        if took > HEAVY:
            owner = getattr(callback, "__self__", None)
            if isinstance(owner, asyncio.Task):
                name = "task:" + owner.get_coro().__qualname__  # type: ignore[union-attr]
            else:
                name = getattr(callback, "__qualname__", None) or repr(callback)[:60]
            current.append((name, took))

    def timed_run_once(loop: Any) -> None:
        current.clear()
        start = time.perf_counter()
        run_once(loop)
        iterations.append((time.perf_counter() - start, list(current)))

    events.Handle._run = timed_run  # type: ignore[method-assign]  # noqa: SLF001
    base_events.BaseEventLoop._run_once = timed_run_once  # type: ignore[attr-defined]  # noqa: SLF001

    def report() -> None:
        durations = sorted(d for d, _ in iterations)
        p50 = durations[len(durations) // 2] * 1000
        p99 = hostile.percentile(durations, 0.99) * 1000
        print(
            f"iterations {len(durations)}: p50 {p50:.2f} p99 {p99:.2f} "
            f"max {durations[-1] * 1000:.1f} ms"
        )
        per_iteration = collections.Counter(len(heavy) for _, heavy in iterations)
        print(f"callbacks over {HEAVY * 1000} ms per iteration: {sorted(per_iteration.items())}")
        count: collections.Counter[str] = collections.Counter()
        total: collections.Counter[str] = collections.Counter()
        for _, heavy in iterations:
            for name, took in heavy:
                count[name] += 1
                total[name] += took  # type: ignore[assignment]
        for name, n in count.most_common(8):
            print(f"  {name:60} {n:6d} mean {total[name] / n * 1000:.2f} ms")
        sys.stdout.flush()
        os._exit(0)

    async def handler(ws: ServerConnection) -> None:
        if mode == "callback":
            ws.on_message = ws.send_nowait
            await ws.wait_closed()
        else:
            async for message in ws:
                await ws.send(message)

    async def main() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, report)
        async with serve(handler, "127.0.0.1", 0, compression="deflate") as server:
            print(server.port, flush=True)
            await asyncio.Future()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", choices=("async-for", "callback"), default="async-for")
    parser.add_argument("--attack", choices=hostile.ATTACKS, default="deflate-burst")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", args.server], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    time.sleep(0.5)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    child = multiprocessing.Process(target=hostile.attacker, args=(args.attack, port, args.seconds))
    child.start()
    latencies = asyncio.run(hostile.measure(port, args.seconds, proc.pid, []))
    child.join(args.seconds + 30)
    if child.is_alive():
        child.kill()
    print(
        f"{args.server} {args.attack}: n={len(latencies)} "
        f"p50 {statistics.median(latencies) * 1000:.1f} "
        f"p99 {hostile.percentile(latencies, 0.99) * 1000:.1f} ms"
    )
    proc.terminate()
    print(proc.stdout.read(), end="")
    proc.wait(10)


if __name__ == "__main__":
    main()
