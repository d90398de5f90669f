"""A hub node: sessions, subscriptions and routing, without I/O.

Theory of operation
-------------------

An adapter (the asyncio server) owns the sockets and drives a :class:`Node`:

1. for each accepted WebSocket it calls :meth:`Node.open_session` with two
   callables, ``send(text)`` (queue one message; must not block or raise) and
   ``close(code, reason)`` (close the WebSocket), and optionally a third,
   ``push(text)``, for channel publications (the same, but it may hold the
   write until the end of the loop iteration: several publications, one write);
2. for each message received it awaits :meth:`Node.handle`, one at a time per
   session, so a session's requests are answered in order;
3. when the WebSocket is gone it awaits :meth:`Node.close_session`;
4. about once a second it awaits :meth:`Node.periodic` (clock ticks, token
   expiry, presence heartbeats, connect timeouts).

The node holds only local bookkeeping: which of *its* sessions belong to which
user and which channel. Everything shared with other nodes goes through the
:class:`~hubbub.hub.core.broker.Broker`: a publish (or a direct ``send``, which is a
publish to each recipient's inbox stream) is appended by the broker, which hands
it back to every node subscribed to that stream; the node's listener then
encodes the push *once* and gives it to exactly the local sessions of that
channel or user. Nothing is broadcast to be filtered by clients, so a session
can only ever receive what was addressed to its user or to a channel it joined.

Recovery without gaps or reordering: when a session subscribes (or connects,
for its inbox) the node first registers it and subscribes to the broker
stream, and only then reads the stream's history. Live entries arriving in
between are held in a per-stream *pending* buffer; after the reply with the
history is sent, the buffer is flushed, skipping offsets the reply already
carried. So the client sees each offset once, in increasing order.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from . import protocol as p
from .broker import ONLINE, Broker, BrokerUnavailable, ClientInfo, Notice, Reset
from .config import HubConfig
from .identity import AuthError, Identity, TokenVerifier
from .operations import NodeOperations
from .permissions import Permissions
from .session import (
    INBOX_PREFIX,
    RECONNECT,
    REPLIED,
    DisconnectCode,
    Fail,
    Session,
    Subscription,
    encode_entries,
    entry_json,
    inbox_stream,
    ms,
    recovery_failure,
)
from .streams import Entry
from .traffic import NodeMetrics

__all__ = ["DisconnectCode", "Node", "Session", "inbox_stream"]

logger = logging.getLogger(__name__)


class Node:
    """One hub node.

    The commands that keep no state here (publish, send, presence, online,
    history, ack, ping) and the server API are those of :attr:`operations`, a
    :class:`~hubbub.hub.core.operations.NodeOperations` the node owns and wires
    to its broker, config, clock, metrics and permissions.

    Args:
        broker: shared with the other nodes of the hub.
        auth: verifies tokens (a :class:`hubbub.hub.auth.Authenticator`).
        config: rules and limits.
        clock: current time in seconds (``time.time`` in a server; the core
            reads no clock of its own).
        metrics: the node's counters (a :class:`hubbub.hub.metrics.HubMetrics`,
            which the server exports at ``/metrics``).
        node_id: unique name of this node; random by default.
    """

    def __init__(
        self,
        broker: Broker,
        auth: TokenVerifier,
        config: HubConfig | None = None,
        *,
        clock: Callable[[], float],
        metrics: NodeMetrics,
        node_id: str | None = None,
    ) -> None:
        self.broker = broker
        self.auth = auth
        self.config = config or HubConfig()
        self.clock = clock
        self.metrics = metrics
        self.node_id = node_id or secrets.token_hex(4)
        self.permissions = Permissions(self.config, auth)
        self.operations = NodeOperations(broker, self.config, clock, metrics, self.permissions)
        self.sessions: dict[str, Session] = {}
        # Channel -> its local sessions and their subscriptions: the fan-out
        # loop reads both from one dict, no lookup per subscriber.
        self._channels: dict[str, dict[Session, Subscription]] = {}
        self._users: dict[str, set[Session]] = {}
        self._ids = itertools.count(1)
        self._last_touch = clock()
        # Sessions periodic() must look at: not connected yet (connect
        # timeout), tokens that expire, clock ticks. Every session starts here;
        # periodic() drops the connected ones that need none of it, so an
        # idle hub with many connections does not walk them all every second.
        self._watched: set[Session] = set()
        self._listener = self._on_broker
        ops = self.operations
        self._handlers: dict[type, Callable[[Session, Any], Awaitable[Any]]] = {
            p.Connect: self._connect,
            p.Refresh: self._refresh,
            p.Subscribe: self._subscribe,
            p.Unsubscribe: self._unsubscribe,
            p.Publish: ops.handle_publish,
            p.Send: ops.handle_send,
            p.Presence: ops.handle_presence,
            p.PresenceStats: ops.handle_presence_stats,
            p.Online: ops.handle_online,
            p.History: ops.handle_history,
            p.Ack: ops.handle_ack,
            p.Ping: ops.handle_ping,
        }
        self._method_names = {cls: cls.__name__.lower() for cls in self._handlers}
        # The commands with a synchronous form, used when the broker never
        # suspends (handle_now): the direct and channel messages themselves.
        self._now_handlers: dict[type, Callable[[Session, Any], Any]] = (
            {}
            if broker.suspends
            else {p.Send: ops.handle_send_now, p.Publish: ops.handle_publish_now}
        )

    # --- sessions -------------------------------------------------------------

    def open_session(
        self,
        send: Callable[[str], None],
        close: Callable[[int, str], None],
        conn_id: str | None = None,
        identity: Identity | None = None,
        *,
        push: Callable[[str], None] | None = None,
    ) -> Session:
        """Register a new connection; it must ``connect`` within ``connect_timeout``.

        ``identity``: who the connection is, when the application authenticated
        its handshake itself (cookies, a session; see ``hubbub.hub.server.asgi``). Its
        ``connect`` then needs no token and gets this identity whatever it sends.
        ``push``: sends channel publications (``send`` by default); see
        :attr:`Session.push`.
        """
        if conn_id is None:
            conn_id = f"{self.node_id}-{next(self._ids)}"
        session = Session(
            conn_id,
            send,
            close,
            self.config,
            clock=self.clock,
            traffic=self.metrics.traffic,
            push=push,
        )
        session.handshake_identity = identity
        self.sessions[conn_id] = session
        self._watched.add(session)
        self.metrics.connections.inc()
        self.metrics.connections_opened.inc()
        return session

    async def close_session(self, session: Session) -> None:
        """Forget a connection that is gone: subscriptions, presence. Idempotent."""
        if session.released:
            return
        session.released = session.closed = True
        self.sessions.pop(session.conn_id, None)
        self._watched.discard(session)
        self.metrics.connections.dec()
        # Each step forgets the local state before it talks to the broker, so a
        # broker failure cannot leave a dead session in the routing tables;
        # presence entries it could not remove expire within presence_ttl.
        for channel in list(session.channels):
            try:
                await self._leave(session, channel)
            except BrokerUnavailable:
                logger.warning("broker unavailable while closing %s", session.conn_id)
        if session.user is not None:
            try:
                await self._forget_user(session, session.user)
            except BrokerUnavailable:
                logger.warning("broker unavailable while closing %s", session.conn_id)

    async def _forget_user(self, session: Session, user: str) -> None:
        sessions = self._users.get(user)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._users[user]
                await self.broker.unsubscribe(inbox_stream(user), self._listener)
                if user in self._users:  # reconnected meanwhile
                    await self.broker.subscribe(inbox_stream(user), self._listener)
        await self.broker.presence_remove(ONLINE, session.conn_id)

    async def disconnect(self, session: Session, code: DisconnectCode, reason: str) -> None:
        """Tell the client why (``disconnect`` push), close it, and forget it."""
        if not session.closed:
            reconnect = RECONNECT[code]
            session.send(
                p.encode_push(
                    "disconnect", {"code": int(code), "reason": reason, "reconnect": reconnect}
                )
            )
            self.metrics.disconnected(int(code))
            session.abort(int(code), reason)
        await self.close_session(session)

    async def shutdown(self) -> None:
        """Disconnect every session with :attr:`DisconnectCode.SHUTDOWN`."""
        for session in list(self.sessions.values()):
            await self.disconnect(session, DisconnectCode.SHUTDOWN, "server shutting down")

    # --- requests -------------------------------------------------------------

    async def handle(self, session: Session, raw: str | bytes) -> None:
        """Execute one client message and send the reply. Never raises.

        :meth:`handle_now`, and then what it leaves to wait for, if anything.
        """
        rest = self.handle_now(session, raw)
        if rest is not None:
            await rest

    def handle_now(self, session: Session, raw: str | bytes) -> Coroutine[Any, Any, None] | None:
        """:meth:`handle` as far as it goes without a coroutine; what is left, if anything.

        On a broker that never suspends (``Broker.suspends`` False), a request
        that is admitted (size, syntax, rate limits) and handled by a command
        that has a synchronous form (``send``, ``publish``) and succeeds is
        answered here, with no coroutine at all: the usual direct message costs
        no ``await`` level. Everything else (another command, a refusal, a
        failure, any request on a broker that suspends) returns the coroutine
        that finishes it, which the caller must await (or drive by hand, as
        ``hubbub.hub.server.inline`` does). Never raises.
        """
        if session.closed:
            return None
        traffic = self.metrics.traffic
        traffic.messages_in += 1
        # Limits are in bytes as they travel (UTF-8), not characters (issue 12).
        size = len(raw) if isinstance(raw, bytes) or raw.isascii() else p.utf8_length(raw)
        traffic.chars_in += size
        if size > self.config.max_request_bytes:
            return self._reject(session, None, p.ErrorCode.MESSAGE_TOO_LARGE, "message too large")
        cmd = p.parse_request(raw)
        if isinstance(cmd, p.Rejected):
            return self._reject(session, cmd.id, cmd.code, cmd.message)
        if not session.commands.take():
            return self._reject(session, cmd.id, p.ErrorCode.RATE_LIMITED, "too many requests")
        if not session.bytes.take(size):
            return self._reject(session, cmd.id, p.ErrorCode.BYTES_RATE_LIMITED, "too many bytes")
        kind = type(cmd)
        traffic.commands[self._method_names[kind]] += 1
        now = self._now_handlers.get(kind)
        if now is None:
            return self._run(session, cmd)
        try:
            result = now(session, cmd)
        except Exception as exc:
            return self._failed(session, cmd, exc)
        session.strikes = 0
        session.send(p.encode({"id": cmd.id, "result": result}))  # encode_result's text
        return None

    async def _run(self, session: Session, cmd: p.Command) -> None:
        """Run an admitted request's command (its coroutine form) and answer it."""
        try:
            result = await self._handlers[type(cmd)](session, cmd)
        except Exception as exc:
            await self._failed(session, cmd, exc)
            return
        session.strikes = 0
        if result is not REPLIED:
            session.send(p.encode_result(cmd.id, result))

    async def _failed(self, session: Session, cmd: p.Command, exc: Exception) -> None:
        """Answer a request whose command raised ``exc`` with the matching error."""
        if isinstance(exc, (Fail, AuthError)):
            await self._reject(session, cmd.id, exc.code, str(exc))
        elif isinstance(exc, BrokerUnavailable):
            # Our failure, not the client's: retrying is right, and no strike.
            await self._reject(
                session, cmd.id, p.ErrorCode.BROKER_UNAVAILABLE, "broker unavailable", strike=False
            )
        else:
            logger.error("internal error on %r", cmd, exc_info=exc)
            await self._reject(
                session, cmd.id, p.ErrorCode.INTERNAL, "internal error", strike=False
            )

    async def reject(self, session: Session, refused: p.Rejected) -> None:
        """Answer a message an adapter refused before :meth:`handle` (a strike, as there)."""
        self.metrics.traffic.messages_in += 1
        await self._reject(session, refused.id, refused.code, refused.message)

    async def _reject(
        self,
        session: Session,
        req_id: int | None,
        code: p.ErrorCode,
        message: str,
        *,
        strike: bool = True,
    ) -> None:
        """Answer with an error; ``strike``: the client's fault (see ``max_strikes``)."""
        self.metrics.errors.labels(code=str(int(code))).inc()
        session.send(p.encode_error(req_id, code, message))
        if not strike:
            return
        session.strikes += 1
        if session.strikes >= self.config.max_strikes:
            await self.disconnect(session, DisconnectCode.ABUSE, "too many rejected requests")

    # --- server API (Python, same process): the operations' -------------------

    async def publish(self, channel: str, data: Any, *, sender: str | None = None) -> Entry:
        """Publish to a channel as the server (:meth:`NodeOperations.publish`)."""
        return await self.operations.publish(channel, data, sender=sender)

    async def send(
        self, users: Iterable[str], data: Any, *, sender: str | None = None
    ) -> dict[str, Any]:
        """Store ``data`` in each user's inbox (:meth:`NodeOperations.send`)."""
        return await self.operations.send(users, data, sender=sender)

    async def history(self, stream: str, since: p.Since | None, limit: int) -> dict[str, Any]:
        """Read a stream as the ``history`` command does (:meth:`NodeOperations.history`)."""
        return await self.operations.history(stream, since, limit)

    async def presence(self, channel: str) -> dict[str, Any]:
        """Who is in ``channel`` (:meth:`NodeOperations.presence`)."""
        return await self.operations.presence(channel)

    # --- connect, refresh -----------------------------------------------------

    async def _connect(self, session: Session, cmd: p.Connect) -> Any:
        if session.user is not None:
            raise Fail(p.ErrorCode.ALREADY_CONNECTED, "already connected")
        if session.handshake_identity is not None:
            # Authenticated from the WebSocket handshake by the application's own
            # hook (hubbub.hub.server.asgi); credentials in the command are not needed.
            identity = session.handshake_identity
        elif cmd.token is not None:
            identity = self.auth.verify(cmd.token)
        elif cmd.name is not None:
            identity = self.auth.verify_dev(cmd.name)
        else:
            raise Fail(p.ErrorCode.INVALID_PARAMS, "token is required")
        user = identity.user
        session.identity, session.user, session.tick = identity, user, cmd.tick
        self._watched.add(session)
        pending: list[tuple[int | None, str]] = []
        session.inbox_pending = pending
        self._users.setdefault(user, set()).add(session)
        stream = inbox_stream(user)
        info = ClientInfo(user, session.conn_id, self.node_id)
        try:
            await self.broker.subscribe(stream, self._listener)
            await self.broker.presence_add(ONLINE, info, self.config.presence_ttl)
            ack = await self.broker.get_ack(user)
            limit = self.config.inbox.max_len
            read = await self.broker.read(stream, ack[0] if ack else 0, limit)
            reason = None
            acked = ack[0] if ack is not None else 0
            if ack is not None and ack[1] != read.epoch:
                reason = "epoch"  # the inbox was lost: everything kept is new
                acked = 0
                read = await self.broker.read(stream, 0, limit)
                # Said once: the ack starts over in the new epoch.
                await self.broker.set_ack(user, 0, read.epoch)
            elif cmd.inbox_epoch is not None and cmd.inbox_epoch != read.epoch:
                # Section 2.2: the client knew another epoch. A broker restarted
                # empty lost the stored ack with the inbox, so only what the
                # client says reveals the loss.
                reason = "epoch"
            elif not read.complete:
                reason = "trimmed"
        except BaseException:
            session.user = session.identity = None
            if not session.released:
                self._watched.add(session)  # back to waiting for a connect
            session.inbox_pending = None
            await self._forget_user(session, user)
            raise
        if session.released:  # the client left while we waited for the broker
            await self.broker.presence_remove(ONLINE, session.conn_id)
            return REPLIED
        messages = [entry_json(e) for e in read.entries]
        inbox: dict[str, Any] = {
            "epoch": read.epoch,
            "offset": read.offset,
            "acked": acked,
            "recovered": reason is None,
            "messages": messages,
        }
        if reason is not None:
            inbox["reason"] = reason
        result = {
            "user": user,
            "conn_id": session.conn_id,
            "node": self.node_id,
            "expires_at": None if identity.expires_at is None else ms(identity.expires_at),
            "time": ms(self.clock()),
            "inbox": inbox,
        }
        try:
            text = p.encode_result(cmd.id, result)
        except (TypeError, ValueError, RecursionError):
            # An entry that cannot be encoded must not fail every later connect
            # of this user until it ages out (issue 12): it is left out.
            inbox["messages"] = messages = encode_entries(messages)
            text = p.encode_result(cmd.id, result)
        session.send(text)
        self.metrics.delivered("message", len(messages))
        session.inbox_pending = None
        session.flush(pending, read.entries[-1].offset if read.entries else read.offset)
        return REPLIED

    async def _refresh(self, session: Session, cmd: p.Refresh) -> Any:
        user = session.connected_user()
        identity = self.auth.verify(cmd.token)
        if identity.user != user:
            raise Fail(p.ErrorCode.UNAUTHORIZED, "token is for another user")
        session.identity, session.expiring_sent = identity, False
        self._watched.add(session)
        return {"expires_at": None if identity.expires_at is None else ms(identity.expires_at)}

    # --- channels -------------------------------------------------------------

    async def _subscribe(self, session: Session, cmd: p.Subscribe) -> Any:
        user = session.connected_user()
        channel = cmd.channel
        if channel in session.channels:
            raise Fail(p.ErrorCode.ALREADY_SUBSCRIBED, "already subscribed")
        rules = self.permissions.rules(channel)
        if len(session.channels) >= self.config.max_channels:
            raise Fail(p.ErrorCode.TOO_MANY_CHANNELS, "too many channels")
        self.permissions.may_subscribe(session, channel, rules, cmd.token)
        sub = session.channels[channel] = Subscription(rules)
        self._channels.setdefault(channel, {})[session] = sub
        self.metrics.subscriptions.inc()
        try:
            await self.broker.subscribe(channel, self._listener)
            if rules.presence:
                info = ClientInfo(user, session.conn_id, self.node_id)
                await self.broker.presence_add(channel, info, self.config.presence_ttl)
            if rules.join_leave:
                await self.broker.broadcast(channel, Notice("join", user, session.conn_id))
            since = cmd.since
            read = await self.broker.read(
                channel,
                None if since is None else since.offset,
                0 if since is None else rules.recover_max + 1,
            )
        except BaseException:
            await self._leave(session, channel)
            raise
        result: dict[str, Any] = {"channel": channel, "epoch": read.epoch, "offset": read.offset}
        entries: list[Entry] = []
        if since is not None:
            reason = recovery_failure(since, read, rules.recover_max)
            result["recovered"] = reason is None
            if reason is None:
                entries = read.entries
            else:
                result["reason"] = reason
        result["publications"] = [entry_json(e) for e in entries]
        pending = sub.pending
        sub.pending = None
        if session.released:
            return REPLIED
        try:
            text = p.encode_result(cmd.id, result)
        except (TypeError, ValueError, RecursionError):
            result["publications"] = encode_entries(result["publications"])  # as in _connect
            text = p.encode_result(cmd.id, result)
        session.send(text)
        self.metrics.delivered("publication", len(entries))
        if pending:
            session.flush(pending, entries[-1].offset if entries else read.offset)
        return REPLIED

    async def _leave(self, session: Session, channel: str) -> None:
        sub = session.channels.pop(channel, None)
        if sub is None:
            return
        self.metrics.subscriptions.dec()
        sessions = self._channels.get(channel)
        if sessions is not None:
            sessions.pop(session, None)
            if not sessions:
                del self._channels[channel]
                await self.broker.unsubscribe(channel, self._listener)
                # Someone may have subscribed while we were unsubscribing.
                if channel in self._channels:
                    await self.broker.subscribe(channel, self._listener)
        assert session.user is not None
        if sub.rules.presence:
            await self.broker.presence_remove(channel, session.conn_id)
        if sub.rules.join_leave:
            await self.broker.broadcast(channel, Notice("leave", session.user, session.conn_id))

    async def _unsubscribe(self, session: Session, cmd: p.Unsubscribe) -> Any:
        session.connected_user()
        if cmd.channel not in session.channels:
            raise Fail(p.ErrorCode.NOT_SUBSCRIBED, "not subscribed")
        await self._leave(session, cmd.channel)
        return {}

    # --- broker fan-out ------------------------------------------------------

    def _on_broker(self, stream: str, item: Entry | Notice | Reset) -> None:
        if isinstance(item, Reset):
            self._on_reset(stream, item)
            return
        if stream.startswith(INBOX_PREFIX):
            user_sessions = self._users.get(stream[len(INBOX_PREFIX) :])
            if not user_sessions or not isinstance(item, Entry):
                return
            # The push of every direct message: its dict built at once (what
            # encode_push of entry_json would build in three steps).
            text = p.encode(
                {
                    "push": "message",
                    "epoch": item.epoch,
                    "offset": item.offset,
                    "time": int(item.time * 1000),  # ms(), without the call
                    "from": item.sender,
                    "data": item.data,
                }
            )
            sent = 0
            # Once per direct message and recipient: Session.deliver inlined
            # through its public parts, as in the channel loop below.
            for session in user_sessions:
                pending = session.inbox_pending
                if pending is not None:  # connecting: flushed after its reply
                    pending.append((item.offset, text))
                elif not session.closed:
                    try:
                        session.transmit(text)
                    except Exception:
                        session.fail()
                    else:
                        sent += 1
            self.metrics.delivered("message", sent, len(text))
            return
        sessions = self._channels.get(stream)
        if not sessions:
            return
        if isinstance(item, Entry):
            text = p.encode_push(
                "pub", {"channel": stream, "epoch": item.epoch, **entry_json(item)}
            )
            offset = item.offset
            sent = 0
            # The hot loop of fan-out (once per subscriber): Session.deliver
            # inlined through its public parts (push, fail), which saves a
            # call per recipient; the subscriptions come with the sessions.
            for session, sub in sessions.items():
                pending = sub.pending
                if pending is not None:  # recovering: flushed after its reply
                    pending.append((offset, text))
                elif not session.closed:
                    try:
                        session.push(text)
                    except Exception:
                        session.fail()  # this session only: the loop goes on
                    else:
                        sent += 1
            self.metrics.delivered("publication", sent, len(text))
        else:
            text = p.encode_push(
                item.kind, {"channel": stream, "user": item.user, "conn_id": item.conn_id}
            )
            sent = 0
            for session, sub in sessions.items():
                if session.conn_id != item.conn_id:
                    sent += session.deliver(sub.pending, None, text)
            self.metrics.delivered(item.kind, sent, len(text))

    def _on_reset(self, stream: str, reset: Reset) -> None:
        # The broker lost the stream (new epoch): every local listener is told at
        # once, in order with the entries (a recovering one after its reply),
        # rather than finding out at its next reconnection (protocol section 2.3).
        if stream.startswith(INBOX_PREFIX):
            name = p.INBOX
            users = self._users.get(stream[len(INBOX_PREFIX) :], ())
            targets = [(s, s.inbox_pending) for s in users]
        else:
            name = stream
            targets = [(s, sub.pending) for s, sub in self._channels.get(stream, {}).items()]
        fields = {"stream": name, "epoch": reset.epoch, "offset": reset.offset, "reason": "epoch"}
        text = p.encode_push("reset", fields)
        sent = sum(session.deliver(pending, None, text) for session, pending in targets)
        self.metrics.delivered("reset", sent, len(text))

    # --- housekeeping --------------------------------------------------------

    async def periodic(self) -> None:
        """Clock ticks, token expiry, connect timeouts, presence heartbeats."""
        now = self.clock()
        tick = p.encode_push("tick", {"time": ms(now)})
        cfg = self.config
        watched = self._watched
        for session in list(watched):
            if session.released:
                watched.discard(session)
                continue
            identity = session.identity
            if identity is None:
                if now - session.opened_at >= cfg.connect_timeout:
                    await self.disconnect(
                        session, DisconnectCode.CONNECT_TIMEOUT, "connect timeout"
                    )
                continue
            if identity.expires_at is None and not session.tick:
                watched.discard(session)  # until its identity changes
                continue
            if identity.expires_at is not None:
                if now >= identity.expires_at:
                    await self.disconnect(session, DisconnectCode.TOKEN_EXPIRED, "token expired")
                    continue
                if not session.expiring_sent and now >= identity.expires_at - cfg.expiring_notice:
                    session.expiring_sent = True
                    session.send(p.encode_push("expiring", {"expires_at": ms(identity.expires_at)}))
            if session.tick:
                session.send(tick)
        try:
            if now - self._last_touch >= cfg.presence_ttl / 3:
                self._last_touch = now
                keys = [(ONLINE, s.conn_id) for s in self.sessions.values() if s.user is not None]
                keys += [
                    (ch, s.conn_id)
                    for s in self.sessions.values()
                    for ch, sub in s.channels.items()
                    if sub.rules.presence
                ]
                await self.broker.presence_touch(keys, cfg.presence_ttl)
            await self.broker.maintain()
        except BrokerUnavailable:
            logger.warning("broker unavailable during housekeeping")

    def health(self) -> dict[str, Any]:
        """State for ``/healthz``."""
        broker = self.broker.health()
        ok, sessions, users = bool(broker.get("ok")), len(self.sessions), len(self._users)
        counts = {"sessions": sessions, "users": users, "channels": len(self._channels)}
        return {"ok": ok, "node": self.node_id, **counts, "broker": broker}
