"""JWT identity: HS256, RS256, ES256, expiry, wrong keys, subscribe tokens, dev mode."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hub_helpers import SECRET, FakeClock

from hubbub.hub.auth import Authenticator, AuthError, mint_subscribe_token, mint_token
from hubbub.hub.core.protocol import ErrorCode


def pem_pair(kind: str) -> tuple[bytes, bytes]:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_hs256_valid() -> None:
    clock = FakeClock()
    auth = Authenticator(secret=SECRET, clock=clock)
    token = mint_token("alice", SECRET, 60, now=clock(), channels=["priv:a", "bad channel"])
    identity = auth.verify(token)
    assert identity.user == "alice"
    assert identity.expires_at == clock() + 60
    assert identity.channels == frozenset({"priv:a"})


def test_expired_with_injected_clock() -> None:
    clock = FakeClock()
    auth = Authenticator(secret=SECRET, clock=clock)
    token = mint_token("alice", SECRET, 60, now=clock())
    clock.advance(59)
    assert auth.verify(token).user == "alice"
    clock.advance(1)  # RFC 7519 4.1.4: not accepted on or after exp
    with pytest.raises(AuthError) as info:
        auth.verify(token)
    assert info.value.code == ErrorCode.TOKEN_EXPIRED


def test_leeway() -> None:
    clock = FakeClock()
    auth = Authenticator(secret=SECRET, clock=clock, leeway=5)
    token = mint_token("alice", SECRET, 60, now=clock())
    clock.advance(64)
    assert auth.verify(token).user == "alice"
    clock.advance(1)
    with pytest.raises(AuthError):
        auth.verify(token)


@pytest.mark.parametrize(
    "token_factory",
    [
        pytest.param(
            lambda now: mint_token("a", "another-secret-of-32-bytes-at-least!", now=now),
            id="wrong-secret",
        ),
        pytest.param(
            lambda now: jwt.encode({"sub": "a", "exp": now + 60}, None, algorithm="none"),
            id="alg-none",
        ),
        pytest.param(lambda now: jwt.encode({"sub": "a"}, SECRET, algorithm="HS256"), id="no-exp"),
        pytest.param(
            lambda now: jwt.encode({"exp": now + 60}, SECRET, algorithm="HS256"), id="no-sub"
        ),
        pytest.param(lambda now: jwt.encode({"sub": "$x", "exp": now + 60}, SECRET), id="bad-sub"),
        pytest.param(lambda now: jwt.encode({"sub": 5, "exp": now + 60}, SECRET), id="int-sub"),
        pytest.param(lambda now: jwt.encode({"sub": "a", "exp": "soon"}, SECRET), id="str-exp"),
        pytest.param(
            lambda now: jwt.encode({"sub": "a", "exp": now + 60, "nbf": now + 30}, SECRET), id="nbf"
        ),
        pytest.param(lambda now: "not.a.token", id="garbage"),
        pytest.param(lambda now: mint_token("a", "k" * 64, now=now, algorithm="HS512"), id="hs512"),
    ],
)
def test_refused(token_factory) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    auth = Authenticator(secret=SECRET, clock=clock)
    with pytest.raises(AuthError) as info:
        auth.verify(token_factory(clock()))
    assert info.value.code == ErrorCode.UNAUTHORIZED


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_asymmetric(alg: str) -> None:
    clock = FakeClock()
    private, public = pem_pair(alg)
    auth = Authenticator(public_key=public, clock=clock)
    token = mint_token("bob", private, 60, algorithm=alg, now=clock())
    assert auth.verify(token).user == "bob"
    # Signed by another key pair: refused.
    other_private, _ = pem_pair(alg)
    with pytest.raises(AuthError):
        auth.verify(mint_token("bob", other_private, 60, algorithm=alg, now=clock()))
    # An HS256 token "signed" with the public key (algorithm confusion): refused.
    forged = jwt.encode({"sub": "bob", "exp": clock() + 60}, "x" * 32, algorithm="HS256")
    with pytest.raises(AuthError, match="not accepted"):
        auth.verify(forged)
    clock.advance(60)
    with pytest.raises(AuthError) as info:
        auth.verify(token)
    assert info.value.code == ErrorCode.TOKEN_EXPIRED


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="secret"):
        Authenticator(algorithms=["HS256"])
    with pytest.raises(ValueError, match="public key"):
        Authenticator(secret=SECRET, algorithms=["RS256"])
    with pytest.raises(ValueError, match="unsupported"):
        Authenticator(secret=SECRET, algorithms=["none"])
    with pytest.raises(ValueError, match="user"):
        mint_token("$nope", SECRET)


def test_no_key_refuses_tokens() -> None:
    auth = Authenticator(insecure_dev_mode=True)
    with pytest.raises(AuthError, match="not accepted"):
        auth.verify(mint_token("a", SECRET))


def test_dev_mode_is_off_by_default(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AuthError):
        Authenticator(secret=SECRET).verify_dev("alice")
    dev = Authenticator(insecure_dev_mode=True)
    assert "INSECURE" in caplog.text
    identity = dev.verify_dev("alice")
    assert (identity.user, identity.expires_at) == ("alice", None)
    with pytest.raises(AuthError):
        dev.verify_dev("$admin")


def test_subscribe_token() -> None:
    clock = FakeClock()
    auth = Authenticator(secret=SECRET, clock=clock)
    token = mint_subscribe_token("alice", "priv:x", SECRET, 60, now=clock())
    auth.verify_subscribe(token, "alice", "priv:x")
    with pytest.raises(AuthError) as info:
        auth.verify_subscribe(token, "bob", "priv:x")
    assert info.value.code == ErrorCode.PERMISSION_DENIED
    with pytest.raises(AuthError):
        auth.verify_subscribe(token, "alice", "priv:y")
    # A connection token is not a subscribe token.
    with pytest.raises(AuthError):
        auth.verify_subscribe(mint_token("alice", SECRET, now=clock()), "alice", "priv:x")


def test_audience_and_issuer() -> None:
    clock = FakeClock()
    auth = Authenticator(secret=SECRET, audience="hub", issuer="me", clock=clock)
    good = mint_token("a", SECRET, now=clock(), extra={"aud": "hub", "iss": "me"})
    assert auth.verify(good).user == "a"
    with pytest.raises(AuthError):
        auth.verify(mint_token("a", SECRET, now=clock(), extra={"aud": "other", "iss": "me"}))
    with pytest.raises(AuthError):
        auth.verify(mint_token("a", SECRET, now=clock()))
