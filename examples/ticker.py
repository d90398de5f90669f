"""A price ticker: one task broadcasts every price change to every connected client.

    python examples/ticker.py --port 8000 [--interval 0.5]   then open http://127.0.0.1:8000/

``broadcast`` encodes each message once and writes it to every open connection
without waiting; a client too slow to keep up skips ticks instead of holding back
the others or growing the server's memory (docs: hubbub.asyncio.broadcast).
Messages are ``{"seq": N, "symbol": ..., "price": ...}``; ``seq`` counts ticks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random

from _common import Background, options, run

from hubbub.asyncio import Server, ServerConnection, broadcast

PAGE = """<!doctype html>
<meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>hubbub ticker</title>
<style>body { font: 1.2rem system-ui; margin: 2rem } td { padding: 0 1rem }</style>
<table id="prices"></table>
<script>
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`);
  const rows = {};
  ws.onmessage = (event) => {
    const tick = JSON.parse(event.data);
    if (!rows[tick.symbol]) {
      rows[tick.symbol] = document.getElementById("prices").insertRow();
      rows[tick.symbol].insertCell().textContent = tick.symbol;
      rows[tick.symbol].insertCell();
    }
    rows[tick.symbol].cells[1].textContent = tick.price.toFixed(2);
  };
</script>
"""

SYMBOLS = {"HUBB": 100.0, "WSKT": 42.0, "DFLT": 7.5}


async def listen(ws: ServerConnection) -> None:
    await ws.wait_closed()  # clients only listen; the server's broadcast reaches them


def prices(interval: float) -> Background:
    async def tick(server: Server) -> None:
        rng = random.Random()
        for seq in itertools.count():
            symbol = rng.choice(list(SYMBOLS))
            SYMBOLS[symbol] = max(0.01, SYMBOLS[symbol] * (1 + rng.gauss(0, 0.01)))
            message = {"seq": seq, "symbol": symbol, "price": round(SYMBOLS[symbol], 2)}
            broadcast(server.connections, json.dumps(message))
            await asyncio.sleep(interval)

    return tick


if __name__ == "__main__":
    parser = options("Broadcast price ticks to every client.")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between ticks")
    args = parser.parse_args()
    asyncio.run(run(listen, PAGE, args, prices(args.interval)))
