"""The hubbub messaging hub: an I/O-free node core, its wire protocol and brokers.

* :mod:`~hubbub.hub.protocol`: the ``hubbub.json.v1`` wire protocol (``docs/protocol.md``);
* :mod:`~hubbub.hub.streams`: bounded ordered streams with offsets and epochs;
* :mod:`~hubbub.hub.broker`: what nodes share, and the in-memory broker;
* :mod:`~hubbub.hub.core`: a node: sessions, subscriptions, routing, limits
  (:mod:`~hubbub.hub.operations`: the commands that only check rights and ask the broker);
* :mod:`~hubbub.hub.redis_broker` (with :mod:`~hubbub.hub.redis_subscriber`): the Redis broker;
* :mod:`~hubbub.hub.client` (with ``client_types``, ``client_recovery``): the Python SDK;
* :mod:`~hubbub.hub.auth`: JWT identity; :mod:`~hubbub.hub.metrics`: Prometheus counters.
"""

from __future__ import annotations

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
