"""The hub as an ASGI application, to mount in FastAPI, Starlette or Django.

::

    hub = asgi_app(secret=...)                  # or authenticate=my_hook
    app = FastAPI(lifespan=hub.lifespan)        # broker up on startup, drained on shutdown
    app.mount("/hub", hub)

    @app.post("/orders")
    async def order(...):
        await hub.publish("orders", {...})      # the in-process Python API

Under the mount point it serves what ``hubbub serve`` serves on its port: the
WebSocket endpoint (subprotocol ``hubbub.json.v1`` or ``hubbub.msgpack.v1``, at
the mount point itself, ``ws://host/hub/``), ``/healthz``, ``/metrics``, the HTTP
API (``/api/...``, with an API key) and the chat page (``/hub/``, with ``/hub``
redirected there so that the page's relative URLs resolve).

Authentication: JWTs as in ``hubbub serve`` (``secret``/``public_key``), the
INSECURE development mode, or an ``authenticate`` hook: an application function
that sees the handshake (:class:`HandshakeInfo`: scope, headers, cookies) and
returns the user id, or ``None`` to refuse with 401. Connections it identifies
send ``connect`` without a token.

Lifespan: an ASGI server sends ``lifespan`` events to the top-level app only, and
Starlette does not pass them to mounted apps, so the hub offers
:meth:`HubApp.lifespan` (a FastAPI/Starlette ``lifespan=``) and
:meth:`HubApp.running`; as the top-level app it also answers ``lifespan`` itself.
:func:`with_hub` routes a prefix to the hub in front of any other ASGI app (Django).

Messages to a connection go through a per-connection outbox, since the node's
``send`` is synchronous: a writer task awaits the server's ``send``; a client that
lets ``max_pending`` messages pile up is closed with 4011 and recovers on reconnect,
as in :mod:`hubbub.hub.server`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

from ...protocol.http11 import Headers, Request, Response
from ..auth import Authenticator, Identity
from ..core.binary import MSGPACK_SUBPROTOCOL, MsgpackEncoder, handle_binary, msgpack_available
from ..core.broker import Broker
from ..core.config import HubConfig
from ..core.node import Node
from ..core.protocol import SUBPROTOCOL, valid_user
from ..core.session import DisconnectCode
from ..metrics import CONTENT_TYPE
from . import new_node
from .http_api import MAX_BODY, METRICS_CHALLENGE, METRICS_REFUSAL, HttpApi, bearer_matches
from .origins import OriginPolicy
from .static import serve_static

__all__ = ["HandshakeInfo", "HubApp", "asgi_app", "with_hub"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class HandshakeInfo:
    """What an ``authenticate`` hook sees of a WebSocket handshake.

    Attributes:
        scope: the ASGI ``websocket`` scope (``path``, ``client``, ``state``...).
        headers: the request's headers.
        cookies: the ``Cookie`` header's values by name.
    """

    scope: Scope
    headers: Headers
    cookies: Mapping[str, str]


Authenticate = Callable[[HandshakeInfo], "str | Awaitable[str | None] | None"]
"""``authenticate(info) -> user id or None`` (may be a coroutine function)."""


def _cookies(headers: Headers) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for value in headers.get_all("Cookie"):
        with contextlib.suppress(CookieError):
            jar.load(value)
    return {name: morsel.value for name, morsel in jar.items()}


def _request(scope: Scope, path: str, body: bytes = b"") -> Request:
    headers = Headers()
    for name, value in scope.get("headers", ()):
        with contextlib.suppress(ValueError):  # LocalProtocolError: not a valid field
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
    query = scope.get("query_string", b"")
    target = path + ("?" + query.decode("latin-1") if query else "")
    return Request(target, headers, scope.get("method", "GET"), body)


def _route_path(scope: Scope) -> str:
    """The path under the mount point: ASGI servers and Starlette's Mount keep the
    full path in ``path`` and the prefix in ``root_path``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class _Outbox:
    """The node's synchronous ``send``/``close`` for one connection, written by a task."""

    def __init__(self, send: Send, max_pending: int, *, binary: bool = False) -> None:
        self._asgi_send = send
        self.max_pending = max_pending
        # The ASGI message field: text frames (JSON), or bytes for binary
        # frames (hubbub.msgpack.v1: MessagePack the encoder packed).
        self.field = "bytes" if binary else "text"
        self.queue: collections.deque[str | bytes] = collections.deque()
        self.closing: tuple[int, str] | None = None
        self.wakeup = asyncio.Event()
        self.writer = asyncio.get_running_loop().create_task(self.run())

    def send(self, text: str | bytes) -> None:
        if self.closing is not None:
            return
        if len(self.queue) >= self.max_pending:
            self.queue.clear()  # the client recovers what it missed from its offsets
            self.close(DisconnectCode.SLOW_CONSUMER, "slow consumer")
            return
        self.queue.append(text)
        self.wakeup.set()

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            self.wakeup.set()

    async def run(self) -> None:
        send, queue, field = self._asgi_send, self.queue, self.field
        with contextlib.suppress(OSError):  # the ASGI spec: send on a closed connection
            while True:
                await self.wakeup.wait()
                self.wakeup.clear()
                while queue:
                    await send({"type": "websocket.send", field: queue.popleft()})
                if self.closing is not None:
                    code, reason = self.closing
                    await send({"type": "websocket.close", "code": code, "reason": reason})
                    return

    async def finish(self) -> None:
        """The connection is gone: a close still being written gets a moment, the rest stops."""
        if self.closing is not None and not self.writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.writer), 5.0)
        if not self.writer.done():
            self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.writer


class HubApp:
    """A hub node served as an ASGI app; build it with :func:`asgi_app`.

    Attributes:
        node: the :class:`~hubbub.hub.core.node.Node` (its full Python API).
        api: the HTTP API, or ``None`` without an API key.
    """

    def __init__(
        self,
        node: Node,
        *,
        owns_broker: bool,
        api_key: str | None,
        authenticate: Authenticate | None,
        tick_interval: float,
        max_pending: int,
        origins: Sequence[str] = (),
        metrics_token: str | None = None,
    ) -> None:
        if metrics_token is not None and not metrics_token:
            raise ValueError("the metrics token must not be empty")
        self.node = node
        self.metrics_key = None if metrics_token is None else metrics_token.encode()
        self.api = HttpApi(node, api_key) if api_key is not None else None
        self.authenticate = authenticate
        self.origins = OriginPolicy(origins)
        self.tick_interval = tick_interval
        self.max_pending = max_pending
        self._owns_broker = owns_broker
        self._housekeeping: asyncio.Task[None] | None = None
        self._outboxes: set[_Outbox] = set()
        self.started = False
        # hubbub.msgpack.v1 beside hubbub.json.v1 when msgpack is installed
        # (docs/protocol.md section 11); JSON is preferred when both are offered.
        self.msgpack = MsgpackEncoder() if msgpack_available() else None
        self.subprotocols = [SUBPROTOCOL] + ([MSGPACK_SUBPROTOCOL] if self.msgpack else [])

    # --- lifespan --------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the broker (if the hub owns it) and start housekeeping."""
        if self.started:
            return
        if self._owns_broker:
            await self.node.broker.start()
        self._housekeeping = asyncio.get_running_loop().create_task(self._tick())
        self.started = True

    async def stop(self) -> None:
        """Disconnect every client (4000, shutdown), stop housekeeping, close the broker."""
        if not self.started:
            return
        self.started = False
        await self.node.shutdown()
        for outbox in list(self._outboxes):
            # Let each writer deliver the shutdown notice and the close.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(outbox.writer), 5.0)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        if self._owns_broker:
            await self.node.broker.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HubApp]:
        """``async with hub.running():`` the hub is started inside the block."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def lifespan(self, app: object = None) -> contextlib.AbstractAsyncContextManager[None]:
        """For ``FastAPI(lifespan=hub.lifespan)`` / ``Starlette(lifespan=hub.lifespan)``."""

        @contextlib.asynccontextmanager
        async def span() -> AsyncIterator[None]:
            async with self.running():
                yield

        return span()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                await self.node.periodic()
            except Exception:
                logger.exception("hub housekeeping failed")

    # --- the in-process Python API -----------------------------------------------------

    async def publish(self, channel: str, data: Any) -> dict[str, Any]:
        """Publish ``data`` (JSON-able) to ``channel``; return its ``offset`` and ``epoch``.

        Raises:
            ValueError: an unknown namespace or an invalid channel name.
            BrokerUnavailable: the broker is down.
        """
        entry = await self.node.publish(channel, data)
        return {"offset": entry.offset, "epoch": entry.epoch}

    async def send(self, users: list[str], data: Any) -> Any:
        """Send ``data`` to the users' inboxes (delivered live, or kept until acked)."""
        return await self.node.send(users, data)

    # --- ASGI ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _route_path(scope)
        if path == "":
            # The chat page's URLs are relative: it must be loaded from "<mount>/".
            location = scope.get("root_path", "") + "/"
            await _respond(send, 308, b"", [(b"location", location.encode("latin-1"))])
            return
        body = b""
        if path.startswith("/api/"):
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_BODY:
                    too_big = {"error": {"code": 100, "message": f"body over {MAX_BODY} bytes"}}
                    await _json(send, 413, too_big)
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
        request = _request(scope, path, body)
        if not self.started:
            error = "the hub is not started: run it in the app's lifespan (hub.lifespan)"
            await _json(send, 503, {"error": error})
        elif path.startswith("/api/"):
            if self.api is None:
                await _json(send, 404, {"error": "the HTTP API is off: give the hub an API key"})
                return
            status, text = await self.api.answer(request)
            await _respond(send, status, text.encode(), [(b"content-type", b"application/json")])
        elif path == "/healthz":
            health = self.node.health()
            await _json(send, 200 if health["ok"] else 503, health)
        elif path == "/metrics":
            key = self.metrics_key
            if key is not None and not bearer_matches(request.headers.get("Authorization"), key):
                headers = [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", METRICS_CHALLENGE.encode()),
                ]
                await _respond(send, 401, METRICS_REFUSAL.encode(), headers)
                return
            body = self.node.metrics.render()
            await _respond(send, 200, body, [(b"content-type", CONTENT_TYPE.encode())])
        else:
            static = serve_static(request)
            if static is None:
                await _json(send, 404, {"error": "not found"})
            else:
                await _send_response(send, static)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        denial = "websocket.http.response" in scope.get("extensions", {})
        offered = scope.get("subprotocols", ())
        subprotocol = next((name for name in self.subprotocols if name in offered), None)
        if subprotocol is None:
            names = " or ".join(self.subprotocols)
            await _deny(send, denial, 400, f"use the WebSocket subprotocol {names}")
            return
        headers = _request(scope, scope["path"]).headers
        # A page on another site must not open a connection from a signed-in
        # user's browser, cookies included (RFC 6455 section 10.2): the same
        # rule as `hubbub serve` (hubbub.hub.server.origins).
        if not self.origins.allows(headers.get_all("Origin"), headers.get("Host")):
            await _deny(send, denial, 403, "origin not allowed: list it in asgi_app(origins=...)")
            return
        if not self.started:
            await _deny(send, denial, 503, "the hub is not started (hub.lifespan)")
            return
        identity = None
        if self.authenticate is not None:
            user = self.authenticate(HandshakeInfo(scope, headers, _cookies(headers)))
            if inspect.isawaitable(user):
                user = await user
            if user is None:
                await _deny(send, denial, 401, "not signed in")
                return
            if not isinstance(user, str) or not valid_user(user):
                raise ValueError(f"authenticate returned an invalid user id: {user!r}")
            identity = Identity(user, None)
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        packer = self.msgpack if subprotocol == MSGPACK_SUBPROTOCOL else None
        outbox = _Outbox(send, self.max_pending, binary=packer is not None)
        self._outboxes.add(outbox)
        if packer is None:
            session = self.node.open_session(outbox.send, outbox.close, identity=identity)
        else:
            pack_text, queue_send = packer.pack_text, outbox.send
            session = self.node.open_session(
                lambda text: queue_send(pack_text(text)), outbox.close, identity=identity
            )
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    break  # websocket.disconnect
                text = message.get("text")
                raw = text if text is not None else message.get("bytes") or b""
                if packer is None:
                    await self.node.handle(session, raw)
                else:
                    await handle_binary(self.node, session, raw)
        finally:
            self._outboxes.discard(outbox)
            await self.node.close_session(session)
            await outbox.finish()


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, value: Any) -> None:
    body = json.dumps(value).encode()
    await _respond(send, status, body, [(b"content-type", b"application/json")])


async def _send_response(send: Send, response: Response) -> None:
    # Connection is hop-by-hop (RFC 9110 section 7.6.1): the ASGI server's business.
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.items()
        if name.lower() not in ("connection", "content-length")
    ]
    await _respond(send, response.status, response.body, headers)


async def _deny(send: Send, extension: bool, status: int, text: str) -> None:
    """Refuse a handshake: with the HTTP response extension if the server has it, else 403."""
    if not extension:
        await send({"type": "websocket.close", "code": 1008, "reason": text})
        return
    body = json.dumps({"error": text}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


def asgi_app(
    *,
    node: Node | None = None,
    broker: Broker | None = None,
    auth: Authenticator | None = None,
    authenticate: Authenticate | None = None,
    config: HubConfig | None = None,
    secret: str | None = None,
    public_key: str | bytes | None = None,
    insecure_dev_mode: bool = False,
    api_key: str | None = None,
    tick_interval: float = 1.0,
    max_pending: int = 4096,
    origins: Sequence[str] = (),
    metrics_token: str | None = None,
) -> HubApp:
    """The hub as an ASGI app (see the module docstring).

    Args:
        node: a ready node whose broker the caller starts and closes; otherwise
            one is built from ``broker`` (a :class:`MemoryBroker` by default,
            started on startup and closed on shutdown), ``auth`` (or ``secret``,
            ``public_key``, ``insecure_dev_mode``) and ``config`` (by default
            that of ``hubbub serve``: the default namespace and ``chat``).
        authenticate: the application's own authentication of the handshake
            (cookies, sessions): returns the user id, or ``None`` to refuse (401).
            With it, neither a secret nor the development mode is needed.
        insecure_dev_mode: INSECURE: clients sign in with any name they like.
        api_key: enables the HTTP API under ``<mount>/api/``.
        tick_interval: seconds between housekeeping rounds (the clock push).
        max_pending: messages queued for one slow client before it is closed (4011).
        origins: browser origins allowed to connect besides the page's own host
            (``Origin`` matching ``Host``); requests without ``Origin`` (not
            browsers) are always allowed; ``"*"`` allows any
            (:mod:`hubbub.hub.server.origins`).
        metrics_token: ``<mount>/metrics`` then needs ``Authorization: Bearer
            <metrics_token>`` (401 otherwise); None leaves it open.
    """
    owns_broker = node is None
    if node is None:
        if config is None:
            from ..settings import hub_config

            config = hub_config({})  # as `hubbub serve`: with the chat page's namespace
        hook = "authenticate" if authenticate is not None else None
        try:
            node = new_node(
                broker=broker,
                auth=auth,
                config=config,
                secret=secret,
                public_key=public_key,
                insecure_dev_mode=insecure_dev_mode,
                other_auth=hook,
            )
        except ValueError:
            raise ValueError(
                "configure authenticate, a secret, a public key, or insecure_dev_mode"
            ) from None
    return HubApp(
        node,
        owns_broker=owns_broker,
        api_key=api_key,
        authenticate=authenticate,
        tick_interval=tick_interval,
        max_pending=max_pending,
        origins=origins,
        metrics_token=metrics_token,
    )


def with_hub(app: ASGIApp, hub: HubApp, prefix: str = "/hub") -> ASGIApp:
    """An ASGI app sending ``prefix`` (and the lifespan) to ``hub``, the rest to ``app``.

    For frameworks without mounts or without a lifespan of their own, such as
    Django: ``application = with_hub(get_asgi_application(), hub)``. The hub
    answers the server's ``lifespan`` events; ``app`` never sees them.
    """
    prefix = prefix.rstrip("/")

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await hub(scope, receive, send)
            return
        root = scope.get("root_path", "")
        path = _route_path(scope)
        if path == prefix or path.startswith(prefix + "/"):
            scope = dict(scope, root_path=root + prefix)
            await hub(scope, receive, send)
        else:
            await app(scope, receive, send)

    return router
