"""Every program in examples/, started as a subprocess and driven by real clients."""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import pytest

from hubbub.asyncio import ClientConnection, connect

Run = Callable[..., AbstractAsyncContextManager[int]]
RECV_TIMEOUT = 20.0


def fetch(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        conn.close()


async def recv_json(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))


async def recv_type(ws: ClientConnection, kind: str) -> Any:
    """The next message of type ``kind``, skipping others (presence updates)."""
    while True:
        message = await recv_json(ws)
        if message["type"] == kind:
            return message


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("clock", "hubbub clock"),
        ("chat", "hubbub chat by ID"),
        ("dashboard", "hubbub dashboard"),
        ("ticker", "hubbub ticker"),
        ("collab", "hubbub collaborative text"),
    ],
)
async def test_serves_its_page(run_example: Run, name: str, title: str) -> None:
    async with run_example(name) as port:
        status, content_type, body = await asyncio.to_thread(fetch, port, "/")
        assert status == 200
        assert content_type == "text/html; charset=utf-8"
        assert f"<title>{title}</title>" in body
        assert "new WebSocket(" in body
        status, _, _ = await asyncio.to_thread(fetch, port, "/nothing-here")
        assert status == 404


async def test_clock_pushes_the_time(run_example: Run) -> None:
    async with run_example("clock") as port, connect(f"ws://127.0.0.1:{port}/") as ws:
        first = datetime.datetime.fromisoformat(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
        second = datetime.datetime.fromisoformat(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT))
        assert first.tzinfo is not None
        now = datetime.datetime.now(datetime.UTC)
        assert abs((now - first).total_seconds()) < 3600  # the real time, in UTC
        assert second > first  # pushed again, a second later


async def test_chat_delivers_only_to_the_recipient(run_example: Run) -> None:
    async with run_example("chat") as port, AsyncExitStack() as stack:
        a, b, c = [
            await stack.enter_async_context(connect(f"ws://127.0.0.1:{port}/")) for _ in "abc"
        ]
        ids = [(await recv_type(ws, "welcome"))["id"] for ws in (a, b, c)]
        assert len(set(ids)) == 3
        id_a, id_b, id_c = ids
        await a.send(json.dumps({"to": id_b, "text": "for b only"}))
        assert await recv_type(b, "message") == {
            "type": "message",
            "from": id_a,
            "text": "for b only",
        }
        # a's message was routed before b's (b received it): if c had got it too, it
        # would come before this one.
        await b.send(json.dumps({"to": id_c, "text": "for c"}))
        assert await recv_type(c, "message") == {"type": "message", "from": id_b, "text": "for c"}
        await a.send(json.dumps({"to": 999, "text": "nobody"}))
        assert await recv_type(a, "error") == {"type": "error", "error": "999 is not online"}
        await a.send("not json")
        assert (await recv_type(a, "error"))["error"] == "send {to, text}"


async def test_chat_announces_who_is_online(run_example: Run) -> None:
    async with run_example("chat") as port, connect(f"ws://127.0.0.1:{port}/") as a:
        id_a = (await recv_type(a, "welcome"))["id"]
        assert (await recv_type(a, "peers"))["ids"] == [id_a]
        async with connect(f"ws://127.0.0.1:{port}/") as b:
            id_b = (await recv_type(b, "welcome"))["id"]
            assert (await recv_type(a, "peers"))["ids"] == sorted([id_a, id_b])
        assert (await recv_type(a, "peers"))["ids"] == [id_a]


async def test_dashboard_pushes_metrics(run_example: Run) -> None:
    async with (
        run_example("dashboard", "--interval", "0.2") as port,
        connect(f"ws://127.0.0.1:{port}/") as a,
        connect(f"ws://127.0.0.1:{port}/") as b,
    ):
        for _ in range(3):
            await a.send("seen")
        # Snapshots sent before b connected or before the server read a's messages
        # count less; within a bounded number of them both show up.
        for _ in range(100):
            snapshot = await recv_json(b)
            if snapshot["connections"] == 2 and snapshot["messages_received"] == 3:
                break
        else:
            pytest.fail(f"last snapshot: {snapshot}")
        assert snapshot["peak_memory_mib"] > 1
        assert isinstance(snapshot["accelerated"], bool)
        assert snapshot["loop_lag_ms"] >= 0


async def test_ticker_broadcasts_the_same_ticks_to_many_clients(run_example: Run) -> None:
    async with run_example("ticker", "--interval", "0.05") as port, AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(connect(f"ws://127.0.0.1:{port}/")) for _ in range(50)
        ]
        # Clients joined at different ticks: wait until every one has seen tick N, where N
        # is past the first tick the last client got; from then on all see the same ticks.
        first = [await recv_json(ws) for ws in clients]
        target = max(tick["seq"] for tick in first) + 1
        seen: list[dict[str, Any]] = []
        for ws, earliest in zip(clients, first, strict=True):
            tick = earliest
            while tick["seq"] < target:
                tick = await recv_json(ws)
            seen.append(tick)
        assert all(tick == seen[0] for tick in seen)  # one tick, identical everywhere
        assert seen[0]["symbol"] in {"HUBB", "WSKT", "DFLT"}
        assert seen[0]["price"] > 0


async def test_collab_applies_edits_and_refuses_stale_ones(run_example: Run) -> None:
    async with (
        run_example("collab") as port,
        connect(f"ws://127.0.0.1:{port}/") as a,
        connect(f"ws://127.0.0.1:{port}/") as b,
    ):
        assert await recv_json(a) == {"type": "state", "version": 0, "text": ""}
        assert await recv_json(b) == {"type": "state", "version": 0, "text": ""}
        await a.send(json.dumps({"type": "edit", "base": 0, "text": "hello"}))
        expected = {"type": "state", "version": 1, "text": "hello"}
        assert await recv_json(a) == {**expected, "ack": True}  # the editor's acknowledgement
        assert await recv_json(b) == expected
        # b edits from version 0 too: it lost the race and gets the current text back.
        await b.send(json.dumps({"type": "edit", "base": 0, "text": "bye"}))
        assert await recv_json(b) == {**expected, "conflict": True}
        await b.send(json.dumps({"type": "edit", "base": 1, "text": "hello, world"}))
        expected = {"type": "state", "version": 2, "text": "hello, world"}
        assert await recv_json(b) == {**expected, "ack": True}
        assert await recv_json(a) == expected
