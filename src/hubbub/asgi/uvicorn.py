"""hubbub as uvicorn's WebSocket implementation: ``uvicorn.run(app, ws=HubbubProtocol)``.

uvicorn parses the HTTP request, sees ``Upgrade: websocket`` and hands the
transport to the class of its ``ws`` setting, replaying the request head into
:meth:`HubbubProtocol.data_received`. From there hubbub's sans-I/O core
(:class:`hubbub.protocol.ServerConnection`) does everything RFC 6455 asks:
the handshake checks, permessage-deflate (RFC 7692), UTF-8 validation as text
arrives, pongs and the close echo. This class only moves bytes and turns core
events into ASGI messages (the ASGI WebSocket spec 2.4, with the
``websocket.http.response`` denial extension).

uvicorn's settings it honours: ``ws_max_size`` (1009 beyond it),
``ws_max_queue`` (messages received but not yet read by the app before reading
pauses), ``ws_ping_interval``/``ws_ping_timeout`` (keepalive, 1011 without a
pong), ``ws_per_message_deflate``, ``root_path``, ``headers``/``server_header``/
``date_header`` (the default headers of every 101 and denial), and server
shutdown (close code 1012, Service Restart). Where it differs from uvicorn's own
implementations (see docs/asgi.md): a connection lost without a close frame
reports 1006 (RFC 6455 section 7.1.5), not 1005; an app that returns after
accepting without closing gets a normal closing handshake (1000) instead of a
dropped TCP connection; an app that raises after accepting closes with 1011.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)
from uvicorn.server import ServerState

from ..adapter import PingTracker, server_extension_factories
from ..exceptions import InvalidState
from ..protocol import CloseReceived, Failure, Pong, Request, Response, ServerConnection, State
from ..protocol.frames import CloseCode, Opcode
from .scope import accept_response, denial_response, websocket_scope

__all__ = ["HubbubProtocol"]

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[object],  # None, but uvicorn logs what a faulty app returns
]

CLOSE_TIMEOUT = 10.0
"""Seconds to wait for the client's close frame after ours (uvicorn's value)."""

# Frames sent while more messages wait for the app are written together, up to
# COALESCE_FRAMES frames, each under COALESCE_SIZE bytes (characters for text): a
# bound on what is held back, which the transport's flow control does not see.
COALESCE_FRAMES = 64
COALESCE_SIZE = 1024

# Plain ints: the core's small-frame fast path compares them (an IntEnum costs more).
OP_TEXT = int(Opcode.TEXT)
OP_BINARY = int(Opcode.BINARY)


class HubbubProtocol(asyncio.Protocol):
    """One WebSocket connection of a uvicorn server, driven by hubbub's core.

    uvicorn creates it with its ``config``, the shared ``server_state`` and the
    lifespan ``app_state``; applications never do. Use the class itself:
    ``uvicorn.run(app, ws=HubbubProtocol)``, ``uvicorn.Config(app,
    ws=HubbubProtocol)`` or ``uvicorn --ws hubbub.asgi.uvicorn:HubbubProtocol``.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = cast(ASGIApp, config.loaded_app)
        self.loop = _loop or asyncio.get_running_loop()
        self.logger = logging.getLogger("uvicorn.error")
        self.app_state = app_state
        # Typed by uvicorn with its own protocol classes; it only calls shutdown().
        self.connections = cast(set[Any], server_state.connections)
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        compression = "deflate" if config.ws_per_message_deflate else None
        self.core = ServerConnection(
            extensions=server_extension_factories(compression, None),
            max_size=config.ws_max_size,
            # The Server and Date headers come from uvicorn's default headers.
            server_header=None,
            # Messages the client sent before a protocol error reach the app
            # first; the close frame follows once it read them (Autobahn "strict").
            defer_failure=True,
        )
        self.transport: asyncio.Transport | None = None
        self.scope: Message = {}
        self.client: tuple[str, int] | None = None
        # The handshake: the 101 built by the core until the app answers.
        self._pending: Response | None = None
        self._accepted = False
        self._denial: tuple[int, list[tuple[bytes, bytes]], list[bytes]] | None = None
        self._closing = False  # the app sent websocket.close (or the server did)
        # What receive() returns: messages in order, then one websocket.disconnect
        # (kept in _final and returned again to every later call).
        self._inbox: deque[Message | Failure] = deque()
        self._final: Message | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._max_queue = max(1, config.ws_max_queue)
        self._write_waiter: asyncio.Future[None] | None = None
        self._flush_soon = False  # a _deferred_flush is scheduled
        self._held = 0  # frames send() queued in the core without writing them
        self._lost = False
        self._pings: PingTracker[None] = PingTracker()
        self._keepalive: asyncio.TimerHandle | None = None
        self._ping_deadline: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self)
        self.client = get_remote_addr(self.transport)
        if self.logger.level <= TRACE_LOG_LEVEL:
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection made", self._prefix())

    def data_received(self, data: bytes) -> None:
        core = self.core
        core.receive_data(data)
        inbox = self._inbox
        queued = len(inbox)
        for event in core.events_received():
            kind = type(event)
            if kind is str:
                if not self._closing:  # after our close: discarded (section 7.1.2)
                    inbox.append({"type": "websocket.receive", "text": event})
            elif kind is bytes:
                if not self._closing:
                    inbox.append({"type": "websocket.receive", "bytes": event})
            elif kind is Pong:
                self._pong(cast(Pong, event))
            elif kind is CloseReceived:
                self._close_received(cast(CloseReceived, event))
            elif kind is Failure:
                if self._inbox:
                    inbox.append(cast(Failure, event))  # after what the app has not read
                else:
                    self._fail(cast(Failure, event))
            elif kind is Request:
                self._handshake(cast(Request, event))
            # Ping: the core queued the pong already (section 5.5.2).
        self._flush()
        if len(inbox) > queued:
            self._wake()
            if len(inbox) >= self._max_queue and not self._read_paused and self.transport:
                # Backpressure: stop reading until the app catches up.
                self._read_paused = True
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._stop_keepalive()
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self.core.receive_eof()
        self.connections.discard(self)
        # Section 7.1.5: without a close frame the code is 1006 (abnormal closure).
        self._disconnect(self.core.close_code or CloseCode.ABNORMAL_CLOSURE, self.core.close_reason)
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # asyncio never resumes writing on a lost transport
        if self.logger.level <= TRACE_LOG_LEVEL:
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection lost", self._prefix())

    def pause_writing(self) -> None:
        if self._write_waiter is None or self._write_waiter.done():
            self._write_waiter = self.loop.create_future()

    def resume_writing(self) -> None:
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- what uvicorn calls ----------------------------------------------------------

    def shutdown(self) -> None:
        """The server is stopping: close with 1012 (Service Restart, RFC 6455 section 7.4.1).

        A connection still waiting for the app's handshake answer gets 503.
        """
        self._stop_keepalive()
        transport = self.transport
        if transport is None or self._lost:
            return
        if self._closing:
            transport.close()
            return
        if self._accepted and self.core.state is State.OPEN:
            self._disconnect(CloseCode.SERVICE_RESTART, "")
            self._start_close(CloseCode.SERVICE_RESTART, "")
        elif self._pending is not None:
            self._pending = None
            self._closing = True
            self.core.send_response(self.core.reject(503, "server shutting down"))
            self._disconnect(CloseCode.ABNORMAL_CLOSURE, "")
            self._flush()
        else:
            transport.close()

    # --- the ASGI application --------------------------------------------------------

    async def run_asgi(self) -> None:
        """Run the app for this connection; answer for it when it fails or forgets."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except asyncio.CancelledError:
            self._abort()
            raise
        except Exception:
            self.logger.exception("Exception in ASGI application\n")
            self._app_failed()
        else:
            if self._pending is not None:
                self.logger.error("ASGI callable returned without completing handshake.")
                self._app_failed()
            elif self._denial is not None:
                self.logger.error("ASGI callable returned without completing its response.")
                self._abort()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
            if self._accepted and self.core.state is State.OPEN:
                # The app is done with the connection: close it properly rather
                # than dropping TCP under the client (section 7.1.2).
                self._start_close(CloseCode.NORMAL_CLOSURE, "")

    async def receive(self) -> Message:
        """ASGI ``receive``: the next message, then ``websocket.disconnect`` for ever."""
        inbox = self._inbox
        if not inbox:
            if self._held:
                self._flush()  # answers send() held back: the app waits, so write them now
            while not inbox:
                if self._final is not None:
                    return self._final
                waiter = self._waiter = self.loop.create_future()
                try:
                    await waiter
                finally:
                    self._waiter = None
        message = inbox.popleft()
        if self._read_paused and len(inbox) < self._max_queue // 2 + 1 and not self._closing:
            self._read_paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        if type(message) is Failure:
            return self._fail(message)
        return message  # type: ignore[return-value]  # not a Failure (cast() is a call)

    async def send(self, message: Message) -> None:
        """ASGI ``send``.

        Raises:
            ClientDisconnected: (an ``OSError``) the connection is closed.
            RuntimeError: a message the ASGI spec does not allow at this point.
            ValueError: an invalid status, subprotocol, close code or reason.
        """
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            await asyncio.shield(waiter)  # the transport's buffer is full: wait for it
        if self._lost:
            raise ClientDisconnected()
        kind = message["type"]
        if kind == "websocket.send" and self._accepted and not self._closing:
            # The per-message path, first and inline (a call costs as much as
            # the rest of it).
            core = self.core
            data = message.get("bytes")
            try:
                if data is not None:
                    core.send_data_frame(OP_BINARY, data if type(data) is bytes else bytes(data))
                else:
                    data = message.get("text")
                    if data is None:
                        raise ValueError("websocket.send needs 'bytes' or 'text'")
                    core.send_data_frame(OP_TEXT, data.encode())
            except InvalidState:
                raise ClientDisconnected() from None  # the client closed first
            if self._inbox and self._held < COALESCE_FRAMES and len(data) < COALESCE_SIZE:
                # More messages wait for the app: it is likely to answer them in
                # this same step, so small frames go out together, in one system
                # call (receive() writes them before it waits; a callback
                # covers an app that stops reading).
                self._held += 1
                if not self._flush_soon:
                    self._flush_soon = True
                    self.loop.call_soon(self._deferred_flush)
            else:
                self._flush()
        elif self._pending is not None:
            self._answer_handshake(kind, message)
        elif self._denial is not None:
            if kind != "websocket.http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
                )
            self._denial_body(message)
        elif self._accepted and not self._closing:
            if kind == "websocket.close":
                if self.core.state is not State.OPEN:
                    raise ClientDisconnected()  # the client's close frame came first
                code = message.get("code") or CloseCode.NORMAL_CLOSURE
                reason = message.get("reason") or ""
                self._start_close(code, reason)
                self._disconnect(code, reason)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got '{kind}'."
                )
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}', after sending 'websocket.close'."
            )

    # --- the opening handshake -------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        transport = self.transport
        assert transport is not None  # uvicorn calls connection_made first
        response = self.core.accept(request)
        if response.status != 101:
            # The core found the request invalid (section 4.2.1): the app never
            # sees it, and the client gets the reason in the body.
            self.logger.info(
                '%s - "WebSocket %s" %d', self._prefix(" "), request.path, response.status
            )
            self._add_default_headers(response)
            self.core.send_response(response)
            return
        self._pending = response
        self.scope = websocket_scope(
            request,
            scheme="wss" if is_ssl(transport) else "ws",
            server=get_local_addr(transport),
            client=self.client,
            root_path=self.config.root_path,
            asgi_version=self.config.asgi_version,
            state=self.app_state,
        )
        self._inbox.append({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _answer_handshake(self, kind: str, message: Message) -> None:
        response = self._pending
        assert response is not None
        if kind == "websocket.accept":
            subprotocol = message.get("subprotocol")
            accept_response(
                response,
                self.scope["subprotocols"],
                subprotocol,
                [*self.default_headers, *message.get("headers", ())],
            )
            self._pending = None
            self._accepted = True
            self.core.subprotocol = subprotocol
            self._log_handshake("[accepted]")
            self.core.send_response(response)
            self._flush()
            self._start_keepalive()
        elif kind == "websocket.close":
            # ASGI: a close before accept denies the handshake with 403. The
            # reason becomes the body (some frameworks pass a non-str: shown as is).
            reason = message.get("reason") or "WebSocket connection denied"
            denial = self.core.reject(403, reason if isinstance(reason, str) else str(reason))
            self._add_default_headers(denial)
            self._pending = None
            self._closing = True
            self._log_handshake("403")
            self.core.send_response(denial)
            self._disconnect(CloseCode.ABNORMAL_CLOSURE, "")
            self._flush()
        elif kind == "websocket.http.response.start":
            status = message["status"]
            if not 200 <= status < 600:
                raise ValueError(f"Invalid HTTP status code '{status}' in response.")
            self._pending = None
            self._denial = (status, list(message.get("headers", ())), [])
            self._log_handshake(str(status))
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' "
                f"or 'websocket.http.response.start' but got '{kind}'."
            )

    def _denial_body(self, message: Message) -> None:
        assert self._denial is not None
        status, headers, body = self._denial
        body.append(bytes(message.get("body", b"")))
        if message.get("more_body", False):
            return
        response = denial_response(
            self.core, status, [*self.default_headers, *headers], b"".join(body)
        )
        self._denial = None
        self._closing = True
        self.core.send_response(response)
        self._disconnect(CloseCode.ABNORMAL_CLOSURE, "")
        self._flush()

    def _add_default_headers(self, response: Response) -> None:
        for name, value in self.default_headers:
            response.headers[name.decode("latin-1")] = value.decode("latin-1")

    # --- closing ---------------------------------------------------------------------

    def _close_received(self, event: CloseReceived) -> None:
        if not self._closing:
            # The client started the closing handshake; the core echoed it.
            self._disconnect(event.code, event.reason)
        self._stop_keepalive()

    def _start_close(self, code: int, reason: str) -> None:
        """Send our close frame and wait ``CLOSE_TIMEOUT`` for the client's (section 7.1.2)."""
        self.core.send_close(code, reason)
        self._closing = True
        self._stop_keepalive()
        self._flush()
        transport = self.transport
        if transport is not None and not self._lost:
            if self._read_paused:
                self._read_paused = False
                transport.resume_reading()  # the client's close frame must get in
            self._close_timer = self.loop.call_later(CLOSE_TIMEOUT, self._abort)

    def _fail(self, failure: Failure) -> Message:
        """The client broke the protocol: send the close frame now (section 7.1.7)."""
        exc = failure.exc
        self.core.fail(exc.code, str(exc))
        self._closing = True
        self._flush()
        return self._disconnect(exc.code, str(exc))

    def _app_failed(self) -> None:
        """The app raised or returned without answering the handshake."""
        if self._pending is not None:
            self._pending = None
            response = self.core.reject(500, "Internal Server Error")
            self._add_default_headers(response)
            self.core.send_response(response)
            self._flush()
        elif self._accepted and self.core.state is State.OPEN:
            self._start_close(CloseCode.INTERNAL_ERROR, "")
        else:
            self._abort()

    def _abort(self) -> None:
        self._close_timer = None
        if self.transport is not None:
            self.transport.close()

    def _disconnect(self, code: int, reason: str) -> Message:
        """Queue the one ``websocket.disconnect`` the app gets (then again on every read)."""
        if self._final is None:
            self._final = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._inbox.append(self._final)
            self._wake()
        return self._final

    # --- keepalive -------------------------------------------------------------------

    def _start_keepalive(self) -> None:
        interval = self.config.ws_ping_interval
        if interval is not None and interval > 0:
            self._keepalive = self.loop.call_later(interval, self._keepalive_ping)

    def _stop_keepalive(self) -> None:
        for handle in (self._keepalive, self._ping_deadline):
            if handle is not None:
                handle.cancel()
        self._keepalive = self._ping_deadline = None
        self._pings.clear()

    def _keepalive_ping(self) -> None:
        self._keepalive = None
        if self.core.state is not State.OPEN or self._closing:
            return
        data = self._pings.new_payload()
        self.core.send_ping(data)
        self._pings.add(data, None, time.perf_counter())
        self._flush()
        timeout = self.config.ws_ping_timeout
        if timeout is not None and self._ping_deadline is None:
            self._ping_deadline = self.loop.call_later(timeout, self._ping_timed_out)
        self._start_keepalive()

    def _pong(self, event: Pong) -> None:
        if self._pings.pong(event.data, time.perf_counter()) and self._ping_deadline is not None:
            self._ping_deadline.cancel()
            self._ping_deadline = None

    def _ping_timed_out(self) -> None:
        self._ping_deadline = None
        if self.logger.level <= TRACE_LOG_LEVEL:
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket keepalive ping timeout", self._prefix())
        self.core.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._closing = True
        self._disconnect(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._flush()

    # --- plumbing --------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what the core queued; close TCP when the core says so."""
        self._held = 0
        transport = self.transport
        if transport is None or self._lost:
            return
        core = self.core
        core.write_to(transport)
        if core.eof_sent:
            # The server closes TCP first once close frames were exchanged, or
            # at once after a rejection or a failure (sections 7.1.1, 7.1.7).
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
            transport.close()

    def _deferred_flush(self) -> None:
        self._flush_soon = False
        self._flush()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _prefix(self, sep: str = " - ") -> str:
        return f"{self.client[0]}:{self.client[1]}{sep}" if self.client else ""

    def _log_handshake(self, outcome: str) -> None:
        scope = cast(Any, self.scope)
        self.logger.info(
            '%s - "WebSocket %s" %s',
            get_client_addr(scope),
            get_path_with_query_string(scope),
            outcome,
        )
