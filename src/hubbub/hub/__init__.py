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

The node needs the ``hub`` extra (``pip install 'hubbub[hub]'``: PyJWT and
prometheus_client) and the Redis broker the ``redis`` extra; without them, using
those parts raises :class:`~hubbub.exceptions.MissingExtra`, which names the extra.
The Python SDK needs no extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .asgi import asgi_app
    from .auth import Authenticator, AuthError, Identity, mint_subscribe_token, mint_token
    from .broker import Broker, BrokerUnavailable, ClientInfo, MemoryBroker, Notice
    from .config import HubConfig, NamespaceRules
    from .core import Node
    from .metrics import HubMetrics
    from .protocol import SUBPROTOCOL, ErrorCode
    from .session import DisconnectCode, Session
    from .streams import Entry, StreamLimits

# The names below are imported on first use (PEP 562), not with the package: the
# Python SDK (hubbub.hub.client) needs no extra, while the node (auth, metrics)
# needs ``hubbub[hub]``; importing the SDK must not import PyJWT and prometheus_client.
_HOMES = {
    "asgi_app": "asgi",
    "Authenticator": "auth",
    "AuthError": "auth",
    "Identity": "auth",
    "mint_subscribe_token": "auth",
    "mint_token": "auth",
    "Broker": "broker",
    "BrokerUnavailable": "broker",
    "ClientInfo": "broker",
    "MemoryBroker": "broker",
    "Notice": "broker",
    "HubConfig": "config",
    "NamespaceRules": "config",
    "Node": "core",
    "HubMetrics": "metrics",
    "SUBPROTOCOL": "protocol",
    "ErrorCode": "protocol",
    "DisconnectCode": "session",
    "Session": "session",
    "Entry": "streams",
    "StreamLimits": "streams",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


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
    "asgi_app",
    "mint_subscribe_token",
    "mint_token",
]
