"""examples/asgi_echo.py (FastAPI on uvicorn with hubbub's protocol class) against real peers.

The example runs as users run it, in a subprocess; the clients are the ``websockets``
library, Node's ``ws`` (tests/interop/node/peer.js) and Debian's Chromium driven by
Playwright (``peer`` tests: skipped without the peer, failed in CI).
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets
from asgi_helpers import chromium, example, received_close
from websockets.exceptions import ConnectionClosed

MIB = 2**20


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """``python examples/asgi_echo.py --port P``, stopped after the module's tests."""
    with example("asgi_echo.py") as (port, _):
        yield f"ws://127.0.0.1:{port}/ws"


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
def test_chromium(echo_url: str) -> None:
    with chromium() as browser:
        result = browser.new_page().evaluate(BROWSER_SCRIPT, {"url": echo_url})
    assert result["extensions"].startswith("permessage-deflate")
    assert (result["text"], result["binary"]) == (True, True)
    # The server echoes the code (RFC 6455 section 5.5.1), not the reason.
    assert result["close"] == [4004, ""]
