"""Echo server on the ``websockets`` library: the stand-in testee that checks the harness.

``run_autobahn.py server --testee websockets`` runs it. websockets has known NON-STRICT and FAILED
cases, so a harness that reports none of them is broken.

websockets >= 16 refuses messages of more than 4096 fragments unless WEBSOCKETS_MAX_FRAGMENTS
is raised; we raise it so the 9.3.x / 9.4.x cases judge the protocol, not that limit.

Usage: websockets_echo.py --port PORT [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import os

MAX_MESSAGE_SIZE = 2**24


async def main() -> None:
    """Serve until killed."""
    # websockets reads this when its module is imported, hence the late imports.
    os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", "1000000")
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: ServerConnection) -> None:
        """Send every message back as it came."""
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    async with serve(echo, args.host, args.port, max_size=MAX_MESSAGE_SIZE) as server:
        print(f"websockets echo on ws://{args.host}:{args.port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
