"""A clock page: the server pushes the time to every open page, once a second.

    python examples/clock.py --port 8000      then open http://127.0.0.1:8000/

Each connection has its own loop: send the time, sleep, again. When the page is
closed, ``send`` raises ConnectionClosed, the handler returns, and so does its loop.
"""

from __future__ import annotations

import asyncio
import datetime

from _common import options, run

from hubbub.asyncio import ServerConnection
from hubbub.exceptions import ConnectionClosed

PAGE = """<!doctype html>
<meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>hubbub clock</title>
<h1 id="time" style="font: 3rem system-ui; text-align: center">connecting...</h1>
<script>
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`);
  ws.onmessage = (event) => {
    document.getElementById("time").textContent = new Date(event.data).toLocaleTimeString();
  };
  ws.onclose = () => { document.getElementById("time").textContent = "disconnected"; };
</script>
"""


async def clock(ws: ServerConnection) -> None:
    try:
        while True:
            now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            await ws.send(now)
            await asyncio.sleep(1)
    except ConnectionClosed:
        pass  # the page was closed


if __name__ == "__main__":
    asyncio.run(
        run(clock, PAGE, options("Push the time to every page once a second.").parse_args())
    )
