"""The options of ``serve()`` and ``connect()``, typed once for both adapters.

``serve(handler, host, port, **options)`` and ``connect(uri, **options)``
take their options as keywords, declared here as :class:`~typing.TypedDict`
classes used with :data:`~typing.Unpack`: a misspelled option is a
``mypy`` error, and at run time a :class:`TypeError` that names it
(:class:`hubbub.adapter.ServerPolicy` and :class:`~hubbub.adapter.ClientPolicy`
check). The shared ones are here; each adapter adds its own (``write_limit``
and its kind of ``process_request`` hook for asyncio) in a subclass next to
its ``serve()``. ``hubbub.hub.start_hub`` forwards its options to asyncio's
``serve()`` with the same type.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any, TypedDict

from .adapter import LoggerLike
from .protocol.extensions import ClientExtensionFactory, ServerExtensionFactory
from .protocol.http11 import Headers
from .protocol.server import SubprotocolSelector
from .proxy import Proxy

__all__ = ["ClientOptions", "ServerOptions"]


class ServerOptions(TypedDict, total=False):
    """What both adapters' ``serve()`` take besides the address (see their docs)."""

    subprotocols: Sequence[str]
    subprotocol_required: bool
    select_subprotocol: SubprotocolSelector | None
    origins: Sequence[str | None] | None
    extensions: Sequence[ServerExtensionFactory] | None
    compression: str | None
    max_size: int | None
    max_body: int
    max_queue: int
    ping_interval: float | None
    ping_timeout: float | None
    open_timeout: float | None
    close_timeout: float
    extra_headers: Headers | Sequence[tuple[str, str]]
    health_check_path: str | None
    server_header: str | None
    logger: LoggerLike | None


class ClientOptions(TypedDict, total=False):
    """What both adapters' ``connect()`` take besides the URI (see their docs)."""

    subprotocols: Sequence[str]
    origin: str | None
    additional_headers: Headers | Sequence[tuple[str, str]] | None
    user_agent: str | None
    compression: str | None
    extensions: Sequence[ClientExtensionFactory] | None
    max_size: int | None
    max_queue: int
    ping_interval: float | None
    ping_timeout: float | None
    open_timeout: float | None
    close_timeout: float
    ssl: ssl.SSLContext | bool | None
    server_hostname: str | None
    unix_path: str | None
    host: str | None
    port: int | None
    sock: Any
    proxy: str | Proxy | bool | None
    max_redirects: int
    logger: LoggerLike | None
