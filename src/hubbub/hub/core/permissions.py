"""Who may do what: namespace rules, private channels, user-limited channels, sizes."""

from __future__ import annotations

from typing import Any

from . import protocol as p
from .config import HubConfig, NamespaceRules, namespace_of
from .identity import AuthError, TokenVerifier
from .session import Fail, Session

__all__ = ["Permissions"]


class Permissions:
    """Checks a node makes before executing a request; each raises :class:`Fail`."""

    def __init__(self, config: HubConfig, auth: TokenVerifier) -> None:
        self.config = config
        self.auth = auth

    def rules(self, channel: str) -> NamespaceRules:
        """The rules of the channel's namespace; unknown namespaces are refused."""
        rules = self.config.namespaces.get(namespace_of(channel))
        if rules is None:
            raise Fail(p.ErrorCode.UNKNOWN_CHANNEL, f"unknown namespace in {channel!r}")
        return rules

    def check_size(self, data: Any) -> None:
        """Refuse ``data`` larger than ``max_message_bytes`` once encoded."""
        if p.utf8_length(p.encode(data)) > self.config.max_message_bytes:
            raise Fail(p.ErrorCode.MESSAGE_TOO_LARGE, "data too large")

    def may_subscribe(
        self, session: Session, channel: str, rules: NamespaceRules, token: str | None
    ) -> None:
        """May the session join ``channel``? (``token``: a subscribe token, if any.)"""
        user = session.user
        if user is None:
            raise Fail(p.ErrorCode.NOT_CONNECTED, "connect first")
        # User-limited channels: "chat:room#alice,bob" admits alice and bob only.
        _, sharp, allowed = channel.partition("#")
        if sharp and user not in allowed.split(","):
            raise Fail(p.ErrorCode.PERMISSION_DENIED, "channel is limited to other users")
        if rules.subscribe == "all":
            return
        assert session.identity is not None
        if channel in session.identity.channels:
            return
        if token is None:
            raise Fail(
                p.ErrorCode.PERMISSION_DENIED, "private channel: a subscribe token is required"
            )
        try:
            self.auth.verify_subscribe(token, user, channel)
        except AuthError as exc:
            raise Fail(p.ErrorCode.PERMISSION_DENIED, f"subscribe token refused: {exc}") from exc

    def may_read(self, session: Session, channel: str, rules: NamespaceRules) -> None:
        """May the session read presence or history: members may, others if they could join."""
        if channel not in session.channels:
            self.may_subscribe(session, channel, rules, None)

    def may_publish(self, session: Session, channel: str, rules: NamespaceRules) -> None:
        """May the session publish to ``channel`` under the namespace's ``publish`` rule?"""
        if rules.publish == "none":
            raise Fail(p.ErrorCode.PERMISSION_DENIED, "only the server publishes here")
        if rules.publish == "subscribers" and channel not in session.channels:
            raise Fail(p.ErrorCode.PERMISSION_DENIED, "subscribe before publishing")
        self.may_read(session, channel, rules)
