"""The Python asyncio client of the hub (``hubbub.json.v1`` or ``hubbub.msgpack.v1``).

Usage::

    from hubbub.hub.client import HubClient

    async with HubClient("ws://127.0.0.1:8765/", token=get_token) as hub:
        await hub.subscribe("chat:lobby")
        await hub.publish("chat:lobby", {"text": "hi"})
        await hub.send(["bob"], {"text": "psst"})
        async for push in hub:            # pub, message, join, leave, tick, recovery ...
            print(push.kind, push.channel, push.data)

Theory of operation
-------------------

One task (the *runner*) owns the connection: it opens a WebSocket, sends
``connect``, re-subscribes to every channel the application joined, then
reports ``live``. When the connection drops it waits a delay with full jitter
(:class:`hubbub.backoff.Backoff`: uniform in ``[0, min(max, initial *
factor**n)]``, so clients cut off together by a hub restart come back spread
out) and starts again. After 4008 or 1008, a ``disconnect`` push saying
``reconnect: false``, a refused static token (or ``max_token_refusals`` tokens
of a token function refused in a row), or a server that is not a hub (it did
not select the subprotocol the client offered, or its replies do not follow it), it stops in
``closed``. Every failure is kept in :attr:`HubClient.last_error`, passed to
``on_state`` with the next state and logged at WARNING; the backoff spaces the
attempts, and so the log lines.

Requests in flight and their replies are matched by a
:class:`~hubbub.hub.client.requests.Requests` (one per client); a reply or push
that does not follow the protocol is logged and dropped, never raised into the
reader task.

Recovery (protocol section 2): per channel and for the inbox, the client keeps
the epoch and offset of the last entry it queued for the application, and
re-subscribes with them as ``since``; the bookkeeping, and what the application
sees when recovery is impossible, is in :mod:`hubbub.hub.client.recovery`.

Acks (section 2.2): an inbox entry counts as processed when the application
asks for the next push; it is then acknowledged in the background (batched),
unless ``auto_ack=False`` (then call :meth:`HubClient.ack`). :meth:`HubClient.close`
sends the acknowledgements still pending before it disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from ...asyncio import ClientConnection, connect
from ...backoff import Backoff, is_transient
from ...exceptions import ConnectionClosed, NegotiationError
from .recovery import StreamRecovery, _Stream
from .requests import MALFORMED, Requests
from .types import (
    INBOX,
    ConnectionLost,
    HubError,
    InvalidReply,
    Push,
    State,
    StateListener,
    TokenSource,
)
from .wire import Encoding, Wire

__all__ = [
    "INBOX",
    "ConnectionLost",
    "Encoding",
    "HubClient",
    "HubError",
    "InvalidReply",
    "Push",
    "State",
    "StateListener",
]

logger = logging.getLogger(__name__)

# Close codes after which reconnecting would not help (protocol section 9).
_FINAL_CLOSE_CODES = frozenset({1008, 4008})
# connect errors that a static token or name will get again: 200, 201, 102.
_IDENTITY_ERRORS = frozenset({102, 200, 201})
# How long close() waits for the acknowledgements it flushes (section 2.2).
_ACK_FLUSH_TIMEOUT = 5.0


_CLOSED = Push("closed")


class HubClient:
    """A hub client that stays connected and recovers what it missed.

    Args:
        uri: the hub's WebSocket URL (``ws://127.0.0.1:8765/``).
        token: a JWT, or a function (sync or async) returning a fresh one; it is
            called on every (re)connection and when the hub pushes ``expiring``.
        name: development mode only (insecure): the user id, without a token.
        tick: ask for the hub's clock every second (``tick`` pushes).
        auto_ack: acknowledge inbox entries once the application moved past them.
        backoff: reconnection delays; ``Backoff(0.5, 2, 30)`` by default.
        on_state: called as ``on_state(state, error)`` with each new
            :class:`State` and :attr:`last_error` (why the client is not live;
            None once live or after :meth:`close`).
        encoding: ``"json"`` (``hubbub.json.v1``, the default) or ``"msgpack"``
            (``hubbub.msgpack.v1``: smaller binary frames; needs ``msgpack``, the
            ``hub`` extra, else :class:`~hubbub.exceptions.MissingExtra` is raised here).
        max_token_refusals: with a token *function*: how many of its tokens
            the hub may refuse in a row (200, 201) before the client gives up
            and closes with the refusal.
        ws_options: passed to :func:`hubbub.asyncio.connect`.
    """

    def __init__(
        self,
        uri: str,
        *,
        token: TokenSource = None,
        name: str | None = None,
        tick: bool = False,
        auto_ack: bool = True,
        backoff: Backoff | None = None,
        on_state: StateListener | None = None,
        max_token_refusals: int = 3,
        encoding: Encoding = "json",
        **ws_options: Any,
    ) -> None:
        if token is None and name is None:
            raise ValueError("give a token (or a token function), or a name in development mode")
        self.wire = Wire(encoding)
        self.uri = uri
        self.token = token
        self.name = name
        self.tick = tick
        self.auto_ack = auto_ack
        self.backoff = backoff or Backoff(initial_delay=0.5, factor=2.0, max_delay=30.0)
        self.on_state = on_state
        self.max_token_refusals = max(1, max_token_refusals)
        self.ws_options = ws_options
        self.state = State.IDLE
        self.user: str | None = None
        self.conn_id: str | None = None
        self.connect_result: dict[str, Any] | None = None
        self.close_error: BaseException | None = None
        self.last_error: BaseException | None = None
        """Why the last attempt failed or the connection was lost; None while live."""
        self.reconnections = 0
        """Times the client came back live after losing a live connection."""
        self.attempt = 0
        """Failed attempts in a row since the client was last live."""
        self._was_live = False
        self._token_refusals = 0
        self._queue: asyncio.Queue[Push] = asyncio.Queue()
        self._streams = StreamRecovery(self._queue, self._forget_inbox_acks)
        self._requests = Requests(self.wire)
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._no_reconnect = False
        self._processed: int | None = None  # inbox offset the app moved past
        self._ack_wanted = 0
        self._ack_sent = 0
        self._ack_task: asyncio.Future[Any] | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    # --- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> HubClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> dict[str, Any]:
        """Connect; return the ``connect`` result once live.

        Raises:
            HubError / HubbubError / OSError: a failure retrying cannot fix.
        """
        if self._runner is None:
            self._set_state(State.CONNECTING)
            self._runner = asyncio.create_task(self._run(), name="hubbub-hub-client")
        return await self.wait_live()

    async def close(self) -> None:
        """Send pending acks, then disconnect for good.

        Acknowledgements already asked for (by :meth:`ack`, or by ``auto_ack``
        for entries the application moved past) are sent and confirmed first,
        for at most 5 s, so that the hub does not deliver those entries again.
        Pending requests then fail with :class:`ConnectionLost`.
        """
        await self._flush_acks()
        ws = self._ws
        self.last_error = None
        self._finish(None)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if ws is not None:
            await ws.close()
        for task in list(self._tasks):
            task.cancel()

    async def wait_live(self) -> dict[str, Any]:
        """Wait until the client is live (again); return the ``connect`` result."""
        while True:
            if self.state is State.LIVE and self.connect_result is not None:
                return self.connect_result
            if self.state is State.CLOSED:
                raise self.close_error or ConnectionLost("the client is closed")
            await self._changed.wait()

    @property
    def closed(self) -> bool:
        """Whether the client stopped for good (:meth:`close`, or a final failure)."""
        return self.state is State.CLOSED

    async def wait_state(self, state: State) -> None:
        """Wait until the client is in ``state``."""
        while self.state is not state:
            await self._changed.wait()

    def _set_state(self, state: State) -> None:
        if state is self.state and state is not State.RECONNECTING:
            return
        self.state = state
        self._changed.set()
        self._changed = asyncio.Event()
        if self.on_state is not None:
            try:
                self.on_state(state, self.last_error)
            except Exception:
                logger.exception("on_state listener raised")

    def _finish(self, error: BaseException | None) -> None:
        if self.state is State.CLOSED:
            return
        self.close_error = error
        if error is not None:
            self.last_error = error
            logger.warning("hub client for %s closed: %s", self.uri, _describe(error))
        self._set_state(State.CLOSED)
        self._queue.put_nowait(_CLOSED)  # wakes up a recv() waiting for a push
        self._requests.fail_all()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self) -> None:
        while self.state is not State.CLOSED:
            try:
                live = await self._session()
            except Exception as exc:
                if isinstance(exc, (HubError, InvalidReply)) or not is_transient(exc):
                    self._finish(exc)
                    return
                live = False
                self.last_error = exc
            if self.closed:
                return
            if self._no_reconnect:
                self._finish(ConnectionLost("the hub asked not to reconnect"))
                return
            self.attempt = 0 if live else self.attempt + 1
            # Full jitter even after a live connection: a hub restart drops every
            # client at once, and they must not all come back at once.
            delay = self.backoff.delay(self.attempt)
            if not live:
                # WARNING each time: the backoff spaces the attempts, and the lines.
                logger.warning(
                    "hub %s: attempt %d failed (%s); retrying in %.2f s",
                    self.uri,
                    self.attempt,
                    _describe(self.last_error),
                    delay,
                )
            self._set_state(State.RECONNECTING)
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """One connection, from opening to closing; says whether it was live."""
        subprotocol = self.wire.subprotocol
        ws = await connect(self.uri, subprotocols=[subprotocol], **self.ws_options)
        if ws.subprotocol != subprotocol:
            # Protocol section 1: a hub always selects it. Anything else is
            # another server, which retrying will not turn into a hub.
            await ws.close()
            raise NegotiationError(
                f"{self.uri} did not select the {subprotocol} subprotocol: not a hubbub hub"
            )
        self._ws = ws
        self._no_reconnect = False
        reader = asyncio.create_task(self._read(ws))
        live = False
        try:
            await self._handshake(ws)
            live = True
            if self._was_live:
                self.reconnections += 1
            self._was_live = True
            self.last_error = None
            self._token_refusals = 0
            self._set_state(State.LIVE)
            await reader
            self.last_error = ConnectionLost(_closed_by(ws))
        except HubError as exc:
            self.last_error = exc
            if exc.code in _IDENTITY_ERRORS:
                self._token_refusals += 1
                if not callable(self.token) or self._token_refusals >= self.max_token_refusals:
                    raise  # the same token or name, or a broken token function
        except (ConnectionLost, ConnectionClosed) as exc:
            self.last_error = exc
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._ws = None
            self._requests.fail_all()
            for sub in self._streams.channels.values():
                sub.active = False
            if self.state is not State.CLOSED:
                await ws.close()
        if ws.close_code in _FINAL_CLOSE_CODES:
            self._finish(ConnectionLost(f"closed by the hub: {ws.close_code} {ws.close_reason}"))
        return live

    async def _handshake(self, ws: ClientConnection) -> None:
        params: dict[str, Any] = {"tick": self.tick}
        token = await self._fresh_token()
        if token is not None:
            params["token"] = token
        else:
            params["name"] = self.name
        if self._streams.inbox.epoch is not None:
            # Protocol section 2.2: the hub compares the epoch we knew; a broker
            # that lost the inbox also lost the ack the hub would compare.
            params["inbox_epoch"] = self._streams.inbox.epoch
        result = await self._requests.send(ws, "connect", params, self._streams.connected)
        self.user, self.conn_id = result["user"], result["conn_id"]
        for channel, sub in list(self._streams.channels.items()):
            try:
                await self._join(ws, channel, sub)
            except HubError as exc:  # no longer allowed, for instance
                self._streams.channels.pop(channel, None)
                self._queue.put_nowait(
                    Push("unsubscribed", channel, raw={"code": exc.code, "message": str(exc)})
                )
        self.connect_result = result
        acked = result["inbox"]["acked"]
        if self._ack_wanted > acked and self._streams.inbox.epoch == result["inbox"]["epoch"]:
            self._ack_sent = acked  # acks lost with the connection: send again
            self._schedule_ack()

    async def _fresh_token(self) -> str | None:
        token = self.token
        if callable(token):
            value = token()
            return await value if inspect.isawaitable(value) else value
        return token

    async def _join(self, ws: ClientConnection, channel: str, sub: _Stream) -> Any:
        params: dict[str, Any] = {"channel": channel}
        if sub.token is not None:
            params["token"] = sub.token
        if sub.epoch is not None:
            params["since"] = {"offset": sub.offset, "epoch": sub.epoch}

        def on_reply(result: Any) -> None:
            self._streams.joined(channel, sub, result)

        return await self._requests.send(ws, "subscribe", params, on_reply)

    # --- wire ------------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                try:
                    message = self.wire.decode(text)
                except ValueError:
                    logger.warning("hub sent a message that is not %s", self.wire.encoding)
                    continue
                if not isinstance(message, dict):
                    logger.warning("hub sent a message that is not an object")
                    continue
                try:
                    self._receive(message)
                except MALFORMED as exc:
                    # A malformed push must not end the reader: drop it, say so.
                    logger.warning("malformed message from the hub (%r): %.200s", exc, text)

    def _receive(self, message: dict[str, Any]) -> None:
        kind = message.get("push")
        if kind is None:
            self._requests.reply(message)
            return
        if kind in {"pub", "message"}:
            channel = str(message.get("channel"))
            self._streams.entry(
                self._streams.inbox if kind == "message" else self._streams.channels.get(channel),
                message,
            )
            return
        if kind == "reset":
            self._streams.reset(message)
            return
        if kind == "expiring" and callable(self.token):
            self._spawn(self._refresh())
        elif kind == "disconnect":
            self._no_reconnect = not message.get("reconnect", True)
        self._queue.put_nowait(Push.from_wire(message))

    async def call(self, method: str, **params: Any) -> Any:
        """Send a request once live (waiting through a reconnection); return its result.

        Raises:
            HubError: the hub answered with an error.
            ConnectionLost: the connection dropped before the reply (the request
                may have been executed: retry only what is safe to repeat).
        """
        return await self._requests.send(await self._live_ws(), method, params)

    async def _live_ws(self) -> ClientConnection:
        while True:
            await self.wait_live()
            if self._ws is not None:
                return self._ws
            await self._changed.wait()  # dropped; the runner is about to reconnect

    # --- commands (docs/protocol.md section 3) ----------------------------------

    async def subscribe(
        self, channel: str, *, token: str | None = None, since: dict[str, Any] | None = None
    ) -> Any:
        """Join ``channel`` and stay in it across reconnections.

        ``since`` (``{"offset", "epoch"}``, for instance from :meth:`history`)
        recovers from a known position.
        """
        if channel in self._streams.channels:
            raise HubError(106, "already subscribed")
        sub = _Stream(token=token)
        if since is not None:
            sub.epoch, sub.offset = since["epoch"], since["offset"]
        self._streams.channels[channel] = sub
        try:
            while True:
                ws = await self._live_ws()
                if sub.active:  # joined by a reconnection meanwhile
                    return {"channel": channel, "epoch": sub.epoch, "offset": sub.offset}
                try:
                    return await self._join(ws, channel, sub)
                except ConnectionLost:
                    continue  # the next connection joins it
        except BaseException:
            self._streams.channels.pop(channel, None)
            raise

    async def unsubscribe(self, channel: str) -> Any:
        """Leave ``channel``."""
        self._streams.channels.pop(channel, None)
        return await self.call("unsubscribe", channel=channel)

    async def publish(self, channel: str, data: Any) -> Any:
        """Publish to a channel; returns ``{"offset", "epoch"}`` of the new entry."""
        return await self.call("publish", channel=channel, data=data)

    async def send(self, to: list[str], data: Any) -> Any:
        """A direct event to users: ``{"results": {user: {"status", "offset", "epoch"}}}``."""
        return await self.call("send", to=list(to), data=data)

    async def presence(self, channel: str) -> Any:
        """Who is in ``channel``: ``{"clients": {...}, "users": {user: connections}}``."""
        return await self.call("presence", channel=channel)

    async def presence_stats(self, channel: str) -> Any:
        """``{"clients": n, "users": n}`` for ``channel``."""
        return await self.call("presence_stats", channel=channel)

    async def online(self, users: list[str]) -> dict[str, bool]:
        """Which of ``users`` are online anywhere in the hub."""
        result = await self.call("online", users=list(users))
        return dict(result["online"])

    async def history(
        self, stream: str, *, since: dict[str, Any] | None = None, limit: int | None = None
    ) -> Any:
        """Read a channel or :data:`INBOX`: newest ``limit`` entries, or those after ``since``."""
        params = {"stream": stream, "since": since, "limit": limit}
        return await self.call("history", **{k: v for k, v in params.items() if v is not None})

    async def ping(self) -> int:
        """The hub's clock (ms)."""
        return int((await self.call("ping"))["time"])

    def ack(self, offset: int) -> None:
        """Acknowledge the inbox up to ``offset`` (sent in the background, batched).

        :meth:`close` sends what is still pending before disconnecting.
        """
        if offset > self._ack_wanted:
            self._ack_wanted = offset
            self._schedule_ack()

    def _forget_inbox_acks(self) -> None:
        # The inbox has a new epoch (told by self._streams): the offsets acked or
        # to ack are those of the lost one.
        self._ack_wanted = self._ack_sent = 0
        self._processed = None

    async def _flush_acks(self) -> None:
        """Send the acks still pending, if live; give up after a few seconds."""
        if self.state is not State.LIVE or self._ack_wanted <= self._ack_sent:
            return
        self._schedule_ack()
        task = self._ack_task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), _ACK_FLUSH_TIMEOUT)
            except (TimeoutError, ConnectionLost, HubError) as exc:
                logger.warning("acks not confirmed before closing: %r", exc)

    def _schedule_ack(self) -> None:
        if self._ack_task is None or self._ack_task.done():
            self._ack_task = self._spawn(self._send_acks())

    async def _send_acks(self) -> None:
        while self._ack_wanted > self._ack_sent and self.state is State.LIVE:
            offset, ws, epoch = self._ack_wanted, self._ws, self._streams.inbox.epoch
            if ws is None or epoch is None:
                return
            try:
                await self._requests.send(
                    ws, "ack", {"stream": INBOX, "offset": offset, "epoch": epoch}
                )
            except (ConnectionLost, HubError) as exc:
                logger.info("ack not sent: %s", exc)  # sent again after reconnecting
                return
            self._ack_sent = max(self._ack_sent, offset)

    async def _refresh(self) -> None:
        try:
            token = await self._fresh_token()
            await self.call("refresh", token=token)
        except (HubError, ConnectionLost) as exc:
            logger.warning("token refresh failed: %s", exc)

    # --- pushes ------------------------------------------------------------------

    async def recv(self) -> Push:
        """The next push (entries in stream order, each once)."""
        if self._processed is not None and self.auto_ack:
            self.ack(self._processed)
        self._processed = None
        push = await self._queue.get()
        if push is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # for the next caller too
            raise self.close_error or ConnectionLost("the client is closed")
        # An entry of an epoch lost meanwhile is not acknowledged in the new one.
        if (
            push.kind == "message"
            and push.offset is not None
            and push.epoch == self._streams.inbox.epoch
        ):
            self._processed = push.offset
        return push

    async def __aiter__(self) -> AsyncIterator[Push]:
        while True:
            try:
                yield await self.recv()
            except ConnectionLost:
                return


def _describe(error: BaseException | None) -> str:
    """An error for a log line, with its type (an ``OSError``'s text alone can be vague)."""
    if error is None:
        return "no error"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _closed_by(ws: ClientConnection) -> str:
    code = ws.close_code
    reason = f" {ws.close_reason}" if ws.close_reason else ""
    return f"connection closed ({code}{reason})" if code is not None else "connection lost"
