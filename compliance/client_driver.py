"""Drive a WebSocket client through Autobahn's fuzzingserver (wstest ``-m fuzzingserver``).

The fuzzingserver protocol (all on the server's base URL):

1. ``/getCaseCount``: the server sends one text message, the number N of selected cases.
2. ``/runCase?case=n&agent=A`` for n = 1..N, one at a time: the client echoes every text and
   binary message back unchanged until the server closes. Protocol violations are the point
   of many cases, so a case ending in an error is normal; wstest judges what it saw.
3. ``/updateReports?agent=A``: the server writes its report and closes.

``--library hubbub`` (default) drives ``hubbub.asyncio.connect``; ``--library websockets``
drives the ``websockets`` library instead, to check the harness against a known implementation.

Usage: client_driver.py ws://127.0.0.1:PORT [--agent NAME] [--library hubbub|websockets]
Prints progress every 50 cases and ends with ``DRIVER cases=N errors=E seconds=S``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

#: The 9.* cases send messages of up to 16 MiB.
MAX_MESSAGE_SIZE = 2**24


class EchoPeer(Protocol):
    """The part of a client connection the driver uses (hubbub and websockets share it)."""

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str | bytes) -> None: ...


Connector = Callable[[str], AbstractAsyncContextManager[Any]]


def load_library(name: str, deflate: bool) -> tuple[Connector, tuple[type[BaseException], ...]]:
    """Return ``connect(uri)`` for the library and the exceptions that end a case normally.

    Keepalive pings are off: a ping of ours in the middle of a case would be an event the
    fuzzingserver does not expect. ``max_size`` is raised for the 9.* cases. ``deflate``
    offers permessage-deflate (the 12.* and 13.* cases).
    """
    compression = "deflate" if deflate else None
    if name == "websockets":
        # Same reason as in websockets_echo.py; read when websockets.asyncio imports.
        os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", "1000000")
        from websockets.asyncio.client import connect as ws_connect
        from websockets.exceptions import WebSocketException

        def connect_websockets(uri: str) -> AbstractAsyncContextManager[Any]:
            return ws_connect(
                uri, max_size=MAX_MESSAGE_SIZE, ping_interval=None, compression=compression
            )

        return connect_websockets, (WebSocketException,)

    from hubbub.asyncio import connect as hubbub_connect
    from hubbub.exceptions import HubbubError

    def connect_hubbub(uri: str) -> AbstractAsyncContextManager[Any]:
        return hubbub_connect(
            uri, max_size=MAX_MESSAGE_SIZE, ping_interval=None, compression=compression
        )

    return connect_hubbub, (HubbubError,)


async def fetch_one(connect: Connector, uri: str) -> str | bytes:
    """Open ``uri``, return the first message, close."""
    async with connect(uri) as ws:
        message: str | bytes = await ws.recv()
        return message


async def run_case(
    connect: Connector, uri: str, expected: tuple[type[BaseException], ...], timeout: float
) -> str | None:
    """Echo everything on one case connection; return the name of the error it ended with."""
    ends_case: tuple[type[BaseException], ...] = (*expected, OSError, TimeoutError)
    try:
        async with asyncio.timeout(timeout), connect(uri) as ws:
            peer: EchoPeer = ws
            async for message in peer:
                await peer.send(message)
    except ends_case as exc:
        return type(exc).__name__
    return None


async def drive(base: str, agent: str, library: str, case_timeout: float, deflate: bool) -> int:
    """Run every case; return how many there were."""
    connect, expected = load_library(library, deflate)
    started = time.monotonic()
    count = int(await fetch_one(connect, f"{base}/getCaseCount"))
    print(f"DRIVER library={library} agent={agent} case_count={count}", flush=True)
    errors: Counter[str] = Counter()
    for n in range(1, count + 1):
        error = await run_case(
            connect, f"{base}/runCase?case={n}&agent={agent}", expected, case_timeout
        )
        if error:
            errors[error] += 1
        if n % 50 == 0:
            print(f"  {n}/{count} cases, {time.monotonic() - started:.0f} s", flush=True)
    async with connect(f"{base}/updateReports?agent={agent}") as ws:
        # The server closes right after writing the report: wait for that close.
        with_errors: tuple[type[BaseException], ...] = (*expected, OSError)
        try:
            async for _ in ws:
                pass
        except with_errors:
            pass
    summary = " ".join(f"{name}={n}" for name, n in sorted(errors.items())) or "none"
    print(
        f"DRIVER cases={count} case_errors: {summary} seconds={time.monotonic() - started:.1f}",
        flush=True,
    )
    return count


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Autobahn fuzzingserver client driver")
    parser.add_argument("base", help="ws://127.0.0.1:PORT of wstest -m fuzzingserver")
    parser.add_argument("--agent", default="hubbub-client")
    parser.add_argument("--library", choices=["hubbub", "websockets"], default="hubbub")
    parser.add_argument("--case-timeout", type=float, default=120.0)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    args = parser.parse_args(argv)
    asyncio.run(
        drive(args.base.rstrip("/"), args.agent, args.library, args.case_timeout, args.deflate)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
