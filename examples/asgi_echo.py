"""A FastAPI echo endpoint on uvicorn, with hubbub as uvicorn's WebSocket implementation.

    python examples/asgi_echo.py --port 8000     # ws://127.0.0.1:8000/ws

Every text and binary message is echoed as it came. Messages up to 16 MiB are
accepted (uvicorn's ``ws_max_size``), so the Autobahn|Testsuite 9.* cases run
through it: ``python compliance/run_autobahn.py server --testee asgi``. Needs
``pip install 'hubbub[asgi]' fastapi``. See docs/asgi.md.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from hubbub.asgi.uvicorn import HubbubProtocol

MAX_SIZE = 16 * 2**20

app = FastAPI()


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=20.0,
        help="keepalive ping interval in seconds; 0 disables it (default 20)",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ws=HubbubProtocol,
        ws_max_size=MAX_SIZE,
        ws_ping_interval=args.ping_interval or None,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
