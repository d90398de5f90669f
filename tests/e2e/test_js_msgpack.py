"""hubbub.js with { encoding: "msgpack" } in Chromium, beside a JSON client in one channel."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_helpers import HubProcess

pytestmark = pytest.mark.peer

# Values that exercise every MessagePack form msgpack.js writes and reads: the
# integer widths on both sides of each boundary, floats, str 8/16, array 16,
# map 16, non-ASCII text. The hub decodes what the browser encodes (Python's
# msgpack, strict) and packs what it relays, so both directions are checked
# against another implementation.
BOUNDARIES = [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1]
VALUE: Any = {
    "ints": BOUNDARIES + [-n for n in BOUNDARIES[1:]] + [-32, -33, -129, -32769, -(2**31) - 1],
    "floats": [2.5, -0.1, 1e300, 5e-324],
    "text": ["", "é" * 15, "x" * 31, "x" * 32, "y" * 255, "z" * 256, "😀 héllo"],
    "long": list(range(20)),
    "wide": {f"k{i}": i for i in range(20)},
    "nested": {"a": [{"b": [None, True, False]}]},
}

SCRIPT = """
async ({ value }) => {
  const { HubClient, HubError, MSGPACK_SUBPROTOCOL } = await import("/hubbub.js");
  const mp = new HubClient("/", { name: "js-mp", encoding: "msgpack" });
  const js = new HubClient("/", { name: "js-json" });
  const got = { mp: [], js: [] }, direct = { mp: [], js: [] }, frames = [];
  for (const [key, hub] of [["mp", mp], ["js", js]]) {
    hub.addEventListener("pub", (e) => got[key].push(e.detail.data));
    hub.addEventListener("message", (e) => direct[key].push([e.detail.from, e.detail.data]));
  }
  await mp.start();
  await js.start();
  mp.ws.addEventListener("message", (e) => frames.push(e.data instanceof ArrayBuffer));
  const protocols = [mp.ws.protocol, js.ws.protocol];
  await mp.subscribe("chat:mp");
  await js.subscribe("chat:mp");
  await mp.publish("chat:mp", value);
  await js.publish("chat:mp", { from: "json", value });
  await mp.send(["js-json"], value);
  await js.send(["js-mp"], [value]);
  const deadline = Date.now() + 5000;
  while ((got.mp.length < 2 || got.js.length < 2 || !direct.mp.length || !direct.js.length)
         && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  let code = null;
  try {
    await mp.subscribe("nope:x");
  } catch (err) {
    code = err instanceof HubError ? err.code : String(err);
  }
  let bad = null;
  try {
    new HubClient("/", { name: "x", encoding: "cbor" });
  } catch (err) {
    bad = err instanceof TypeError;
  }
  mp.close();
  js.close();
  return { protocols, got, direct, code, bad, binary: frames.every((b) => b) && frames.length > 0,
           name: MSGPACK_SUBPROTOCOL };
}
"""


def test_js_client_speaks_msgpack_beside_json(browser: Any, dev_hub: HubProcess) -> None:
    page = browser.new_page()
    page.goto(dev_hub.url)
    result = page.evaluate(SCRIPT, {"value": VALUE})
    assert result["protocols"] == ["hubbub.msgpack.v1", "hubbub.json.v1"]
    assert result["name"] == "hubbub.msgpack.v1"
    assert result["binary"] is True  # every message on the msgpack socket was binary
    expected = [VALUE, {"from": "json", "value": VALUE}]
    assert result["got"]["mp"] == expected
    assert result["got"]["js"] == expected
    assert result["direct"]["js"] == [["js-mp", VALUE]]
    assert result["direct"]["mp"] == [["js-json", [VALUE]]]
    assert result["code"] == 107  # an error reply decoded from MessagePack
    assert result["bad"] is True
