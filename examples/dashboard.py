"""A live dashboard of this server's own metrics, pushed to every page once a second.

    python examples/dashboard.py --port 8000   then open http://127.0.0.1:8000/

Each second the server measures itself (open connections, messages received,
uptime, CPU time, peak memory, and how late the event loop woke up) and broadcasts
one JSON snapshot to every page. Pages may send any message; it is counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

from _common import Background, options, run

from hubbub.asyncio import Server, ServerConnection, broadcast
from hubbub.speedups import ACCELERATED

PAGE = """<!doctype html>
<meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>hubbub dashboard</title>
<style>body { font: 1.1rem system-ui; margin: 2rem } td { padding: .2rem 1rem }
td:last-child { font-variant-numeric: tabular-nums; text-align: right }</style>
<h1>server metrics</h1>
<table id="metrics"></table>
<script>
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`);
  ws.onmessage = (event) => {
    const table = document.getElementById("metrics");
    table.replaceChildren();
    for (const [name, value] of Object.entries(JSON.parse(event.data))) {
      const row = table.insertRow();
      row.insertCell().textContent = name;
      row.insertCell().textContent = value;
    }
  };
  setInterval(() => ws.readyState === 1 && ws.send("seen"), 5000);
</script>
"""

received = 0
started = time.monotonic()


async def count(ws: ServerConnection) -> None:
    global received
    async for _ in ws:
        received += 1


def snapshot(server: Server, loop_lag: float) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {
        "connections": len(server.connections),
        "messages_received": received,
        "uptime_s": round(time.monotonic() - started, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_memory_mib": round(peak / 2**20, 1),
        "loop_lag_ms": round(loop_lag * 1000, 2),
        "pid": os.getpid(),
        "accelerated": ACCELERATED,
    }


def publish(interval: float) -> Background:
    async def loop(server: Server) -> None:
        lag = 0.0
        while True:
            broadcast(server.connections, json.dumps(snapshot(server, lag)))
            before = time.monotonic()
            await asyncio.sleep(interval)
            # A busy loop wakes us late: the delay is what every client waits too.
            lag = max(0.0, time.monotonic() - before - interval)

    return loop


if __name__ == "__main__":
    parser = options("Push this server's metrics to every page.")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between updates")
    args = parser.parse_args()
    asyncio.run(run(count, PAGE, args, publish(args.interval)))
