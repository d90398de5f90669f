"""What the Python SDK tells an application that cannot be served (issue 18).

Against real servers and processes: a closed port, ``hubbub echo`` (with and
without the hub's subprotocol), a plain hub, and a small server that speaks
``hubbub.json.v1`` but sends malformed messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hub_helpers import SECRET

from hubbub.asyncio import ServerConnection, serve
from hubbub.backoff import Backoff
from hubbub.exceptions import NegotiationError
from hubbub.hub import mint_token
from hubbub.hub.client import INBOX, HubClient, HubError, InvalidReply, State
from hubbub.hub.core.protocol import SUBPROTOCOL
from hubbub.hub.server import Hub, start_hub

FAST = Backoff(initial_delay=0.01, factor=2.0, max_delay=0.05, rng=random.Random(3))


class StateLog:
    """Records every ``on_state(state, error)`` call."""

    def __init__(self) -> None:
        self.calls: list[tuple[State, BaseException | None]] = []

    def __call__(self, state: State, error: BaseException | None) -> None:
        self.calls.append((state, error))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def hubbub_echo(*args: str) -> Iterator[str]:
    """A ``hubbub echo`` process on a free port; yields its ws:// URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubbub", "echo", "--port", "0", "--ping-interval", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    with proc:
        try:
            match = re.search(r"listening on (ws://\S+)", proc.stderr.readline())
            assert match, "hubbub echo did not start"
            yield match.group(1)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            finally:
                if proc.poll() is None:
                    proc.kill()


async def test_closed_port_surfaces_the_error_and_logs_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = StateLog()
    client = HubClient(f"ws://127.0.0.1:{closed_port()}/", name="ann", backoff=FAST, on_state=log)
    caplog.set_level(logging.WARNING, "hubbub.hub.client")
    start = asyncio.create_task(client.start())
    try:
        async with asyncio.timeout(10):
            while client.attempt < 3:
                await client.wait_state(State.RECONNECTING)
                await asyncio.sleep(0.01)
        assert not start.done()  # still retrying: a closed port may open later
        assert isinstance(client.last_error, ConnectionRefusedError)
        assert log.calls[0] == (State.CONNECTING, None)
        # Every state change after the first failure says why.
        assert all(isinstance(error, ConnectionRefusedError) for _, error in log.calls[1:])
        assert client.reconnections == 0  # failed attempts are not reconnections
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) >= 3
        assert "ConnectionRefusedError" in warnings[0].getMessage()
        assert "retrying in" in warnings[0].getMessage()
    finally:
        await client.close()
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await start
    assert client.state is State.CLOSED
    assert client.last_error is None  # closed by the application
    assert log.calls[-1] == (State.CLOSED, None)


async def test_a_server_that_does_not_select_the_subprotocol_is_refused() -> None:
    log = StateLog()
    with hubbub_echo() as url:
        client = HubClient(url, name="ann", backoff=FAST, on_state=log)
        with pytest.raises(NegotiationError, match=re.escape(SUBPROTOCOL)):
            await asyncio.wait_for(client.start(), 10)
    assert client.state is State.CLOSED
    assert isinstance(client.close_error, NegotiationError)
    assert client.last_error is client.close_error
    assert log.calls[-1] == (State.CLOSED, client.close_error)


async def test_an_echoed_request_is_an_invalid_reply_not_a_dead_reader() -> None:
    # hubbub echo selects the subprotocol when asked: it sends our connect
    # request back (an ``id`` without ``result``).
    with hubbub_echo("--subprotocol", SUBPROTOCOL) as url:
        client = HubClient(url, name="ann", backoff=FAST)
        with pytest.raises(InvalidReply, match=r"not a hubbub\.json\.v1 reply"):
            await asyncio.wait_for(client.start(), 10)
    assert isinstance(client.close_error, InvalidReply)
    with pytest.raises(InvalidReply):
        await client.recv()


@contextlib.asynccontextmanager
async def odd_hub(pushes: list[Any]) -> AsyncIterator[int]:
    """Speaks just enough hubbub.json.v1: answers connect, then sends ``pushes`` raw."""

    async def handler(ws: ServerConnection) -> None:
        async for text in ws:
            request = json.loads(text)
            if request["method"] == "connect":
                inbox = {"epoch": "e1", "offset": 0, "acked": 0, "recovered": True, "messages": []}
                result = {"user": "ann", "conn_id": "c1", "inbox": inbox}
                await ws.send(json.dumps({"id": request["id"], "result": result}))
                for push in pushes:
                    await ws.send(push if isinstance(push, str) else json.dumps(push))
            else:
                await ws.send(json.dumps({"id": request["id"], "result": {"time": 1}}))

    async with serve(handler, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL]) as server:
        yield server.port


async def test_malformed_messages_never_kill_the_reader(caplog: pytest.LogCaptureFixture) -> None:
    good = {"push": "message", "epoch": "e1", "offset": 1, "time": 0, "from": "bob", "data": "ok"}
    pushes = [
        {"id": 99},  # a reply to nothing
        {"id": 1},  # an id without result (the connect was answered already)
        {"push": "message", "epoch": "e1"},  # no offset
        {"push": "reset", "stream": INBOX},
        "[1, 2]",
        "not json",
        good,
    ]
    caplog.set_level(logging.WARNING, "hubbub.hub.client")
    async with odd_hub(pushes) as port, HubClient(f"ws://127.0.0.1:{port}/", name="ann") as client:
        push = await asyncio.wait_for(client.recv(), 5)
        assert (push.kind, push.data, push.offset) == ("message", "ok", 1)
        assert await client.ping() == 1  # the reader still answers requests
        assert client.state is State.LIVE
    assert any("malformed" in r.getMessage() for r in caplog.records)


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with start_hub("127.0.0.1", 0, secret=SECRET, insecure_dev_mode=True) as running:
        yield running


async def test_a_token_function_refused_again_and_again_gives_up(hub: Hub) -> None:
    calls = 0

    def token() -> str:
        nonlocal calls
        calls += 1
        return "not-a-jwt"

    log = StateLog()
    client = HubClient(f"ws://127.0.0.1:{hub.port}/", token=token, backoff=FAST, on_state=log)
    with pytest.raises(HubError) as caught:
        await asyncio.wait_for(client.start(), 10)
    assert caught.value.code == 200
    assert calls == client.max_token_refusals == 3
    assert client.state is State.CLOSED
    assert all(isinstance(error, HubError) for _, error in log.calls[1:])


async def test_a_token_function_that_recovers_is_retried(hub: Hub) -> None:
    tokens = iter(["not-a-jwt", "still-not", mint_token("ann", SECRET, 3600)])
    client = HubClient(f"ws://127.0.0.1:{hub.port}/", token=lambda: next(tokens), backoff=FAST)
    async with asyncio.timeout(10):
        result = await client.start()
    assert result["user"] == "ann"
    assert client.last_error is None
    await client.close()


async def test_reconnections_count_only_successful_ones(hub: Hub) -> None:
    async with HubClient(f"ws://127.0.0.1:{hub.port}/", name="ann", backoff=FAST) as client:
        for cut in range(1, 3):
            for conn in hub.server.connections:
                conn.transport.abort()
            await asyncio.wait_for(client.wait_state(State.RECONNECTING), 5)
            assert isinstance(client.last_error, Exception)
            await asyncio.wait_for(client.wait_live(), 5)
            assert client.reconnections == cut
            assert client.last_error is None


async def test_close_flushes_pending_acks(hub: Hub) -> None:
    uri = f"ws://127.0.0.1:{hub.port}/"
    async with HubClient(uri, name="bob") as bob:
        await bob.send(["ann"], "one")
        await bob.send(["ann"], "two")
    ann = HubClient(uri, name="ann", auto_ack=False)
    first = await ann.start()
    assert [m["data"] for m in first["inbox"]["messages"]] == ["one", "two"]
    ann.ack(first["inbox"]["messages"][-1]["offset"])
    await ann.close()  # right after ack(): the ack must still reach the hub
    async with HubClient(uri, name="ann") as again:
        inbox = again.connect_result["inbox"] if again.connect_result else {}
        assert (inbox["acked"], inbox["messages"]) == (2, [])
