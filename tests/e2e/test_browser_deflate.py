"""permessage-deflate (RFC 7692) with a real browser: headless Chromium against hubbub.asyncio.

A hubbub echo server runs in a thread with its own event loop; it serves a tiny page on ``/``
(through ``process_request``) and echoes every message on ``/echo``. The page opens
``new WebSocket(".../echo")`` (compression is hubbub's default, and every browser offers it),
sends compressible and incompressible messages, text and binary, and one of ~1 MB that the
server echoes in 64 KiB fragments. Three things are checked:

* negotiation on both ends: ``ws.extensions`` in the page, ``protocol.extensions`` on the server;
* integrity: SHA-256 of each message computed by the page before sending, by the server on
  receipt, and by the page on the echo, all equal;
* compression on the wire: the server's connection is tapped where its sans-I/O core is fed
  and drained, and the frames parsed (RSV1, payload lengths), so a compressible message must
  be seen compressed in both directions, not merely arrive intact.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hubbub.asyncio import ServerConnection, serve
from hubbub.protocol.http11 import Request, Response
from hubbub.protocol.permessage_deflate import PerMessageDeflate
from wire_frames import FrameLog, WireFrame, tap

pytestmark = pytest.mark.peer

PAGE = "<!doctype html><meta charset=utf-8><title>deflate</title><p>permessage-deflate test"
FRAGMENT = 64 * 1024  # the server echoes messages over this size in fragments of this size

# Runs in the page. Messages are sent one at a time; each echo is awaited before the next,
# so the i-th message on the wire is the i-th of this list in both directions.
SCRIPT = """
async ({ url }) => {
  const hex = async (bytes) => {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  };
  const encode = (m) => (typeof m === "string" ? new TextEncoder().encode(m) : new Uint8Array(m));

  let compressible = "";
  for (let i = 0; compressible.length < 100000; i++) {
    compressible += `{"seq": ${i}, "msg": "hello, wörld ✓"}\\n`;
  }
  const noise = new Uint8Array(65536);
  crypto.getRandomValues(noise);
  const codePoints = [];
  for (let i = 0; i < 20000; i++) {
    const cjk = Math.random() < 0.7;  // mixed scripts: 1- and 3-byte UTF-8 sequences
    codePoints.push(Math.floor(cjk ? 0x4e00 + Math.random() * 0x5000 : 0x21 + Math.random() * 94));
  }
  const randomText = String.fromCodePoint(...codePoints);
  const large = new Uint8Array(1000000);
  for (let i = 0; i < large.length; i++) large[i] = (i * 31 + (i >> 12)) % 251;
  const messages = [
    ["compressible text", compressible],
    ["random binary", noise.buffer],
    ["random text", randomText],
    ["large binary", large.buffer],
  ];

  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const inbox = [];
  let waiter = null;
  ws.onmessage = (event) => {
    if (waiter) {
      const resolve = waiter;
      waiter = null;
      resolve(event.data);
    } else inbox.push(event.data);
  };
  const next = () =>
    inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve) => (waiter = resolve));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("WebSocket error before open"));
  });
  const results = [];
  for (const [name, message] of messages) {
    ws.send(message);
    const echo = await next();
    results.push({
      name,
      binary: typeof echo !== "string",
      size: encode(message).length,
      sent: await hex(encode(message)),
      echoed: await hex(encode(echo)),
    });
  }
  const closed = new Promise((resolve) => (ws.onclose = (e) => resolve(e.code)));
  ws.close(1000, "done");
  return { extensions: ws.extensions, results, closeCode: await closed };
}
"""


class EchoServer:
    """hubbub.asyncio echo server in a thread; records what it received and the wire."""

    def __init__(self) -> None:
        self.port = 0
        self.connections: list[ServerConnection] = []
        self.received: list[tuple[bool, int, str]] = []  # (binary, size, sha256)
        self.wire_in = FrameLog()
        self.wire_out = FrameLog()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.path == "/":
            return conn.respond(200, PAGE, "text/html; charset=utf-8")
        return None  # the WebSocket handshake on /echo

    def _tap(self, conn: ServerConnection) -> None:
        # Installed as the handler starts: the 101 is written, no frame has been read yet
        # (the page sends only once `open` fired), so both streams start at a frame boundary.
        tap(conn.protocol, self.wire_out, self.wire_in)

    async def _echo(self, conn: ServerConnection) -> None:
        self._tap(conn)
        self.connections.append(conn)
        async for message in conn:
            data = message.encode() if isinstance(message, str) else message
            self.received.append(
                (isinstance(message, bytes), len(data), hashlib.sha256(data).hexdigest())
            )
            if len(message) > FRAGMENT:
                await conn.send(
                    [message[i : i + FRAGMENT] for i in range(0, len(message), FRAGMENT)]
                )
            else:
                await conn.send(message)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._echo, "127.0.0.1", 0, process_request=self._process_request
        ) as server:
            self.port = server.port
            self._ready.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the echo server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "the echo server did not stop"


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_chromium_negotiates_and_uses_permessage_deflate(
    browser: Any, echo_server: EchoServer
) -> None:
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{echo_server.port}/")
    assert page.title() == "deflate"
    outcome = page.evaluate(SCRIPT, {"url": f"ws://127.0.0.1:{echo_server.port}/echo"})

    # Negotiated on both ends.
    assert "permessage-deflate" in outcome["extensions"]
    (conn,) = echo_server.connections
    assert conn.request is not None
    offer = conn.request.headers.get("Sec-WebSocket-Extensions") or ""
    assert offer.startswith("permessage-deflate")
    extensions = conn.protocol.extensions
    assert len(extensions) == 1
    assert isinstance(extensions[0], PerMessageDeflate)
    assert outcome["closeCode"] == 1000

    # Intact both ways: the page's hash before sending == the server's == the page's of the echo.
    results = outcome["results"]
    names = [r["name"] for r in results]
    assert names == ["compressible text", "random binary", "random text", "large binary"]
    assert len(echo_server.received) == len(results)
    for result, (binary, size, digest) in zip(results, echo_server.received, strict=True):
        assert (result["binary"], result["size"]) == (binary, size), result["name"]
        assert result["sent"] == digest == result["echoed"], result["name"]
    sizes = {r["name"]: r["size"] for r in results}

    # On the wire. Chromium compresses what it sends (its choice for random data is its own).
    wire_in = dict(zip(names, echo_server.wire_in.messages(), strict=True))
    for name in ("compressible text", "large binary"):
        frames = wire_in[name]
        assert frames[0].rsv1, (name, frames)
        assert sum(f.length for f in frames) < sizes[name] * 0.2, (name, frames)

    # hubbub compresses what shrinks, sends random bytes as they are, and sets RSV1 on the
    # first fragment only of the fragmented echo (RFC 7692 section 6.1).
    wire_out = dict(zip(names, echo_server.wire_out.messages(), strict=True))
    assert wire_out["compressible text"][0].rsv1
    assert wire_out["compressible text"][0].length < sizes["compressible text"] * 0.2
    assert wire_out["random binary"] == [WireFrame(True, False, 2, sizes["random binary"])]
    large = wire_out["large binary"]
    assert len(large) == -(-sizes["large binary"] // FRAGMENT)
    assert [f.rsv1 for f in large] == [True] + [False] * (len(large) - 1)
    assert [f.opcode for f in large] == [2] + [0] * (len(large) - 1)
    assert sum(f.length for f in large) < sizes["large binary"] * 0.2
