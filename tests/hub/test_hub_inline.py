"""Requests run from the read callback (hubbub.hub.server.inline), over real sockets."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hub_helpers import SECRET, WireClient

from hubbub.asyncio import connect
from hubbub.hub import SUBPROTOCOL, MemoryBroker, mint_token
from hubbub.hub.core.streams import ReadResult
from hubbub.hub.server import start_hub


class _WaitingBroker(MemoryBroker):
    """Claims never to wait, but every read waits for a later loop iteration.

    What an inline request that suspends after all looks like: the connection
    must go back to its queue, and the requests after it wait their turn.
    (``send`` and ``publish`` use the synchronous ``publish_now``, which cannot
    wait: ``history`` reads, and ``ack`` reads then stores, do await it.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    async def read(self, stream: str, after: int | None, limit: int) -> ReadResult:
        self.waits += 1
        await asyncio.sleep(0.001)
        return await super().read(stream, after, limit)


async def test_requests_run_in_callback_mode_on_the_memory_broker() -> None:
    async with (
        start_hub("127.0.0.1", 0, secret=SECRET) as hub,
        connect(f"ws://127.0.0.1:{hub.port}/", subprotocols=[SUBPROTOCOL]) as ws,
    ):
        ann = WireClient(ws)
        await ann.ok("connect", token=mint_token("ann", SECRET))
        (server_side,) = hub.server.connections
        assert server_side.on_message is not None  # no task step per request
        assert (await ann.ok("send", to=["ann"], data="to me"))["results"]["ann"]["status"] == (
            "live"
        )
        assert (await ann.push("message"))["data"] == "to me"


async def test_a_request_that_waits_keeps_the_order_of_the_others() -> None:
    broker = _WaitingBroker()
    assert not broker.suspends
    async with (
        start_hub("127.0.0.1", 0, secret=SECRET, broker=broker) as hub,
        connect(f"ws://127.0.0.1:{hub.port}/", subprotocols=[SUBPROTOCOL]) as ws,
    ):
        ann = WireClient(ws)
        await ann.ok("connect", token=mint_token("ann", SECRET))
        waits = broker.waits
        # Sent at once: history requests (which wait in the broker) between
        # sends to oneself (answered without a coroutine) and pings (which do
        # not wait): every reply in the order of the requests, each once.
        methods = [("send", "ping", "history")[i % 3] for i in range(30)]
        for i, method in enumerate(methods, start=10):
            params: dict[str, Any] = {}
            if method == "send":
                params = {"to": ["ann"], "data": i}
            elif method == "history":
                params = {"stream": "$inbox"}
            await ws.send(json.dumps({"id": i, "method": method, "params": params}))
        replies, pushes = [], []
        while len(replies) < len(methods):
            message = await ann.read()
            (replies if "id" in message else pushes).append(message)
        assert [r["id"] for r in replies] == list(range(10, 10 + len(methods)))
        assert all("result" in r for r in replies), replies
        sends = [i for i, m in enumerate(methods, start=10) if m == "send"]
        while len(pushes) < len(sends):
            pushes.append(await ann.read())
        assert [p["data"] for p in pushes] == sends
        # Each history saw exactly the sends before it: nothing overtook it.
        for reply, method in zip(replies, methods, strict=True):
            if method == "history":
                seen = [e["data"] for e in reply["result"]["publications"]]
                assert seen == [i for i in sends if i < reply["id"]]
        assert broker.waits - waits == methods.count("history")
        (server_side,) = hub.server.connections
        assert server_side.on_message is not None  # back in callback mode


async def test_a_client_closing_while_a_request_waits_is_released() -> None:
    broker = _WaitingBroker()
    async with start_hub("127.0.0.1", 0, secret=SECRET, broker=broker) as hub:
        async with connect(f"ws://127.0.0.1:{hub.port}/", subprotocols=[SUBPROTOCOL]) as ws:
            ann = WireClient(ws)
            await ann.ok("connect", token=mint_token("ann", SECRET))
            waits = broker.waits
            for i in range(5):
                request = {"id": 10 + i, "method": "history", "params": {"stream": "$inbox"}}
                await ws.send(json.dumps(request))
                request = {"id": 20 + i, "method": "send", "params": {"to": ["bob"], "data": i}}
                await ws.send(json.dumps(request))
        # Every request sent before the close frame ran (as in queue mode),
        # then the session was forgotten.
        for _ in range(100):
            if not hub.node.sessions:
                break
            await asyncio.sleep(0.01)
        assert not hub.node.sessions
        assert broker.waits - waits == 5
        read = await MemoryBroker.read(broker, "$inbox:bob", 0, 10)
        assert [e.data for e in read.entries] == [0, 1, 2, 3, 4]
