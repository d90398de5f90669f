"""Real peers for the interop tests, behind one small interface.

Each interop scenario runs four times: hubbub's server with the ``websockets`` client and with
Node's ``ws`` client, and hubbub's client with the ``websockets`` server and with Node's ``ws``
server. :func:`open_pair` connects the two ends over a loopback socket and returns hubbub's
connection (``local``) and a :class:`Remote` that scripts the other side, so each test reads
as "do this on hubbub's side, check what the peer saw", whichever peer and role.

The peers are used as they ship: defaults everywhere except where a scenario needs something
(subprotocols). ``websockets`` runs in the test's event loop; Node's ``ws`` runs in a child
process, ``tests/interop/node/peer.js``, driven through :class:`conftest.NodePeer`.

(The module name is unique because test folders are not packages: all share ``sys.path``.)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection as WsClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection as WsServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.typing import Subprotocol

from hubbub.asyncio import Connection, ServerConnection, connect, serve

__all__ = ["PAIRINGS", "STEP_TIMEOUT", "Connection", "NodeRemote", "Remote", "open_pair", "pattern"]

Data = str | bytes

#: Timeout for one step of a scenario; generous for a loaded 2-core machine.
STEP_TIMEOUT = 20.0

PAIRINGS = [
    "hubbub-server+websockets-client",
    "hubbub-server+node-client",
    "hubbub-client+websockets-server",
    "hubbub-client+node-server",
]


class Remote(Protocol):
    """The other end of a pair, scripted by the test."""

    name: str
    subprotocol: str | None

    async def send(self, message: Data) -> None:
        """Send one text (str) or binary (bytes) message."""

    async def send_fragments(self, fragments: Sequence[Data]) -> None:
        """Send one message as several frames (continuation frames after the first)."""

    async def recv(self) -> Data:
        """The next message received."""

    async def ping(self, payload: bytes) -> None:
        """Send a ping; return once the pong with the same payload has arrived."""

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake."""

    async def wait_closed(self) -> tuple[int | None, str]:
        """Wait for the end of the connection; return the close code and reason received."""


class WebsocketsRemote:
    """A connection of the ``websockets`` library (client or server side)."""

    def __init__(self, ws: WsClientConnection | WsServerConnection, name: str) -> None:
        self.ws = ws
        self.name = name
        self.subprotocol: str | None = ws.subprotocol

    async def send(self, message: Data) -> None:
        await self.ws.send(message)

    async def send_fragments(self, fragments: Sequence[Data]) -> None:
        await self.ws.send(list(fragments))

    async def recv(self) -> Data:
        return await asyncio.wait_for(self.ws.recv(), STEP_TIMEOUT)

    async def ping(self, payload: bytes) -> None:
        # websockets resolves the waiter only on a pong carrying this very payload.
        pong_waiter = await self.ws.ping(payload)
        await asyncio.wait_for(pong_waiter, STEP_TIMEOUT)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason)

    async def wait_closed(self) -> tuple[int | None, str]:
        await asyncio.wait_for(self.ws.wait_closed(), STEP_TIMEOUT)
        return self.ws.close_code, self.ws.close_reason or ""


def _encode(message: Data) -> dict[str, str]:
    if isinstance(message, str):
        return {"text": message}
    return {"b64": base64.b64encode(message).decode()}


class NodeRemote:
    """A connection of Node's ``ws`` library in a child process (see peer.js)."""

    def __init__(self, peer: Any, name: str, subprotocol: str | None, extensions: str = "") -> None:
        self.peer = peer
        self.name = name
        self.subprotocol = subprotocol
        #: The negotiated extensions' names as ws reports them, e.g. "permessage-deflate".
        self.extensions = extensions
        self.pings_received: list[bytes] = []
        self.closed: tuple[int | None, str] | None = None

    async def _next(self) -> dict[str, Any]:
        """Next message/pong/close event; pings are recorded (ws answers them itself)."""
        while True:
            event: dict[str, Any] = await self.peer.next_event(STEP_TIMEOUT)
            kind = event["event"]
            if kind == "ping":
                self.pings_received.append(base64.b64decode(event["b64"]))
            elif kind == "close":
                self.closed = (event["code"], event["reason"])
                return event
            elif kind in ("message", "pong"):
                return event
            else:
                raise AssertionError(f"unexpected event from Node's ws: {event!r}")

    async def send(self, message: Data) -> None:
        await self.peer.command("send", **_encode(message))

    async def send_fragments(self, fragments: Sequence[Data]) -> None:
        binary = isinstance(fragments[0], bytes)
        # Text fragments travel as bytes with binary=false, so a test may split them anywhere.
        raw = [f.encode() if isinstance(f, str) else f for f in fragments]
        await self.peer.command(
            "send_fragments", binary=binary, fragments=[_encode(f) for f in raw]
        )

    async def send_raw_text_fragments(self, fragments: Sequence[bytes]) -> None:
        """Send a text message whose fragments are arbitrary byte slices of its UTF-8."""
        await self.peer.command(
            "send_fragments", binary=False, fragments=[_encode(f) for f in fragments]
        )

    async def recv(self) -> Data:
        event = await self._next()
        if event["event"] != "message":
            raise AssertionError(f"expected a message from Node's ws, got {event!r}")
        if "text" in event:
            return str(event["text"])
        return base64.b64decode(event["b64"])

    async def ping(self, payload: bytes) -> None:
        await self.peer.command("ping", b64=base64.b64encode(payload).decode())
        event = await self._next()
        if event["event"] != "pong" or base64.b64decode(event["b64"]) != payload:
            raise AssertionError(f"expected the pong for {payload!r}, got {event!r}")

    async def close(self, code: int, reason: str) -> None:
        await self.peer.command("close", code=code, reason=reason)

    async def wait_closed(self) -> tuple[int | None, str]:
        while self.closed is None:
            event = await self._next()
            if event["event"] != "close":
                raise AssertionError(f"expected the close from Node's ws, got {event!r}")
        return self.closed


NodeLauncher = Callable[..., Awaitable[Any]]


@contextlib.asynccontextmanager
async def open_pair(
    pairing: str,
    node_peer: NodeLauncher,
    *,
    server_subprotocols: Sequence[str] = (),
    client_subprotocols: Sequence[str] = (),
    path: str = "/interop?x=1",
    node_options: Sequence[str] = (),
    **hubbub_options: Any,
) -> AsyncIterator[tuple[Connection, Remote]]:
    """Connect hubbub and a real peer over loopback, as ``pairing`` says.

    Yields hubbub's connection and the remote end. On exit both ends are closed if the test
    left them open, and the server stops. ``node_options`` go to peer.js (e.g. ``--deflate``).
    """
    hubbub_role, peer = pairing.split("+")
    if hubbub_role == "hubbub-server":
        accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()

        async def handler(ws: ServerConnection) -> None:
            await accepted.put(ws)
            await ws.wait_closed()  # the test drives the connection; keep it open until closed

        async with serve(
            handler, "127.0.0.1", 0, subprotocols=server_subprotocols, **hubbub_options
        ) as server:
            url = f"ws://127.0.0.1:{server.port}{path}"
            if peer == "websockets-client":
                ws_offer = [Subprotocol(p) for p in client_subprotocols] or None
                async with ws_connect(url, subprotocols=ws_offer) as ws:
                    accepted_ws = await asyncio.wait_for(accepted.get(), STEP_TIMEOUT)
                    yield accepted_ws, WebsocketsRemote(ws, peer)
            else:
                node = await node_peer("client", url, *node_options, *client_subprotocols)
                opened = await node.expect("open")
                accepted_ws = await asyncio.wait_for(accepted.get(), STEP_TIMEOUT)
                extensions = opened.get("extensions") or ""
                yield accepted_ws, NodeRemote(node, peer, opened["protocol"] or None, extensions)
                await node.stop()
        return

    if peer == "websockets-server":
        remotes: asyncio.Queue[WsServerConnection] = asyncio.Queue()

        async def ws_handler(ws: WsServerConnection) -> None:
            await remotes.put(ws)
            await ws.wait_closed()

        ws_supported = [Subprotocol(p) for p in server_subprotocols] or None
        async with ws_serve(ws_handler, "127.0.0.1", 0, subprotocols=ws_supported) as ws_server:
            port = ws_server.sockets[0].getsockname()[1]
            async with connect(
                f"ws://127.0.0.1:{port}{path}", subprotocols=client_subprotocols, **hubbub_options
            ) as local:
                remote_ws = await asyncio.wait_for(remotes.get(), STEP_TIMEOUT)
                yield local, WebsocketsRemote(remote_ws, peer)
    else:
        node = await node_peer("server", *node_options, *server_subprotocols)
        port = (await node.expect("listening"))["port"]
        async with connect(
            f"ws://127.0.0.1:{port}{path}", subprotocols=client_subprotocols, **hubbub_options
        ) as local:
            opened = await node.expect("open")
            assert opened["path"] == path
            extensions = opened.get("extensions") or ""
            yield local, NodeRemote(node, peer, opened["protocol"] or None, extensions)
        await node.stop()


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that are not all alike, so that a shifted or dropped byte shows."""
    block = bytes((i * 31 + seed) & 0xFF for i in range(251))  # 251 is prime: no alignment
    return (block * (size // len(block) + 1))[:size]
