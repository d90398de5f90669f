"""A collaborative text area: everyone edits the same text and sees the others' edits.

    python examples/collab.py --port 8000      then open http://127.0.0.1:8000/ twice

The server owns the text and a version number. A page sends
``{"type": "edit", "base": VERSION, "text": ...}``: when ``base`` is the current
version the edit is applied, the version goes up, the editor receives
``{"type": "state", "version": ..., "text": ..., "ack": true}`` and every other page
the same without ``ack``. An edit based on an older version lost a race: only its
sender receives the current state (``"conflict": true``) and may edit again from there.

A page keeps one edit in flight: keystrokes typed before its ``ack`` are sent together
after it, based on the new version, so a fast typist never conflicts with herself.
Whole-text replacement keeps the example short; real editors send operations (OT or
CRDTs) so that concurrent edits merge instead of one of them losing.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from _common import options, run

from hubbub.asyncio import ServerConnection, broadcast

PAGE = """<!doctype html>
<meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>hubbub collaborative text</title>
<style>body { font: 1rem system-ui; margin: 1rem }
textarea { width: 100%; height: 70vh; box-sizing: border-box; font: 1rem monospace }</style>
<p id="status">connecting...</p>
<textarea id="text" disabled></textarea>
<script>
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`);
  const area = document.getElementById("text");
  let version = 0, inFlight = false, dirty = false;
  const show = (text) => {
    if (area.value === text) return;
    const [start, end] = [area.selectionStart, area.selectionEnd];
    area.value = text;
    area.setSelectionRange(start, end);
  };
  const push = () => {  // one edit in flight; later keystrokes go after its ack
    if (inFlight) { dirty = true; return; }
    inFlight = true;
    dirty = false;
    ws.send(JSON.stringify({type: "edit", base: version, text: area.value}));
  };
  ws.onmessage = (event) => {
    const state = JSON.parse(event.data);
    version = state.version;
    if (state.ack || state.conflict) inFlight = false;
    if (state.conflict) dirty = false;  // another page's edit won: take its text
    if (!inFlight && !dirty) show(state.text);
    if (dirty && !inFlight) push();
    area.disabled = false;
    document.getElementById("status").textContent =
      `version ${state.version}` + (state.conflict ? " (your last edit lost a race)" : "");
  };
  area.oninput = push;
</script>
"""

MAX_TEXT = 100_000  # characters: one shared document must not eat the server's memory

document = {"version": 0, "text": ""}
editors: set[ServerConnection] = set()


def state(**extra: Any) -> str:
    return json.dumps({"type": "state", **document, **extra})


async def edit(ws: ServerConnection) -> None:
    editors.add(ws)
    try:
        await ws.send(state())
        async for data in ws:
            try:
                request: Any = json.loads(data)
                base, text = int(request["base"]), str(request["text"])
            except (ValueError, KeyError, TypeError):
                continue  # not an edit: ignore it
            if base != document["version"] or len(text) > MAX_TEXT:
                await ws.send(state(conflict=True))
                continue
            document["version"] = base + 1
            document["text"] = text
            await ws.send(state(ack=True))
            broadcast(editors - {ws}, state())
    finally:
        editors.discard(ws)


if __name__ == "__main__":
    asyncio.run(run(edit, PAGE, options("Edit one text together.").parse_args()))
