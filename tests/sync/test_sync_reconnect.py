"""Automatic reconnection of the blocking client against a server that restarts."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from client_peers import FAST, HubbubServer, hubbub_server, respond, wait_until
from hubbub.backoff import Backoff
from hubbub.exceptions import InvalidStatus
from hubbub.reconnect import Retry, RetryPolicy
from hubbub.sync.client import reconnect

MAX_DELAY = 0.2


def policy(retries: list[Retry], **kwargs: object) -> RetryPolicy:
    backoff = Backoff(initial_delay=0.05, factor=2.0, max_delay=MAX_DELAY)
    return RetryPolicy(backoff, on_retry=retries.append, **kwargs)  # type: ignore[arg-type]


def test_comes_back_after_restart(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "hubbub.reconnect")
    server = HubbubServer()
    port = server.start()
    retries: list[Retry] = []
    answers: list[tuple[float, str]] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            for n, ws in enumerate(
                reconnect(f"ws://127.0.0.1:{port}", retry=policy(retries), **FAST)
            ):
                ws.send(f"hello {n}")
                answers.append((time.monotonic(), str(ws.recv(timeout=5))))
                if n == 1:
                    break
                for _ in ws:  # until the server goes away (1001: ends quietly)
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_until(lambda: answers)
        server.stop()
        wait_until(lambda: len(retries) >= 3)  # attempts fail while the server is down
        server.start()
        assert server.port == port
        restarted = time.monotonic()
        thread.join(5)
        assert not errors
        assert [text for _, text in answers] == ["hello 0", "hello 1"]
        # Back within the backoff bound (the largest delay) plus a connection's time.
        assert answers[1][0] - restarted < MAX_DELAY + 0.5
        assert all(isinstance(r.error, ConnectionRefusedError) for r in retries)
        assert all(0 <= r.delay <= MAX_DELAY for r in retries)
        assert [r.attempt for r in retries[:3]] == [1, 2, 3]
        assert "retry 1" in caplog.text
        assert "reconnected after" in caplog.text
    finally:
        thread.join(5)
        server.close()


def test_403_stops_retrying() -> None:
    retries: list[Retry] = []
    with hubbub_server(respond(403)) as server, pytest.raises(InvalidStatus) as info:
        next(reconnect(f"ws://127.0.0.1:{server.port}", retry=policy(retries), **FAST))
    assert info.value.response.status == 403
    assert retries == []


def test_503_is_retried_until_max_attempts() -> None:
    retries: list[Retry] = []
    with hubbub_server(respond(503)) as server, pytest.raises(InvalidStatus) as info:
        next(
            reconnect(
                f"ws://127.0.0.1:{server.port}", retry=policy(retries, max_attempts=3), **FAST
            )
        )
    assert info.value.response.status == 503
    assert [r.attempt for r in retries] == [1, 2]
