"""The hub on asyncio: the WebSocket endpoint, ``/healthz``, ``/metrics``, the HTTP API.

Theory of operation
-------------------

:func:`start_hub` wires a :class:`~hubbub.hub.core.node.Node` to
:func:`hubbub.asyncio.serve`:

* each WebSocket connection (subprotocol ``hubbub.json.v1`` required, or
  ``hubbub.msgpack.v1`` when ``msgpack`` is installed) becomes a session. A
  msgpack session's requests are decoded and checked at the edge
  (:func:`hubbub.hub.core.binary.request_text`) and its replies and pushes
  packed from the node's JSON text by one shared
  :class:`~hubbub.hub.core.binary.MsgpackEncoder` (a push fanned out is
  packed once, whatever the number of msgpack recipients); JSON sessions take
  the path they always took. The frames of each encoding have their own
  :class:`~hubbub.hub.server.frames.FrameCache`, so a channel mixing both encodes each frame once.
  The node's ``send(text)`` is synchronous and must never block. When
  nothing is queued and the transport is below its high water mark, the
  :class:`_Outbox` writes the frame straight to the transport: server frames
  are not masked (RFC 6455 section 5.1), so the frame of a push fanned out to
  many sessions is encoded once (:class:`~hubbub.hub.server.frames.FrameCache`)
  and the same bytes are written to each. Channel publications (the node's ``push``) are held in the
  connection's output until the end of the loop iteration
  (``send_frames_soon``) when the iteration fans out several (a batch from
  the HTTP API, several publishers): they leave in one write per
  connection, one system call instead of one per publication; a lone
  publication is written at once (:class:`~hubbub.hub.server.frames.FrameCache`).
  Otherwise (the client reads slowly, or the connection negotiated an extension such as
  permessage-deflate, which compresses per connection, RFC 7692) the text is
  queued, and the outbox's writer task
  (started the first time something is queued) awaits ``ws.send``,
  honouring the write buffer limits; a backlog it finds while the transport
  has room goes out in one write. An outbox that fills
  up is dropped and the connection closed with 4011: the client reconnects and
  recovers from its offsets, which costs far less than buffering without bound;
* plain HTTP on the same port goes through the adapter's ``process_request``
  hook: ``GET /healthz`` (JSON, 503 when the broker is down; with the versions
  and the accelerator's state) and ``GET /metrics`` (behind a bearer token when
  ``metrics_token`` is set: counters reveal traffic, docs/hub.md);
* the HTTP API (:mod:`hubbub.hub.server.http_api`, ``POST /api/...``) is served on the
  same port when an API key is configured (the adapter reads request bodies up
  to ``max_body``);
* requests: on a broker that never waits (``Broker.suspends`` False, the
  in-process :class:`MemoryBroker`), each message is handled from the
  connection's read callback, with no Future or task step per message
  (:mod:`hubbub.hub.server.inline`); on Redis, the handler's task awaits
  :meth:`Node.handle` for each message in turn;
* a housekeeping task calls :meth:`Node.periodic` every second (clock ticks,
  token expiry, presence heartbeats).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...asyncio import Server, ServerConnection, serve
from ...exceptions import ConnectionClosed
from ...protocol.http11 import Request, Response
from ...versions import versions
from ..auth import Authenticator
from ..brokers.memory import MemoryBroker
from ..core.binary import (
    MSGPACK_SUBPROTOCOL,
    MsgpackEncoder,
    handle_binary_now,
    msgpack_available,
)
from ..core.broker import Broker
from ..core.config import HubConfig
from ..core.node import Node
from ..core.protocol import SUBPROTOCOL
from ..core.session import DisconnectCode
from ..metrics import CONTENT_TYPE, HubMetrics
from .frames import FrameCache
from .http_api import MAX_BODY, METRICS_CHALLENGE, METRICS_REFUSAL, HttpApi, bearer_matches
from .inline import InlineRequests
from .origins import OriginPolicy
from .static import serve_static
from .workers import WorkerReports

__all__ = ["Hub", "new_node", "run_hub", "start_hub"]

logger = logging.getLogger(__name__)


class _Outbox:
    """Turns the node's synchronous ``send`` into writes, queuing while the client is slow."""

    def __init__(
        self,
        ws: ServerConnection,
        max_pending: int,
        frames: FrameCache | None = None,
        on_close: Callable[[int], None] | None = None,
    ) -> None:
        self.ws = ws
        # Told of the closes the outbox decides itself (4011), which no node
        # call makes, so that hubbub_disconnects_total counts them too.
        self.on_close = on_close
        self.max_pending = max_pending
        self.frames = frames or FrameCache()
        self.queue: collections.deque[str | bytes] = collections.deque()
        # The writer task and its event exist only once something is queued
        # (a slow reader, an extension, a close): most connections never need
        # them, and 10,000 idle tasks cost memory and collector time.
        self.wakeup: asyncio.Event | None = None
        self.writer: asyncio.Task[None] | None = None
        self.finished = False  # the handler is done: start nothing any more
        self.closing: tuple[int, str] | None = None
        self.close_deadline: asyncio.TimerHandle | None = None
        # Without shared frames, everything goes through ws.send. An extension
        # transforms each frame per connection: no shared frame either.
        self.direct = frames is not None and ws.shares_frames
        if self.direct:
            self.send_frames = ws.send_frames_nowait
            self.hold_frames = ws.send_frames_soon

    def send(self, text: str | bytes) -> None:
        # Called once per recipient of every push (__init__ keeps the bound
        # method: attribute lookups count here).
        if self.closing is not None:
            return
        if not self.queue and self.direct:
            # Nothing queued ahead of it: written now unless the transport is
            # above its high water mark (then the writer task waits for it).
            frames = self.frames
            if self.send_frames(frames.frame if text is frames.text else frames.encode(text)):
                return
        self._enqueue(text)

    def push(self, text: str | bytes) -> None:
        """A channel publication: :meth:`send`, the write held to the end of the iteration."""
        # The fan-out's hot path, once per subscriber: as send(), with the
        # frame queued in the connection's output and written with whatever
        # else this iteration gives it (send_frames_soon) when the frame cache
        # says the iteration has more publications (FrameCache.hold).
        if self.closing is not None:
            return
        if not self.queue and self.direct:
            frames = self.frames
            frame = frames.frame if text is frames.text else frames.published(text)
            if (self.hold_frames if frames.hold else self.send_frames)(frame):
                return
        self._enqueue(text)

    def _enqueue(self, text: str | bytes) -> None:
        """Queue ``text`` for the writer task, or close a client that let too much pile up."""
        queue = self.queue
        if len(queue) >= self.max_pending:
            # Slow consumer: what is queued is dropped; the client recovers it.
            queue.clear()
            self.close(DisconnectCode.SLOW_CONSUMER, "slow consumer")
            if self.on_close is not None:
                self.on_close(DisconnectCode.SLOW_CONSUMER)
            return
        queue.append(text)
        self._wake()

    def _write_backlog(self) -> bool:
        """Write every queued frame at once if the transport takes them now."""
        if not self.direct or self.ws.writing_paused:
            return False  # checked first: joining a long queue for nothing costs
        queue, frames = self.queue, self.frames
        if not self.send_frames(b"".join([frames.encode(text) for text in queue])):
            return False
        queue.clear()
        return True

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            self._wake()
            if not self.finished:
                # What is queued gets close_timeout to go out, no more: a client
                # that stopped reading (a ping flooder whose pongs fill the
                # buffers) would otherwise keep the writer waiting in ws.send
                # and the connection open past any deadline (issue 12).
                self.close_deadline = asyncio.get_running_loop().call_later(
                    self.ws.close_timeout, self._close_now
                )

    def _close_now(self) -> None:
        self.close_deadline = None
        writer = self.writer
        if self.finished or writer is None or writer.done():
            return
        writer.cancel()  # waiting in ws.send, which wrote its frame before it waited
        self.writer = asyncio.get_running_loop().create_task(self._close_ws())

    async def _close_ws(self) -> None:
        assert self.closing is not None
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(*self.closing)  # bounded by close_timeout itself

    def _wake(self) -> None:
        if self.finished:
            return
        if self.wakeup is None:
            self.wakeup = asyncio.Event()
        self.wakeup.set()
        if self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        ws, queue = self.ws, self.queue
        if self.wakeup is None:
            self.wakeup = asyncio.Event()
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.wakeup.wait()
                self.wakeup.clear()
                while queue:
                    if self._write_backlog():
                        # A backlog and room in the transport: every queued
                        # frame went in one write (one syscall, not one each).
                        continue
                    # ws.send writes before it waits for the buffer to drain, so
                    # a message popped here precedes anything send() writes next.
                    await ws.send(queue.popleft())
                if self.closing is not None:
                    await ws.close(*self.closing)
                    return


@dataclass
class Hub:
    """A running hub, as :func:`start_hub` yields it."""

    node: Node
    server: Server
    api: HttpApi | None

    @property
    def port(self) -> int:
        """The WebSocket / HTTP port (handy with ``port=0``)."""
        return self.server.port


class _Endpoint:
    def __init__(
        self,
        node: Node,
        max_pending: int,
        api: HttpApi | None,
        *,
        metrics_token: str | None,
        origins: OriginPolicy,
        ws_path: str = "/",
        reports: WorkerReports | None = None,
    ) -> None:
        self.node = node
        # With --workers N, /healthz and /metrics answer for every worker.
        self.reports = reports
        self.origins = origins
        self.max_pending = max_pending
        self.api = api
        # Where WebSocket handshakes are accepted: "/" (the chat page and
        # hubbub.js connect there) and the configured path, if another.
        self.ws_paths = frozenset({"/", ws_path})
        self.metrics_key = None if metrics_token is None else metrics_token.encode()
        self.versions = versions()
        self.outboxes: set[_Outbox] = set()
        self.frames = FrameCache()
        # The msgpack sessions' own frame cache and encoder (module docstring).
        self.binary_frames = FrameCache()
        self.msgpack: MsgpackEncoder | None = MsgpackEncoder() if msgpack_available() else None
        # Offered in this order (the server's preference, RFC 6455 section 4.2.2).
        self.subprotocols = [SUBPROTOCOL]
        if self.msgpack is not None:
            self.subprotocols.append(MSGPACK_SUBPROTOCOL)
        node.metrics.gauge_function(
            "hubbub_outbox_messages",
            "Messages queued on this node for clients that read slowly",
            lambda: sum(len(o.queue) for o in self.outboxes),
        )
        node.metrics.gauge_function(
            "hubbub_broker_entries",
            "Entries kept by the broker (histories and inboxes), if it says",
            lambda: float(node.broker.health().get("entries", 0)),
        )

    async def handler(self, ws: ServerConnection) -> None:
        packer = self.msgpack if ws.subprotocol == MSGPACK_SUBPROTOCOL else None
        frames = self.frames if packer is None else self.binary_frames
        outbox = _Outbox(ws, self.max_pending, frames, self.node.metrics.disconnected)
        self.outboxes.add(outbox)
        if packer is None:
            session = self.node.open_session(outbox.send, outbox.close, push=outbox.push)
        else:
            pack_text, send, push = packer.pack_text, outbox.send, outbox.push
            session = self.node.open_session(
                lambda text: send(pack_text(text)),
                outbox.close,
                push=lambda text: push(pack_text(text)),
            )
        node = self.node
        if packer is None:
            handle_now = functools.partial(node.handle_now, session)
        else:
            handle_now = functools.partial(handle_binary_now, node, session)
        try:
            if node.broker.suspends:
                # What Node.handle does, one coroutine level fewer: each
                # suspension on the broker resumes through every level.
                async for message in ws:
                    rest = handle_now(message)
                    if rest is not None:
                        await rest
            else:
                # Nothing the node awaits waits: each request runs from the
                # read callback, no task step per message (server.inline).
                inline = InlineRequests(ws, handle_now)
                inline.start()
                await ws.wait_closed()
                # A request still waiting (and those queued behind it) ends
                # before the session is forgotten, as in the loop above.
                await inline.wait_done()
        except ConnectionClosed:
            pass
        finally:
            self.outboxes.discard(outbox)
            await self.node.close_session(session)
            outbox.finished = True
            if outbox.close_deadline is not None:
                outbox.close_deadline.cancel()
            writer = outbox.writer
            if writer is not None:
                if not writer.done():
                    writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer

    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = request.path_only
        if "Upgrade" in request.headers:
            # Checked before the handshake: a page on another site must not
            # open a connection from a signed-in user's browser (RFC 6455 10.2).
            headers = request.headers
            if not self.origins.allows(headers.get_all("Origin"), headers.get("Host")):
                return conn.respond(
                    403,
                    '{"error":"origin not allowed: list it with --origin (docs/hub.md)"}',
                    "application/json",
                )
            if path in self.ws_paths:
                return None  # the WebSocket handshake
            # A client pointed at the wrong path should hear so, not connect
            # to something that only looks right.
            paths = " and ".join(sorted(self.ws_paths))
            return conn.respond(
                404,
                json.dumps({"error": f"no WebSocket endpoint at {path}: the hub's is at {paths}"}),
                "application/json",
            )
        if path.startswith("/api/"):
            if self.api is None:
                return conn.respond(
                    404,
                    '{"error":"the HTTP API is off: start the hub with an API key"}',
                    "application/json",
                )
            return await self.api.respond(conn, request)
        if path == "/healthz":
            health = self.node.health()
            if self.reports is not None:
                health = self.reports.health(health)
            body = json.dumps({**health, "versions": self.versions})
            return conn.respond(200 if health["ok"] else 503, body, "application/json")
        if path == "/metrics":
            return self._metrics(conn, request)
        static = serve_static(request)  # the chat page, hubbub.js (hub/server/static)
        if static is not None:
            return static
        return conn.respond(404, '{"error":"not found"}', "application/json")

    def _metrics(self, conn: ServerConnection, request: Request) -> Response:
        key = self.metrics_key
        if key is not None and not bearer_matches(request.headers.get("Authorization"), key):
            response = conn.respond(401, METRICS_REFUSAL)
            response.headers["Content-Type"] = "application/json"
            response.headers["WWW-Authenticate"] = METRICS_CHALLENGE
            return response
        body = self.node.metrics.render()
        if self.reports is not None:
            body = self.reports.metrics(body)
        return conn.respond(200, body, CONTENT_TYPE)


def new_node(
    *,
    broker: Broker | None = None,
    auth: Authenticator | None = None,
    config: HubConfig | None = None,
    secret: str | None = None,
    public_key: str | bytes | None = None,
    insecure_dev_mode: bool = False,
    other_auth: str | None = None,
) -> Node:
    """A node from the hub's options (:func:`start_hub`, ``hubbub.hub.server.asgi.asgi_app``).

    Args:
        other_auth: the name of another way the caller authenticates clients
            (the ASGI app's ``authenticate`` hook), or ``None``: then ``auth``,
            a secret, a public key or the development mode is required.

    Raises:
        ValueError: no way to authenticate clients was configured.
    """
    if auth is None:
        if secret is None and public_key is None and not insecure_dev_mode and not other_auth:
            raise ValueError("configure a secret, a public key, or insecure_dev_mode")
        auth = Authenticator(
            secret=secret, public_key=public_key, insecure_dev_mode=insecure_dev_mode
        )
    # The node reads no clock and builds no metrics itself (its core is I/O-free):
    # the server hands it the system clock and the counters /metrics exports.
    return Node(broker or MemoryBroker(), auth, config, clock=time.time, metrics=HubMetrics())


async def _housekeeping(node: Node, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await node.periodic()
        except Exception:
            logger.exception("hub housekeeping failed")


@contextlib.asynccontextmanager
async def start_hub(
    host: str | None = "127.0.0.1",
    port: int | None = 8765,
    *,
    node: Node | None = None,
    broker: Broker | None = None,
    auth: Authenticator | None = None,
    config: HubConfig | None = None,
    secret: str | None = None,
    public_key: str | bytes | None = None,
    insecure_dev_mode: bool = False,
    api_key: str | None = None,
    metrics_token: str | None = None,
    tick_interval: float = 1.0,
    max_pending: int = 4096,
    origins: Sequence[str] = (),
    ws_path: str = "/",
    reports: WorkerReports | None = None,
    **ws_options: Any,
) -> AsyncIterator[Hub]:
    """Run a hub while the ``async with`` block runs.

    Args:
        host: the address where the WebSocket endpoint, ``/healthz`` and ``/metrics`` listen.
        port: their TCP port (0 picks a free one: see ``Hub.port``).
        node: a ready node, whose broker the caller starts and closes (several
            nodes may share it); otherwise one is built from ``broker`` (a
            :class:`MemoryBroker` by default; started and closed with the hub),
            ``auth`` (or ``secret`` / ``public_key`` / ``insecure_dev_mode``) and ``config``.
        api_key: enables the HTTP API (``POST /api/...`` on the same port).
        metrics_token: ``GET /metrics`` then needs ``Authorization: Bearer
            <metrics_token>`` (401 otherwise); None leaves it open.
        tick_interval: seconds between housekeeping rounds (the clock push).
        max_pending: messages queued for one slow client before it is closed (4011).
        origins: browser origins allowed to connect besides the hub's own (same
            host); ``"*"`` allows any. Clients that send no ``Origin`` (not
            browsers) are always allowed (:mod:`hubbub.hub.server.origins`).
        ws_path: another path accepting the WebSocket endpoint besides ``/`` (for
            a reverse proxy that forwards ``/ws`` as it is); handshakes on any
            other path get 404.
        reports: this hub is one worker of ``hubbub serve --workers N``:
            ``/healthz`` and ``/metrics`` answer for every worker
            (:mod:`hubbub.hub.server.workers`; pass ``reuse_port=True`` too).
        ws_options: passed to :func:`hubbub.asyncio.serve` (``max_size``, ``ssl`` ...).
    """
    if not ws_path.startswith("/") or "?" in ws_path:
        raise ValueError(f"ws_path must be a path starting with /, not {ws_path!r}")
    if metrics_token is not None and not metrics_token:
        raise ValueError("the metrics token must not be empty")
    given_node = node is not None
    if node is None:
        node = new_node(
            broker=broker,
            auth=auth,
            config=config,
            secret=secret,
            public_key=public_key,
            insecure_dev_mode=insecure_dev_mode,
        )
    # The broker of a node given by the caller may be shared with other nodes:
    # the caller starts and closes it. Otherwise the hub does.
    owns_broker = not given_node
    if owns_broker:
        await node.broker.start()
    api = HttpApi(node, api_key) if api_key is not None else None
    endpoint = _Endpoint(
        node,
        max_pending,
        api,
        metrics_token=metrics_token,
        origins=OriginPolicy(origins),
        ws_path=ws_path,
        reports=reports,
    )
    ws_options.setdefault("max_size", node.config.max_request_bytes * 4)
    ws_options.setdefault("max_body", MAX_BODY)
    housekeeping = asyncio.create_task(_housekeeping(node, tick_interval))
    try:
        async with serve(
            endpoint.handler,
            host,
            port,
            subprotocols=endpoint.subprotocols,
            subprotocol_required=True,
            process_request=endpoint.process_request,
            health_check_path=None,
            **ws_options,
        ) as server:
            try:
                yield Hub(node, server, api)
            finally:
                await node.shutdown()
    finally:
        housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeping
        if owns_broker:
            await node.broker.close()


async def run_hub(host: str | None = "127.0.0.1", port: int | None = 8765, **options: Any) -> None:
    """Serve a hub until cancelled (see :func:`start_hub` for the options)."""
    async with start_hub(host, port, **options) as hub:
        logger.info("hub listening on %s:%d", host, hub.port)
        await asyncio.Future()
