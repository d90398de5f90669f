"""Automatic reconnection of the asyncio client: ``async for ws in connect(uri)``."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from client_peers import FAST, HubbubServer, hubbub_server, respond
from hubbub.asyncio import connect
from hubbub.backoff import Backoff
from hubbub.exceptions import InvalidStatus
from hubbub.reconnect import Retry, RetryPolicy

MAX_DELAY = 0.2


def policy(retries: list[Retry], max_attempts: int | None = None) -> RetryPolicy:
    backoff = Backoff(initial_delay=0.05, factor=2.0, max_delay=MAX_DELAY)
    return RetryPolicy(backoff, max_attempts=max_attempts, on_retry=retries.append)


async def wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_comes_back_after_restart(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "hubbub.reconnect")
    server = HubbubServer()  # in its own thread and loop, so it can stop under us
    port = server.start()
    retries: list[Retry] = []
    answers: list[tuple[float, str]] = []

    async def client() -> None:
        n = 0
        async for ws in connect(f"ws://127.0.0.1:{port}", retry=policy(retries), **FAST):
            await ws.send(f"hello {n}")
            answers.append((time.monotonic(), str(await ws.recv())))
            if n == 1:
                break
            n += 1
            async for _ in ws:  # until the server goes away (1001: ends quietly)
                pass

    task = asyncio.create_task(client())
    try:
        await wait_for(lambda: answers)
        await asyncio.to_thread(server.stop)
        await wait_for(lambda: len(retries) >= 3)
        await asyncio.to_thread(server.start)
        assert server.port == port
        restarted = time.monotonic()
        await asyncio.wait_for(task, 5)
        assert [text for _, text in answers] == ["hello 0", "hello 1"]
        assert answers[1][0] - restarted < MAX_DELAY + 0.5
        assert all(isinstance(r.error, ConnectionRefusedError) for r in retries)
        assert all(0 <= r.delay <= MAX_DELAY for r in retries)
        assert "retry 1" in caplog.text
    finally:
        task.cancel()
        await asyncio.to_thread(server.close)


async def first_connection(url: str, retry: RetryPolicy) -> None:
    async for _ in connect(url, retry=retry, **FAST):
        pytest.fail("connected despite a rejection")


async def test_403_stops_retrying() -> None:
    retries: list[Retry] = []
    with hubbub_server(respond(403)) as server, pytest.raises(InvalidStatus) as info:
        await first_connection(f"ws://127.0.0.1:{server.port}", policy(retries))
    assert info.value.response.status == 403
    assert retries == []


async def test_503_is_retried_until_max_attempts() -> None:
    retries: list[Retry] = []
    with hubbub_server(respond(503)) as server, pytest.raises(InvalidStatus):
        await first_connection(f"ws://127.0.0.1:{server.port}", policy(retries, max_attempts=3))
    assert [r.attempt for r in retries] == [1, 2]
