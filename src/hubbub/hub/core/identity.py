"""Who a connection is, as the node sees it, and the verifier the node is handed.

The node never reads a token itself: it asks the :class:`TokenVerifier` it was
given (in a hub, :class:`hubbub.hub.auth.Authenticator`, which checks JSON Web
Tokens against its clock and needs the ``hub`` extra) and gets an
:class:`Identity` back, or an :class:`AuthError` with the wire error to answer.
Keeping the interface here keeps the core free of PyJWT and of the system clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ...exceptions import HubError
from .protocol import ErrorCode

__all__ = ["AuthError", "Identity", "TokenVerifier"]


class AuthError(HubError):
    """A token was refused; ``code`` is the wire error to answer with."""

    code: ErrorCode

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection is.

    Attributes:
        user: the user id (``sub``).
        expires_at: when the token expires (seconds), ``None`` in development mode.
        channels: private channels the token grants.
        claims: every claim of the token.
    """

    user: str
    expires_at: float | None
    channels: frozenset[str] = frozenset()
    claims: dict[str, Any] = field(default_factory=dict)


class TokenVerifier(Protocol):
    """What the node asks of its token verifier (:class:`hubbub.hub.auth.Authenticator`)."""

    def verify(self, token: str) -> Identity:
        """The identity of a connection token.

        Raises:
            AuthError: the token is refused; ``code`` is the wire error.
        """
        ...

    def verify_dev(self, name: str) -> Identity:
        """Development mode: the identity ``name`` claims.

        Raises:
            AuthError: development mode is off, or ``name`` is not a user id.
        """
        ...

    def verify_subscribe(self, token: str, user: str, channel: str) -> None:
        """Check a subscribe token for ``user`` and ``channel``.

        Raises:
            AuthError: the token does not grant that channel to that user.
        """
        ...
