"""The hubbub messaging hub: an I/O-free node core, its wire protocol and brokers.

* :mod:`~hubbub.hub.protocol`: the ``hubbub.json.v1`` wire protocol (``docs/protocol.md``);
* :mod:`~hubbub.hub.streams`: bounded ordered streams with offsets and epochs;
* :mod:`~hubbub.hub.broker`: what nodes share, and the in-memory broker;
* :mod:`~hubbub.hub.core`: a node: sessions, subscriptions, routing, limits
  (:mod:`~hubbub.hub.operations`: the commands that only check rights and ask the broker);
* :mod:`~hubbub.hub.redis_broker` (with :mod:`~hubbub.hub.redis_subscriber`): the Redis broker;
* :mod:`~hubbub.hub.client` (with ``client_types``, ``client_recovery``): the Python SDK;
* :mod:`~hubbub.hub.auth`: JWT identity; :mod:`~hubbub.hub.metrics`: Prometheus counters;
* :mod:`~hubbub.hub.asgi`: the hub as an ASGI app (``hubbub.hub.asgi_app``, docs/asgi.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .auth import Authenticator, AuthError, Identity, mint_subscribe_token, mint_token
from .broker import Broker, BrokerUnavailable, ClientInfo, MemoryBroker, Notice
from .config import HubConfig, NamespaceRules
from .core import Node
from .metrics import HubMetrics
from .protocol import SUBPROTOCOL, ErrorCode
from .session import DisconnectCode, Session
from .streams import Entry, StreamLimits

__all__ = [
    "SUBPROTOCOL",
    "AuthError",
    "Authenticator",
    "Broker",
    "BrokerUnavailable",
    "ClientInfo",
    "DisconnectCode",
    "Entry",
    "ErrorCode",
    "HubConfig",
    "HubMetrics",
    "Identity",
    "MemoryBroker",
    "NamespaceRules",
    "Node",
    "Notice",
    "Session",
    "StreamLimits",
    "mint_subscribe_token",
    "mint_token",
]

if TYPE_CHECKING:
    from .asgi import asgi_app as asgi_app


def __getattr__(name: str) -> object:
    # hubbub.hub.asgi_app, imported on first use: the ASGI app brings in the
    # asyncio server, which users of the I/O-free core above do not need.
    if name == "asgi_app":
        from .asgi import asgi_app

        return asgi_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
