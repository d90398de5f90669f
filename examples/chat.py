"""A chat where every message goes to one recipient, named by its ID.

    python examples/chat.py --port 8000       then open http://127.0.0.1:8000/ twice

The server gives each connection an ID and tells everyone who is online. A client
sends ``{"to": ID, "text": ...}``; only that recipient's connection receives
``{"type": "message", "from": SENDER, "text": ...}``; an unknown ID is answered with
``{"type": "error", ...}``. (For users, tokens, offline inboxes and several servers,
use the hub: ``hubbub serve``.)
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from _common import options, run

from hubbub.asyncio import ServerConnection, broadcast
from hubbub.exceptions import ConnectionClosed

PAGE = """<!doctype html>
<meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>hubbub chat by ID</title>
<style>body { font: 1rem system-ui; max-width: 40rem; margin: auto; padding: 1rem }
#log { white-space: pre-wrap }</style>
<p>You are <b id="me">...</b>. Online: <span id="peers"></span></p>
<form id="form">to <input id="to" size="4" required>
<input id="text" required autocomplete="off"> <button>send</button></form>
<div id="log"></div>
<script>
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`);
  const $ = (id) => document.getElementById(id);
  const log = (line) => { $("log").textContent = line + "\\n" + $("log").textContent; };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "welcome") $("me").textContent = msg.id;
    if (msg.type === "peers") $("peers").textContent = msg.ids.join(", ");
    if (msg.type === "message") log(`${msg.from} -> you: ${msg.text}`);
    if (msg.type === "error") log(`error: ${msg.error}`);
  };
  $("form").onsubmit = (event) => {
    event.preventDefault();
    ws.send(JSON.stringify({to: Number($("to").value), text: $("text").value}));
    log(`you -> ${$("to").value}: ${$("text").value}`);
    $("text").value = "";
  };
</script>
"""

ids = itertools.count(1)
online: dict[int, ServerConnection] = {}


def announce() -> None:
    broadcast(online.values(), json.dumps({"type": "peers", "ids": sorted(online)}))


async def chat(ws: ServerConnection) -> None:
    me = next(ids)
    online[me] = ws
    try:
        await ws.send(json.dumps({"type": "welcome", "id": me}))
        announce()
        async for data in ws:
            try:
                request: Any = json.loads(data)
                to, text = int(request["to"]), str(request["text"])
            except (ValueError, KeyError, TypeError):
                await ws.send(json.dumps({"type": "error", "error": "send {to, text}"}))
                continue
            recipient = online.get(to)
            if recipient is None:
                await ws.send(json.dumps({"type": "error", "error": f"{to} is not online"}))
                continue
            # Only the recipient's connection gets it; a closed one is skipped.
            with_sender = json.dumps({"type": "message", "from": me, "text": text})
            try:
                await recipient.send(with_sender)
            except ConnectionClosed:
                await ws.send(json.dumps({"type": "error", "error": f"{to} left"}))
    finally:
        del online[me]
        announce()


if __name__ == "__main__":
    asyncio.run(run(chat, PAGE, options("A chat with recipient IDs.").parse_args()))
