"""The commands of a hub node that keep no state on the node.

A :class:`NodeOperations` is owned by its :class:`hubbub.hub.core.node.Node`
(``node.operations``), which hands it what it reads (broker, config, clock,
metrics, permissions) and routes these commands to it: ``publish``, ``send``,
``presence``, ``presence_stats``, ``online``, ``history``, ``ack`` and ``ping``
(the ``handle_*`` methods), and the server's own Python API for the same
operations (:meth:`~NodeOperations.publish`, :meth:`~NodeOperations.send`,
:meth:`~NodeOperations.history`, :meth:`~NodeOperations.presence`, which the
node offers under the same names). Each of them checks the session's rights and
limits, then asks the broker; none touches the node's routing tables (which
sessions belong to which user or channel), its watched sessions, or the recovery
buffers. Those stay in :mod:`~hubbub.hub.core.node`, with the commands that
change them (``connect``, ``subscribe``, ``unsubscribe``) and the fan-out of
broker items to sessions, so the stateful part of a node reads on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import protocol as p
from .broker import Broker
from .config import HubConfig, NamespaceRules, namespace_of
from .permissions import Permissions
from .session import INBOX_PREFIX, Fail, Session, entry_json, inbox_stream, ms
from .streams import Entry
from .traffic import NodeMetrics

__all__ = ["NodeOperations"]


class NodeOperations:
    """The stateless commands of a :class:`~hubbub.hub.core.node.Node`, and its server API.

    Args:
        broker: the node's broker.
        config: the node's rules and limits.
        clock: the node's clock.
        metrics: the node's counters.
        permissions: the node's rights checks.
    """

    def __init__(
        self,
        broker: Broker,
        config: HubConfig,
        clock: Callable[[], float],
        metrics: NodeMetrics,
        permissions: Permissions,
    ) -> None:
        self.broker = broker
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.permissions = permissions

    # --- publish ----------------------------------------------------------------

    def _check_size(self, data: Any) -> None:
        # A character encodes to at most 6 bytes ("\u001f"; UTF-8 takes at
        # most 4) plus the quotes: when even that fits, measuring is waste.
        if type(data) is not str or 6 * len(data) + 2 > self.config.max_message_bytes:
            self.permissions.check_size(data)

    def _may_publish(self, session: Session, cmd: p.Publish) -> tuple[str, NamespaceRules]:
        """The publisher and the channel's rules, once the publication is allowed."""
        user = session.connected_user()
        rules = self.permissions.rules(cmd.channel)
        self.permissions.may_publish(session, cmd.channel, rules)
        self._check_size(cmd.data)
        return user, rules

    async def handle_publish(self, session: Session, cmd: p.Publish) -> Any:
        user, rules = self._may_publish(session, cmd)
        entry = await self.broker.publish(cmd.channel, cmd.data, sender=user, limits=rules.history)
        return {"offset": entry.offset, "epoch": entry.epoch}

    def handle_publish_now(self, session: Session, cmd: p.Publish) -> Any:
        """:meth:`handle_publish` on a broker that never suspends (``Node.handle_now``)."""
        user, rules = self._may_publish(session, cmd)
        entry = self.broker.publish_now(cmd.channel, cmd.data, sender=user, limits=rules.history)
        return {"offset": entry.offset, "epoch": entry.epoch}

    # --- direct events, presence, history, acks, ping ----------------------

    def _may_send(self, session: Session, cmd: p.Send) -> str:
        """The sender, once the ``send`` is allowed."""
        user = session.connected_user()
        if len(cmd.to) > self.config.max_recipients:
            raise Fail(p.ErrorCode.TOO_MANY_RECIPIENTS, "too many recipients")
        self._check_size(cmd.data)
        return user

    async def handle_send(self, session: Session, cmd: p.Send) -> Any:
        user = self._may_send(session, cmd)
        return {"results": await self.send(cmd.to, cmd.data, sender=user)}

    def handle_send_now(self, session: Session, cmd: p.Send) -> Any:
        """:meth:`handle_send` on a broker that never suspends (``Node.handle_now``)."""
        user = self._may_send(session, cmd)
        return {"results": self.send_now(cmd.to, cmd.data, sender=user)}

    async def handle_presence(self, session: Session, cmd: p.Presence) -> Any:
        self._presence_allowed(session, cmd.channel)
        return await self.presence(cmd.channel)

    async def handle_presence_stats(self, session: Session, cmd: p.PresenceStats) -> Any:
        self._presence_allowed(session, cmd.channel)
        presence = await self.presence(cmd.channel)
        return {"clients": len(presence["clients"]), "users": len(presence["users"])}

    def _presence_allowed(self, session: Session, channel: str) -> None:
        session.connected_user()
        rules = self.permissions.rules(channel)
        if not rules.presence:
            raise Fail(p.ErrorCode.NOT_AVAILABLE, "no presence in this namespace")
        self.permissions.may_read(session, channel, rules)

    async def handle_online(self, session: Session, cmd: p.Online) -> Any:
        session.connected_user()
        if len(cmd.users) > self.config.max_recipients:
            raise Fail(p.ErrorCode.TOO_MANY_RECIPIENTS, "too many users")
        online = await self.broker.online(cmd.users)
        return {"online": {u: u in online for u in cmd.users}}

    async def handle_history(self, session: Session, cmd: p.History) -> Any:
        user = session.connected_user()
        if cmd.stream == p.INBOX:
            stream = inbox_stream(user)
        else:
            stream = cmd.stream
            rules = self.permissions.rules(stream)
            self.permissions.may_read(session, stream, rules)
            if rules.history.max_len == 0:
                raise Fail(p.ErrorCode.NOT_AVAILABLE, "no history in this namespace")
        return await self.history(stream, cmd.since, cmd.limit)

    async def handle_ack(self, session: Session, cmd: p.Ack) -> Any:
        user = session.connected_user()
        top = await self.broker.read(inbox_stream(user), None, 0)
        if cmd.epoch is not None and cmd.epoch != top.epoch:
            raise Fail(p.ErrorCode.EPOCH_MISMATCH, f"epoch is now {top.epoch}")
        if cmd.offset > top.offset:
            raise Fail(p.ErrorCode.INVALID_PARAMS, "offset is beyond the end of the inbox")
        offset, epoch = await self.broker.set_ack(user, cmd.offset, top.epoch)
        return {"offset": offset, "epoch": epoch}

    async def handle_ping(self, session: Session, cmd: p.Ping) -> Any:
        return {"time": ms(self.clock())}

    # --- server API (Python, same process) ---------------------------------

    def check_channel(self, channel: str) -> NamespaceRules:
        """The rules of ``channel``, which the server may publish to.

        Raises:
            ValueError: an invalid channel name, or one of no namespace configured.
        """
        if not p.valid_channel(channel):
            raise ValueError(f"invalid channel {channel!r}")
        rules = self.config.namespaces.get(namespace_of(channel))
        if rules is None:
            raise ValueError(f"unknown namespace in {channel!r}")
        return rules

    async def publish(self, channel: str, data: Any, *, sender: str | None = None) -> Entry:
        """Publish to a channel as the server (no permission check)."""
        rules = self.check_channel(channel)
        return await self.broker.publish(channel, data, sender=sender, limits=rules.history)

    async def send(
        self, users: Iterable[str], data: Any, *, sender: str | None = None
    ) -> dict[str, Any]:
        """Store ``data`` in each user's inbox; say per user whether one was online."""
        users = list(dict.fromkeys(users))
        online = await self.broker.online(users)
        limits = self.config.inbox
        entries: dict[str, Entry] = {}
        for user in users:
            stream = INBOX_PREFIX + user  # inbox_stream(user), without the call
            entries[user] = await self.broker.publish(stream, data, sender=sender, limits=limits)
        return self._results(online, entries)

    def send_now(
        self, users: Iterable[str], data: Any, *, sender: str | None = None
    ) -> dict[str, Any]:
        """:meth:`send` on a broker that never suspends (``Broker.suspends`` False)."""
        users = list(dict.fromkeys(users))
        broker = self.broker
        online = broker.online_now(users)
        limits = self.config.inbox
        # A loop, not a comprehension: on Python 3.11 that is a call more.
        entries: dict[str, Entry] = {}
        for user in users:
            stream = INBOX_PREFIX + user
            entries[user] = broker.publish_now(stream, data, sender=sender, limits=limits)
        return self._results(online, entries)

    def _results(self, online: set[str], entries: dict[str, Entry]) -> dict[str, Any]:
        """A ``send``'s result per user: live or queued (counted), the offset, the epoch."""
        # items(), not zip(): zip is a call of a type, and zip(strict=True)
        # parses its keyword the slow way (callgrind: 300 instructions a send).
        results: dict[str, Any] = {}
        for user, entry in entries.items():
            if user in online:
                status = "live"
            else:
                status = "queued"
                self.metrics.queued.inc()
            results[user] = {"status": status, "offset": entry.offset, "epoch": entry.epoch}
        return results

    async def history(self, stream: str, since: p.Since | None, limit: int) -> dict[str, Any]:
        """Read a stream (a channel, or ``$inbox:USER``) as the ``history`` command does.

        Raises:
            Fail: ``EPOCH_MISMATCH`` if ``since`` is from another epoch.
        """
        read = await self.broker.read(stream, None if since is None else since.offset, limit)
        if since is not None and since.epoch != read.epoch:
            raise Fail(p.ErrorCode.EPOCH_MISMATCH, f"epoch is now {read.epoch}")
        return {
            "epoch": read.epoch,
            "offset": read.offset,
            "complete": read.complete,
            "publications": [entry_json(e) for e in read.entries],
        }

    async def presence(self, channel: str) -> dict[str, Any]:
        """Who is in ``channel``: ``{"clients": {conn: {"user"}}, "users": {user: count}}``."""
        members = await self.broker.presence(channel)
        users: dict[str, int] = {}
        for info in members.values():
            users[info.user] = users.get(info.user, 0) + 1
        return {"clients": {c: {"user": i.user} for c, i in members.items()}, "users": users}
