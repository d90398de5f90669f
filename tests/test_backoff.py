"""Exponential backoff with full jitter, and the transient/permanent classification."""

from __future__ import annotations

import random
import ssl

import pytest

from hubbub.adapter import RedirectError
from hubbub.backoff import Backoff, is_transient
from hubbub.exceptions import (
    ConnectionClosedError,
    HandshakeTimeout,
    InvalidHeader,
    InvalidMessage,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
)
from hubbub.protocol.http11 import Headers, Response
from hubbub.proxy import ProxyError
from hubbub.reconnect import Retry, RetryPolicy


def test_caps_grow_exponentially_up_to_max_delay() -> None:
    backoff = Backoff(initial_delay=0.5, factor=3.0, max_delay=10.0)
    assert [backoff.cap(n) for n in range(5)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert backoff.cap(10_000) == 10.0  # no overflow after a long outage


def test_full_jitter_spans_the_whole_interval() -> None:
    backoff = Backoff(initial_delay=1.0, factor=2.0, max_delay=8.0, rng=random.Random(7))
    for attempt in range(6):
        cap = backoff.cap(attempt)
        delays = [backoff.delay(attempt) for _ in range(2000)]
        assert all(0.0 <= d <= cap for d in delays)
        # Uniform on [0, cap]: both ends are reached and the mean is near cap / 2.
        assert min(delays) < cap * 0.02
        assert max(delays) > cap * 0.98
        assert abs(sum(delays) / len(delays) - cap / 2) < cap * 0.05


def test_seeded_backoffs_repeat() -> None:
    first = Backoff(rng=random.Random(1)).delays()
    second = Backoff(rng=random.Random(1)).delays()
    assert [next(first) for _ in range(10)] == [next(second) for _ in range(10)]


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="negative"):
        Backoff(initial_delay=-1)
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)


def status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "x", Headers()))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (OSError("network unreachable"), True),
        (HandshakeTimeout("slow"), True),
        (InvalidMessage("connection closed during the handshake"), True),
        (ConnectionClosedError(1006), True),
        (status(503), True),
        (status(502), True),
        (status(429), True),
        (status(408), True),
        (status(403), False),
        (status(401), False),
        (status(404), False),
        (status(400), False),
        (status(426), False),
        (status(301), False),
        (InvalidURI("x", "bad"), False),
        (InvalidUpgrade("Upgrade", "h2c"), False),
        (InvalidHeader("Sec-WebSocket-Accept", "x"), False),
        (NegotiationError("no subprotocol"), False),
        (RedirectError("too many"), False),
        (ProxyError("refused", 407), False),
        (ProxyError("bad gateway", 502, transient=True), True),
        (ssl.SSLCertVerificationError("bad certificate"), False),
        (ValueError("a bug"), False),
    ],
)
def test_is_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_retry_policy() -> None:
    retries: list[Retry] = []
    policy = RetryPolicy(
        Backoff(initial_delay=1.0, max_delay=4.0, rng=random.Random(3)),
        max_attempts=3,
        on_retry=retries.append,
    )
    refused = ConnectionRefusedError()
    delays = [policy.next_delay(n, refused) for n in (1, 2)]
    assert [r.attempt for r in retries] == [1, 2]
    assert [r.delay for r in retries] == delays
    assert 0 <= delays[0] <= 1.0
    assert 0 <= delays[1] <= 2.0
    with pytest.raises(ConnectionRefusedError):
        policy.next_delay(3, refused)  # attempts exhausted
    with pytest.raises(InvalidStatus):
        policy.next_delay(1, status(403))  # permanent
    assert len(retries) == 2
