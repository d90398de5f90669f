"""The sans-I/O WebSocket protocol: bytes in, events and bytes out.

Nothing in this package performs I/O or imports ``asyncio``, ``socket``,
``threading`` or ``time``; ``tests/protocol/test_no_io.py`` enforces it.
"""

from __future__ import annotations

from .client import ClientConnection
from .connection import (
    DEFAULT_MAX_SIZE,
    CloseReceived,
    Connection,
    Event,
    Failure,
    Fragment,
    Limits,
    Ping,
    Pong,
    Side,
    State,
)
from .frames import CloseCode, Frame, Opcode, encode_shared_frame
from .http11 import Headers, Request, Response
from .server import ServerConnection

__all__ = [
    "DEFAULT_MAX_SIZE",
    "ClientConnection",
    "CloseCode",
    "CloseReceived",
    "Connection",
    "Event",
    "Failure",
    "Fragment",
    "Frame",
    "Headers",
    "Limits",
    "Opcode",
    "Ping",
    "Pong",
    "Request",
    "Response",
    "ServerConnection",
    "Side",
    "State",
    "encode_shared_frame",
]
