"""WebSocket server and client on asyncio (uvloop works too).

``serve(handler, host, port)`` and ``connect(uri)``; see
:mod:`hubbub.asyncio.server`, :mod:`hubbub.asyncio.client` and
:mod:`hubbub.asyncio.connection` (which owns an :mod:`~hubbub.asyncio.inbox`, a
:mod:`~hubbub.asyncio.sending` writer and its :mod:`~hubbub.asyncio.pings`, and uses
:mod:`~hubbub.asyncio.reader` for reading large frames into the message).
"""

from __future__ import annotations

from .broadcast import BroadcastResult, broadcast
from .client import ClientConnection, connect
from .connection import Connection, Data
from .server import Server, ServerConnection, serve
from .websocket import WebSocket

__all__ = [
    "BroadcastResult",
    "ClientConnection",
    "Connection",
    "Data",
    "Server",
    "ServerConnection",
    "WebSocket",
    "broadcast",
    "connect",
    "serve",
]
