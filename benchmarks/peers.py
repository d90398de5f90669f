"""Echo servers of other libraries, the peers ``benchmarks/run.py`` compares hubbub with.

Usage: ``python benchmarks/peers.py LIBRARY --port PORT [--uvloop]``

Every server follows the benchmark's convention (the one ``hubbub echo
--broadcast`` implements): a text or binary message is echoed back unchanged;
a text message ``broadcast:<payload>`` sends ``<payload>`` to every open
connection with the library's own broadcast facility or its idiomatic loop.
Handlers are what each library's documentation shows, with limits raised so
that 1 MiB messages and 10,000 connections fit. ``raw`` is no WebSocket at all:
after answering the upgrade it reflects bytes, the ceiling of the event loop.

Needs the peers installed: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import resource
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

BIG = 64 * 2**20
BACKLOG = 1024
PREFIX = "broadcast:"


async def websockets_server(port: int) -> None:
    from websockets.asyncio.server import broadcast, serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            if isinstance(message, str) and message.startswith(PREFIX):
                broadcast(ws.server.connections, message[len(PREFIX) :])
            else:
                await ws.send(message)

    async with serve(echo, "127.0.0.1", port, max_size=BIG, backlog=BACKLOG) as server:
        await server.serve_forever()


async def aiohttp_server(port: int) -> None:
    from aiohttp import WSMsgType, web

    sockets: set[Any] = set()

    async def echo(request: Any) -> Any:
        ws = web.WebSocketResponse(max_msg_size=BIG)
        await ws.prepare(request)
        sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    if msg.data.startswith(PREFIX):
                        for other in list(sockets):
                            if not other.closed:
                                await other.send_str(msg.data[len(PREFIX) :])
                    else:
                        await ws.send_str(msg.data)
        finally:
            sockets.discard(ws)
        return ws

    app = web.Application()
    app.router.add_route("GET", "/{path:.*}", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=BACKLOG).start()
    await asyncio.Future()


async def picows_server(port: int) -> None:
    from picows import WSListener, WSMsgType, ws_create_server

    transports: set[Any] = set()

    class Echo(WSListener):
        def on_ws_connected(self, transport: Any) -> None:
            transports.add(transport)

        def on_ws_disconnected(self, transport: Any) -> None:
            transports.discard(transport)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            if kind == WSMsgType.TEXT:
                data = frame.get_payload_as_bytes()
                if data.startswith(PREFIX.encode()):
                    for other in transports:
                        other.send(WSMsgType.TEXT, data[len(PREFIX) :])
                    return
                transport.send(WSMsgType.TEXT, data, frame.fin)
            elif kind == WSMsgType.BINARY:
                transport.send(WSMsgType.BINARY, frame.get_payload_as_memoryview(), frame.fin)
            elif kind == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    server = await ws_create_server(
        lambda _request: Echo(), "127.0.0.1", port, max_frame_size=BIG, backlog=BACKLOG
    )
    await server.serve_forever()


class Reflector(asyncio.Protocol):
    """Answer the upgrade, then send back every byte: no WebSocket work at all."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.head = b""
        self.open = False

    def data_received(self, data: bytes) -> None:
        if self.open:
            self.transport.write(data)
            return
        self.head += data
        head, sep, rest = self.head.partition(b"\r\n\r\n")
        if not sep:
            return
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n\r\n" + rest
        )
        self.open = True


async def raw_server(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Reflector, "127.0.0.1", port, backlog=BACKLOG)
    await server.serve_forever()


SERVERS: dict[str, Callable[[int], Coroutine[Any, Any, None]]] = {
    "websockets": websockets_server,
    "aiohttp": aiohttp_server,
    "picows": picows_server,
    "raw": raw_server,
}


def main() -> None:
    parser = argparse.ArgumentParser(description="echo servers of other WebSocket libraries")
    parser.add_argument("library", choices=sorted(SERVERS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.uvloop:
        import uvloop

        uvloop.run(SERVERS[args.library](args.port))
    else:
        asyncio.run(SERVERS[args.library](args.port))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
