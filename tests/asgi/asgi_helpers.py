"""A real uvicorn server in the test's event loop, with hubbub as its WebSocket implementation.

The server and the test share the loop, so an app can hand what it saw to the test
through a plain :class:`asyncio.Queue`. Loopback only; stopped at the end of the
``async with`` (uvicorn's own shutdown: close code 1012 for connections still open).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from client_peers import free_port, wait_port
from hubbub.asgi.uvicorn import HubbubProtocol

#: Longest wait for anything in these tests: a bound, never a speed claim.
WAIT = 10.0
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HUBBUB_CHROMIUM", "/usr/bin/chromium")


@contextmanager
def example(script: str) -> Iterator[tuple[int, list[str]]]:
    """Run ``examples/<script> --port P`` as users do; yield ``P`` and, once it has
    stopped, its stderr (a one-item list), which must hold no traceback."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / script), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    log: list[str] = []
    try:
        wait_port(port, timeout=20)
        yield port, log
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
        log.append(stderr.decode(errors="replace"))
    # uvicorn logs to stderr; a traceback there is a bug in what the example runs on.
    assert "Traceback" not in log[0], log[0][-3000:]


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (its own browser download is never used)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@asynccontextmanager
async def running(app: Any, **options: Any) -> AsyncIterator[int]:
    """Serve ``app`` on 127.0.0.1 and a free port (yielded) until the block ends."""
    options.setdefault("ws", HubbubProtocol)
    options.setdefault("lifespan", "off")
    options.setdefault("log_level", "warning")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, **options)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise AssertionError("uvicorn exited before it started")
                await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        async with asyncio.timeout(WAIT * 2):
            await task
        sock.close()


async def raw_handshake(
    port: int, request: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Send ``request`` as is; return the streams and the response head (up to CRLFCRLF)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head


def upgrade_request(path: str = "/ws", *extra: str, version: str = "13") -> bytes:
    """A client handshake (RFC 6455 section 4.1) written by hand."""
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        f"Sec-WebSocket-Version: {version}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: ``(opcode, payload)``."""
    async with asyncio.timeout(WAIT):
        b0, b1 = await reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2))
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8))
        return b0 & 0x0F, await reader.readexactly(length)


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client frame with an all-zero masking key (the payload stays readable)."""
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def received_close(exc: BaseException) -> tuple[int, str] | None:
    """The code and reason of the close frame a ``websockets`` client received, if any."""
    rcvd = getattr(exc, "rcvd", None)
    return None if rcvd is None else (rcvd.code, rcvd.reason)


class Peer:
    """A hub connection: numbered requests, replies matched by id, pushes kept aside."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.pushes: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        async with asyncio.timeout(WAIT):
            while True:
                message = json.loads(await self.ws.recv())
                if message.get("id") == self.next_id:
                    return dict(message)
                self.pushes.append(message)

    async def push(self, kind: str) -> dict[str, Any]:
        for i, message in enumerate(self.pushes):
            if message.get("push") == kind:
                return self.pushes.pop(i)
        async with asyncio.timeout(WAIT):
            while True:
                message = json.loads(await self.ws.recv())
                if message.get("push") == kind:
                    return dict(message)
                self.pushes.append(message)
