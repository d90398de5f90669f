"""Identity: JSON Web Tokens (RFC 7519) for connections and private channels.

A connection token is a JWT whose ``sub`` claim is the user id and whose ``exp``
claim (required) says until when the connection may stay open; a client sends a
new one with ``refresh`` before that. It is signed either with a shared secret
(HS256) or with a private key whose public half the hub is given (RS256, ES256).
An optional ``channels`` claim lists private channels the user may join.

A *subscribe token* grants one private channel: its ``sub`` is the user and its
``channel`` claim the channel.

Expiry is checked here against an injected clock rather than by PyJWT (which
reads the system clock), so that the hub and its tests agree on the time.

Development mode accepts a bare user name instead of a token. It is **insecure**
(anyone can claim to be anyone), off unless asked for, and logged loudly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..exceptions import needs_extra
from .core.identity import AuthError, Identity
from .core.protocol import ErrorCode, valid_channel, valid_user

with needs_extra("hub", "hubbub.hub"):
    import jwt

__all__ = [
    "AuthError",
    "Authenticator",
    "Identity",
    "mint_subscribe_token",
    "mint_token",
]

logger = logging.getLogger(__name__)

_SYMMETRIC = ("HS256", "HS384", "HS512")
_ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA")


class Authenticator:
    """Verifies connection and subscribe tokens.

    Args:
        secret: shared secret for HS256 (and HS384/HS512 if listed).
        public_key: PEM public key for RS256/ES256 and friends.
        algorithms: accepted algorithms; by default HS256 with a secret, RS256
            and ES256 with a public key. Never ``none``.
        insecure_dev_mode: accept ``connect`` with a bare name and no token.
        leeway: seconds of clock skew tolerated on ``exp`` and ``nbf``.
        audience: if set, the ``aud`` claim must match.
        issuer: if set, the ``iss`` claim must match.
        clock: current time in seconds.
    """

    def __init__(
        self,
        *,
        secret: str | bytes | None = None,
        public_key: str | bytes | None = None,
        algorithms: Sequence[str] | None = None,
        insecure_dev_mode: bool = False,
        leeway: float = 0.0,
        audience: str | None = None,
        issuer: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithms is None:
            algorithms = []
            if secret is not None:
                algorithms.append("HS256")
            if public_key is not None:
                algorithms += ["RS256", "ES256"]
        for alg in algorithms:
            if alg in _SYMMETRIC and secret is None:
                raise ValueError(f"{alg} needs a secret")
            if alg in _ASYMMETRIC and public_key is None:
                raise ValueError(f"{alg} needs a public key")
            if alg not in _SYMMETRIC and alg not in _ASYMMETRIC:
                raise ValueError(f"unsupported algorithm {alg!r}")
        self._secret = secret
        self._public_key = public_key
        self.algorithms = tuple(algorithms)
        self.insecure_dev_mode = insecure_dev_mode
        self.leeway = leeway
        self.audience = audience
        self.issuer = issuer
        self._clock = clock
        if insecure_dev_mode:
            logger.warning(
                "INSECURE development mode: clients may connect with a bare name, without a token"
            )

    def _key_for(self, token: str) -> tuple[str | bytes, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(ErrorCode.UNAUTHORIZED, "malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthError(ErrorCode.UNAUTHORIZED, f"algorithm {alg!r} is not accepted")
        key = self._secret if alg in _SYMMETRIC else self._public_key
        assert key is not None  # checked in __init__
        return key, alg

    def _decode(self, token: str) -> dict[str, Any]:
        if not self.algorithms:
            raise AuthError(ErrorCode.UNAUTHORIZED, "tokens are not accepted by this hub")
        key, alg = self._key_for(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["sub", "exp"],
                    "verify_exp": False,  # checked below with the injected clock
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                },
            )
        except jwt.PyJWTError as exc:
            raise AuthError(ErrorCode.UNAUTHORIZED, f"invalid token: {exc}") from exc
        now = self._clock()
        exp = claims["exp"]
        if not isinstance(exp, int | float) or isinstance(exp, bool) or not math.isfinite(exp):
            raise AuthError(ErrorCode.UNAUTHORIZED, "invalid token: exp is not a number")
        # RFC 7519 section 4.1.4: the token must not be accepted on or after exp.
        if now >= exp + self.leeway:
            raise AuthError(ErrorCode.TOKEN_EXPIRED, "token expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now < nbf - self.leeway:
            raise AuthError(ErrorCode.UNAUTHORIZED, "token not valid yet (nbf)")
        sub = claims["sub"]
        if not isinstance(sub, str) or not valid_user(sub):
            raise AuthError(ErrorCode.UNAUTHORIZED, "invalid token: sub is not a user id")
        return claims

    def verify(self, token: str) -> Identity:
        """Verify a connection token.

        Raises:
            AuthError: with ``TOKEN_EXPIRED`` or ``UNAUTHORIZED``.
        """
        claims = self._decode(token)
        raw_channels = claims.get("channels", [])
        channels = (
            frozenset(c for c in raw_channels if isinstance(c, str) and valid_channel(c))
            if isinstance(raw_channels, list)
            else frozenset()
        )
        return Identity(claims["sub"], float(claims["exp"]), channels, claims)

    def verify_dev(self, name: str) -> Identity:
        """Development mode: trust ``name``.

        Raises:
            AuthError: if development mode is off.
        """
        if not self.insecure_dev_mode:
            raise AuthError(ErrorCode.UNAUTHORIZED, "a token is required")
        if not valid_user(name):
            raise AuthError(ErrorCode.UNAUTHORIZED, "invalid name")
        return Identity(name, None)

    def verify_subscribe(self, token: str, user: str, channel: str) -> None:
        """Verify a subscribe token for ``user`` and ``channel``.

        Raises:
            AuthError: if it is invalid, expired, or for someone or something else.
        """
        claims = self._decode(token)
        if claims["sub"] != user or claims.get("channel") != channel:
            raise AuthError(
                ErrorCode.PERMISSION_DENIED, "subscribe token is for another user or channel"
            )


def mint_token(
    user: str,
    secret: str | bytes,
    ttl: float = 3600.0,
    *,
    algorithm: str = "HS256",
    channels: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """Create a connection token for ``user`` valid ``ttl`` seconds.

    ``secret`` is the shared secret for HS256, or a PEM private key for RS256/ES256.
    """
    if not valid_user(user):
        raise ValueError(f"invalid user id {user!r}")
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {**(extra or {}), "sub": user, "iat": int(issued)}
    claims["exp"] = math.ceil(issued + ttl)
    if channels:
        claims["channels"] = list(channels)
    return jwt.encode(claims, secret, algorithm=algorithm)


def mint_subscribe_token(
    user: str,
    channel: str,
    secret: str | bytes,
    ttl: float = 3600.0,
    *,
    algorithm: str = "HS256",
    now: float | None = None,
) -> str:
    """Create a token letting ``user`` join the private ``channel``."""
    return mint_token(user, secret, ttl, algorithm=algorithm, extra={"channel": channel}, now=now)
