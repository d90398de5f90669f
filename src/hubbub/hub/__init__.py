"""The hubbub messaging hub: an I/O-free node core, its brokers, servers and SDK.

The folders follow the architecture (docs/architecture.md, "The hub"):

* :mod:`~hubbub.hub.core`: the I/O-free core: a node (:mod:`~hubbub.hub.core.node`),
  its sessions, permissions, config, the ``hubbub.json.v1`` wire protocol
  (``docs/protocol.md``), streams, and the broker interface it is handed;
* :mod:`~hubbub.hub.brokers`: the in-memory broker and the Redis broker;
* :mod:`~hubbub.hub.server`: the asyncio server that runs a node (``start_hub``), its
  HTTP API, the ASGI app (:mod:`~hubbub.hub.server.asgi`, docs/asgi.md) and the chat page;
* :mod:`~hubbub.hub.client`: the Python SDK (``HubClient``);
* :mod:`~hubbub.hub.auth`: JWT identity; :mod:`~hubbub.hub.metrics`: Prometheus counters
  (the two services of the ``hub`` extra the core is handed);
* :mod:`~hubbub.hub.settings`: ``hubbub serve``'s settings (flags, environment, TOML file).

Running a node needs the ``hub`` extra (``pip install 'hubbub[hub]'``: PyJWT for
:mod:`~hubbub.hub.auth` and prometheus_client for :mod:`~hubbub.hub.metrics`, which the
server hands the node) and the Redis broker the ``redis`` extra; without them, using
those parts raises :class:`~hubbub.exceptions.MissingExtra`, which names the extra.
The I/O-free core and the Python SDK need no extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .auth import Authenticator, mint_subscribe_token, mint_token
    from .brokers.memory import MemoryBroker
    from .core.binary import MSGPACK_SUBPROTOCOL
    from .core.broker import Broker, BrokerUnavailable, ClientInfo, Notice
    from .core.config import HubConfig, NamespaceRules
    from .core.identity import AuthError, Identity
    from .core.node import Node
    from .core.protocol import SUBPROTOCOL, ErrorCode
    from .core.session import DisconnectCode, Session
    from .core.streams import Entry, StreamLimits
    from .metrics import HubMetrics
    from .server.asgi import asgi_app

# The names below are imported on first use (PEP 562), not with the package: the
# Python SDK (hubbub.hub.client) needs no extra, while the node (auth, metrics)
# needs ``hubbub[hub]``; importing the SDK must not import PyJWT and prometheus_client.
_HOMES = {
    "asgi_app": "server.asgi",
    "Authenticator": "auth",
    "AuthError": "core.identity",
    "Identity": "core.identity",
    "mint_subscribe_token": "auth",
    "mint_token": "auth",
    "Broker": "core.broker",
    "BrokerUnavailable": "core.broker",
    "ClientInfo": "core.broker",
    "MemoryBroker": "brokers.memory",
    "Notice": "core.broker",
    "HubConfig": "core.config",
    "NamespaceRules": "core.config",
    "Node": "core.node",
    "HubMetrics": "metrics",
    "SUBPROTOCOL": "core.protocol",
    "MSGPACK_SUBPROTOCOL": "core.binary",
    "ErrorCode": "core.protocol",
    "DisconnectCode": "core.session",
    "Session": "core.session",
    "Entry": "core.streams",
    "StreamLimits": "core.streams",
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
    "MSGPACK_SUBPROTOCOL",
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
