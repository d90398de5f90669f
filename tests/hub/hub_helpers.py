"""Helpers for the hub tests: a fake clock, in-memory clients, the test configuration.

A :class:`Client` drives a real :class:`~hubbub.hub.core.node.Node` exactly as the
asyncio adapter does (``open_session`` with ``send``/``close`` callables, then
``handle`` per message, ``close_session`` at the end), and records every
message the node sends, decoded from the wire JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import msgpack

from hubbub.asyncio.client import ClientConnection
from hubbub.hub import HubConfig, Identity, NamespaceRules, Node, StreamLimits

SECRET = "test-secret-of-at-least-32-bytes-long!!"


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Client:
    """An in-memory connection to a node."""

    def __init__(
        self, node: Node, conn_id: str | None = None, identity: Identity | None = None
    ) -> None:
        self.node = node
        self.raw: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.session = node.open_session(self._record, self._close, conn_id, identity)
        self._ids = itertools.count(1)
        self._seen = 0

    def _record(self, text: str) -> None:
        self.raw.append(text)

    def _close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(text) for text in self.raw]

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a request; return its reply (asserting there is exactly one)."""
        req_id = next(self._ids)
        start = len(self.raw)
        await self.node.handle(
            self.session, json.dumps({"id": req_id, "method": method, "params": params})
        )
        replies = [m for m in map(json.loads, self.raw[start:]) if m.get("id") == req_id]
        assert len(replies) == 1, replies
        return replies[0]

    async def ok(self, method: str, **params: Any) -> Any:
        reply = await self.call(method, **params)
        assert "error" not in reply, reply
        return reply["result"]

    async def error(self, method: str, **params: Any) -> int:
        reply = await self.call(method, **params)
        assert "result" not in reply, reply
        return int(reply["error"]["code"])

    def pushes(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every push received so far (of one kind, if given)."""
        return [m for m in self.messages if "push" in m and kind in (None, m["push"])]

    def take(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Pushes received since the previous ``take`` (of one kind, if given)."""
        new = [json.loads(t) for t in self.raw[self._seen :]]
        self._seen = len(self.raw)
        return [m for m in new if "push" in m and kind in (None, m["push"])]

    async def leave(self) -> None:
        await self.node.close_session(self.session)


def hub_config(**overrides: Any) -> HubConfig:
    """Namespaces used by the tests, plus any HubConfig overrides."""
    namespaces = {
        "": NamespaceRules(),
        "chat": NamespaceRules(history=StreamLimits(5, 60.0), recover_max=3),
        "open": NamespaceRules(publish="all"),
        "news": NamespaceRules(publish="none"),
        "priv": NamespaceRules(subscribe="private"),
        "quiet": NamespaceRules(presence=False, join_leave=False, history=StreamLimits(0, None)),
    }
    return HubConfig(**{"namespaces": namespaces, **overrides})


class WireClient:
    """A real WebSocket client speaking hubbub.json.v1, or hubbub.msgpack.v1 (``binary``).

    It checks the frame type of everything it reads: text frames on JSON,
    binary frames on MessagePack (docs/protocol.md section 11.2).
    """

    def __init__(self, ws: ClientConnection, *, binary: bool = False) -> None:
        self.ws = ws
        self.binary = binary
        self.ids = 0
        self.pushes: list[dict[str, Any]] = []

    async def read(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), 5)
        if self.binary:
            assert isinstance(raw, bytes), raw
            message: dict[str, Any] = msgpack.unpackb(raw)
        else:
            assert isinstance(raw, str), raw
            message = json.loads(raw)
        return message

    async def send_raw(self, raw: str | bytes) -> dict[str, Any]:
        """Send ``raw`` as it is and read the next message."""
        await self.ws.send(raw)
        return await self.read()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        request = {"id": self.ids, "method": method, "params": params}
        await self.ws.send(msgpack.packb(request) if self.binary else json.dumps(request))
        while True:
            message = await self.read()
            if message.get("id") == self.ids:
                return message
            self.pushes.append(message)

    async def ok(self, method: str, **params: Any) -> Any:
        reply = await self.call(method, **params)
        assert "result" in reply, reply
        return reply["result"]

    async def push(self, kind: str) -> dict[str, Any]:
        for i, message in enumerate(self.pushes):
            if message.get("push") == kind:
                return self.pushes.pop(i)
        while True:
            message = await self.read()
            if message.get("push") == kind:
                return message
            self.pushes.append(message)
