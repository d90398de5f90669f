"""Logic that the asyncio and blocking adapters share, without I/O.

:mod:`hubbub.protocol` is the sans-I/O WebSocket core; this package holds the
next layer up, the decisions an adapter makes around the core that do not
depend on how bytes move. :mod:`hubbub.asyncio` and :mod:`hubbub.sync` both
import it, so the two worlds cannot drift apart. One idea per module:

* :mod:`~hubbub.adapter.connection`: per-connection helpers (how a connection
  closed, pings and pongs, the attributes read off the core);
* :mod:`~hubbub.adapter.fragments`: fragmented messages, sent from an iterable
  or streamed (RFC 6455 section 5.4);
* :mod:`~hubbub.adapter.policy`: the handshake policies of servers and clients
  (options, extensions, TLS contexts, refusals);
* :mod:`~hubbub.adapter.redirects`: where a redirected handshake leads.

Every public name is importable from here too.
"""

from __future__ import annotations

from .connection import (
    DECODE_STEP,
    ConnectionAttributes,
    Data,
    FailurePending,
    LoggerLike,
    PingTracker,
    closed_exception,
    decoded,
    format_address,
)
from .fragments import Fragmenter, FragmentStream, fragment_converter, join_fragments
from .policy import (
    LINGER_BYTES,
    ClientPolicy,
    ServerPolicy,
    client_extension_factories,
    client_ssl_context,
    log_refused_handshake,
    respond,
    server_extension_factories,
    server_ssl_context,
)
from .redirects import DEFAULT_MAX_REDIRECTS, REDIRECT_STATUSES, RedirectError, redirect_target

__all__ = [
    "DECODE_STEP",
    "DEFAULT_MAX_REDIRECTS",
    "LINGER_BYTES",
    "REDIRECT_STATUSES",
    "ClientPolicy",
    "ConnectionAttributes",
    "Data",
    "FailurePending",
    "FragmentStream",
    "Fragmenter",
    "LoggerLike",
    "PingTracker",
    "RedirectError",
    "ServerPolicy",
    "client_extension_factories",
    "client_ssl_context",
    "closed_exception",
    "decoded",
    "format_address",
    "fragment_converter",
    "join_fragments",
    "log_refused_handshake",
    "redirect_target",
    "respond",
    "server_extension_factories",
    "server_ssl_context",
]
