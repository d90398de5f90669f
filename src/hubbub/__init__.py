"""hubbub: real-time, two-way communication over WebSocket.

The sans-I/O protocol core lives in :mod:`hubbub.protocol`, the asyncio adapter
in :mod:`hubbub.asyncio`, the blocking one in :mod:`hubbub.sync`.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from .adapter import RedirectError
from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    HandshakeTimeout,
    HubbubError,
    InvalidHeader,
    InvalidMessage,
    InvalidOrigin,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    InvalidVersion,
    LocalProtocolError,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    RemoteProtocolError,
    UsageError,
)
from .protocol.connection import State
from .protocol.frames import CloseCode, Opcode
from .proxy import ProxyError
from .websocket import WebSocket

__all__ = [
    "CloseCode",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "HandshakeTimeout",
    "HubbubError",
    "InvalidHeader",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "InvalidVersion",
    "LocalProtocolError",
    "NegotiationError",
    "Opcode",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "RedirectError",
    "RemoteProtocolError",
    "State",
    "UsageError",
    "WebSocket",
    "__version__",
]
