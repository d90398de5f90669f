"""A FastAPI echo endpoint on uvicorn with each WebSocket implementation, side by side.

Compares uvicorn's ``ws`` implementations under the same app and load generator
(``benchmarks/loadgen.c`` through ``benchmarks/run.py``): hubbub's protocol
class (``hubbub.asgi.uvicorn.HubbubProtocol``), uvicorn's default (``ws="auto"``, which
is ``websockets-sansio`` when websockets is installed), its older ``websockets``
class and ``wsproto``::

    python benchmarks/asgi_bench.py                       # rr100 and stream, 3 repetitions
    python benchmarks/asgi_bench.py --reps 5 --scenarios rr100,stream,large64k
    python benchmarks/asgi_bench.py serve --ws hubbub --port 8000   # one server

Every server runs the same app, the same way: uvicorn's defaults for the event loop
and HTTP parser (uvloop and httptools when installed), keepalive pings off,
permessage-deflate off (the load generator does not offer it), 64 MiB messages.
The report has the rates, messages per server CPU-second and the ratios against
``asgi-websockets`` (``benchmarks/run.py``'s references). On a shared machine the figures are
indicative only; compare within one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI, WebSocket

HERE = Path(__file__).resolve().parent

#: benchmarks/run.py server name -> uvicorn's ``ws`` setting.
IMPLEMENTATIONS = {
    "asgi-hubbub": "hubbub.asgi.uvicorn:HubbubProtocol",
    "asgi-websockets": "websockets",
    "asgi-websockets-sansio": "websockets-sansio",
    "asgi-wsproto": "wsproto",
}


def make_app() -> Any:
    app = FastAPI()

    @app.websocket("/")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        receive, send = websocket.receive, websocket.send
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})

    return app


def serve(ws: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        make_app(),
        host="127.0.0.1",
        port=port,
        ws=IMPLEMENTATIONS.get(ws, ws),
        ws_max_size=64 * 2**20,
        ws_ping_interval=None,
        ws_per_message_deflate=False,
        log_level="warning",
        backlog=2048,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        parser = argparse.ArgumentParser(description="serve the echo app with one implementation")
        parser.add_argument("--ws", default="asgi-hubbub", help=", ".join(IMPLEMENTATIONS))
        parser.add_argument("--port", type=int, required=True)
        args = parser.parse_args(argv[1:])
        serve(args.ws, args.port)
        return 0
    sys.path.insert(0, str(HERE))
    import run  # benchmarks/run.py

    defaults = ["--servers", "asgi-hubbub,asgi-websockets-sansio,asgi-websockets,asgi-wsproto"]
    defaults += ["--scenarios", "rr100,stream"]
    return run.main(defaults + argv)


if __name__ == "__main__":
    sys.exit(main())
