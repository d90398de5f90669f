"""hubbub: real-time, two-way communication over WebSocket.

The sans-I/O protocol core lives in :mod:`hubbub.protocol`, the asyncio adapter
in :mod:`hubbub.asyncio`, the blocking one in :mod:`hubbub.sync`.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

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
    MissingExtra,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    RedirectError,
    RemoteProtocolError,
    UsageError,
)
from .protocol.connection import State
from .protocol.frames import CloseCode, Opcode

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
    "MissingExtra",
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


def __getattr__(name: str) -> object:
    # The browser-style client starts threads and sockets; importing it lazily
    # keeps `import hubbub.protocol` free of I/O modules.
    if name == "WebSocket":
        from .websocket import WebSocket

        return WebSocket
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
