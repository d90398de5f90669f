"""examples/asgi_echo.py (FastAPI on uvicorn with hubbub's protocol class) against real peers.

The example runs as users run it, in a subprocess; the clients are the ``websockets``
library, Node's ``ws`` (tests/interop/node/peer.js) and Debian's Chromium driven by
Playwright (``peer`` tests: skipped without the peer, failed in CI).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from asgi_helpers import received_close
from websockets.exceptions import ConnectionClosed

from client_peers import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HUBBUB_CHROMIUM", "/usr/bin/chromium")
MIB = 2**20


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """``python examples/asgi_echo.py --port P``, stopped after the module's tests."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "asgi_echo.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_port(port, timeout=20)
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
        # uvicorn logs to stderr; a traceback there is a bug in the protocol class.
        assert b"Traceback" not in stderr, stderr.decode(errors="replace")[-3000:]


async def test_example_echoes_up_to_16_mib(echo_url: str) -> None:
    payload = bytes(range(256)) * (16 * MIB // 256)
    async with websockets.connect(echo_url, max_size=None, compression=None) as ws:
        await ws.send("text ✓")
        assert await ws.recv() == "text ✓"
        await ws.send(payload)  # exactly 16 MiB: accepted (the Autobahn 9.* cases need it)
        assert await ws.recv() == payload
        with contextlib.suppress(ConnectionClosed):
            await ws.send(payload + b"!")  # the server may close before it is all sent
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
    reason = "message of at least 16777217 bytes exceeds limit of 16777216"
    assert received_close(caught.value) == (1009, reason)


@pytest.mark.peer
async def test_node_ws_client(echo_url: str, node_peer: Callable[..., Any]) -> None:
    node = await node_peer("client", echo_url)
    opened = await node.expect("open")
    assert "permessage-deflate" in opened["extensions"]
    await node.command("send", text="from node")
    assert (await node.expect("message"))["text"] == "from node"
    blob = base64.b64encode(os.urandom(300_000)).decode()
    await node.command("send", b64=blob)
    assert (await node.expect("message"))["b64"] == blob
    await node.command(
        "send_fragments", binary=False, fragments=[{"text": "frag"}, {"text": "mented"}]
    )
    assert (await node.expect("message"))["text"] == "fragmented"
    await node.command("close", code=4003, reason="node done")
    closed = await node.expect("close")
    assert closed["code"] == 4003  # echoed (RFC 6455 section 5.5.1)


BROWSER_SCRIPT = """
async ({ url }) => {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const next = () => new Promise((resolve, reject) => {
    ws.onmessage = (e) => resolve(e.data);
    ws.onclose = (e) => reject(new Error(`closed ${e.code}`));
  });
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const out = { extensions: ws.extensions };
  let text = "";
  for (let i = 0; text.length < 200000; i++) text += `{"seq": ${i}, "msg": "héllo ✓"}\\n`;
  let p = next(); ws.send(text); out.text = (await p) === text;
  const bytes = new Uint8Array(70000).map((_, i) => (i * 7) % 256);
  p = next(); ws.send(bytes);
  const echoed = new Uint8Array(await p);
  out.binary = echoed.length === bytes.length && echoed.every((b, i) => b === bytes[i]);
  const closed = new Promise((resolve) => { ws.onclose = (e) => resolve([e.code, e.reason]); });
  ws.close(4004, "browser done");
  out.close = await closed;
  return out;
}
"""


@pytest.mark.peer
def test_chromium(echo_url: str, tmp_path: Path) -> None:
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
            page = browser.new_page()
            result = page.evaluate(BROWSER_SCRIPT, {"url": echo_url})
        finally:
            browser.close()
    assert result["extensions"].startswith("permessage-deflate")
    assert (result["text"], result["binary"]) == (True, True)
    # The server echoes the code (RFC 6455 section 5.5.1), not the reason.
    assert result["close"] == [4004, ""]
