"""WebSocket client and server on blocking sockets and threads.

``connect(uri)`` / ``reconnect(uri)`` and ``serve(handler, host, port)``; see
:mod:`hubbub.sync.client`, :mod:`hubbub.sync.server` and
:mod:`hubbub.sync.connection`. They drive the same sans-I/O core as
:mod:`hubbub.asyncio`.
"""

from __future__ import annotations

from .client import ClientConnection, connect, reconnect
from .connection import Connection, Data
from .server import Server, ServerConnection, serve

__all__ = [
    "ClientConnection",
    "Connection",
    "Data",
    "Server",
    "ServerConnection",
    "connect",
    "reconnect",
    "serve",
]
