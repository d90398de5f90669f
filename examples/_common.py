"""What every example shares: its command line, its page, and running until Ctrl-C.

Each example is one asyncio WebSocket server that also serves its HTML page on the
same port: ``GET /`` without an ``Upgrade`` header gets the page (through the
server's ``process_request`` hook), a WebSocket handshake on any path reaches the
example's handler. The examples import this file as a sibling module, so run them
from anywhere as ``python examples/NAME.py --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

from hubbub.asyncio import Server, ServerConnection, serve
from hubbub.protocol.http11 import Request, Response

Handler = Callable[[ServerConnection], Awaitable[None]]
Background = Callable[[Server], Awaitable[None]]


def options(description: str) -> argparse.ArgumentParser:
    """The ``--host`` and ``--port`` options (0 picks a free port; the URL is printed)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (8000; 0 picks one)")
    return parser


def page(html: str) -> Callable[[ServerConnection, Request], Response | None]:
    """A ``process_request`` hook: ``html`` at ``/``, 404 elsewhere, handshakes pass."""

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if "Upgrade" in request.headers:
            return None  # a WebSocket handshake: let the server answer it
        if request.path_only == "/":
            return connection.respond(200, html, "text/html; charset=utf-8")
        return connection.respond(404, "not found\n", "text/plain; charset=utf-8")

    return process_request


async def run(
    handler: Handler,
    html: str,
    args: argparse.Namespace,
    background: Background | None = None,
) -> None:
    """Serve ``handler`` and ``html`` until SIGINT or SIGTERM; run ``background`` alongside."""
    async with serve(handler, args.host, args.port, process_request=page(html)) as server:
        host = f"[{args.host}]" if ":" in args.host else args.host
        # Tests and scripts read the port from this line (with --port 0).
        print(f"listening on http://{host}:{server.port}/", flush=True)
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
        task = asyncio.ensure_future(background(server)) if background else None
        with contextlib.suppress(asyncio.CancelledError):
            await stop
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    print("stopped", file=sys.stderr, flush=True)
