"""The hub mounted in a FastAPI app, on uvicorn with hubbub's WebSocket implementation.

    python examples/asgi_hub.py --port 8000

* http://127.0.0.1:8000/hub/ is the chat page (sign in with any name: see below);
* ws://127.0.0.1:8000/hub/ is the WebSocket endpoint (subprotocol hubbub.json.v1);
* http://127.0.0.1:8000/hub/healthz and /hub/metrics;
* POST http://127.0.0.1:8000/announce?text=hello publishes to the chat lobby from
  a FastAPI handler through the in-process Python API (``hub.publish``).

INSECURE development mode, as ``hubbub serve --dev``: anyone may sign in under any
name. For a real deployment give ``asgi_app`` a ``secret`` (JWTs) or an
``authenticate`` hook that reads your own session cookie; see docs/asgi.md.
Needs ``pip install 'hubbub[asgi]' fastapi``.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn
from fastapi import FastAPI

from hubbub.asgi.uvicorn import HubbubProtocol
from hubbub.hub.server.asgi import asgi_app

hub = asgi_app(insecure_dev_mode=True)  # INSECURE: development only
app = FastAPI(lifespan=hub.lifespan)  # the broker starts and drains with the app
app.mount("/hub", hub)


@app.post("/announce")
async def announce(text: str) -> dict[str, object]:
    """Publish to the chat page's lobby from an ordinary request handler."""
    return await hub.publish("chat:lobby", {"from": "server", "text": text})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"asgi_hub: chat page http://{shown}:{args.port}/hub/\n"
        "asgi_hub: INSECURE development mode: anyone can sign in as anyone",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, ws=HubbubProtocol)


if __name__ == "__main__":
    main()
