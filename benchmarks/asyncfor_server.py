"""The README's handler as a benchmark server: ``async for`` on ``hubbub.asyncio.serve``.

Usage: ``python benchmarks/asyncfor_server.py --port PORT [--no-uvloop]``

``benchmarks/run.py`` runs it as ``hubbub-asyncfor`` (and ``hubbub-asyncfor-pure``
with ``HUBBUB_NO_EXTENSIONS=1``) beside ``hubbub`` (``hubbub echo``, callback
mode), so that the code most users write is measured in the same run
(issue 17). The handler is the README's::

    async for message in ws:
        await ws.send(message)

with the benchmark's broadcast convention (``broadcast:<payload>`` sends
``<payload>`` to every open connection with :func:`hubbub.asyncio.broadcast`).
Options are those of ``hubbub echo`` under the runner: uvloop, compression
off, no keepalive pings, ``max_size`` 2 MiB, the same allocator tuning.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys

from hubbub.asyncio import ServerConnection, broadcast, serve
from hubbub.cli import _tune_gc, _tune_malloc

PREFIX = "broadcast:"


async def main(port: int) -> None:
    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if isinstance(message, str) and message.startswith(PREFIX):
                broadcast(server.connections, message[len(PREFIX) :])
            else:
                await ws.send(message)

    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        max_size=2 * 2**20,
        ping_interval=None,
        backlog=1024,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the README's async for echo server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-uvloop", action="store_true", help="run on asyncio's own loop")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    _tune_malloc()
    _tune_gc()  # as hubbub echo does
    try:
        if args.no_uvloop:
            asyncio.run(main(args.port))
        else:
            import uvloop

            uvloop.run(main(args.port))
    except KeyboardInterrupt:
        sys.exit(0)
