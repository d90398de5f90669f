"""Fuzz target for the hub's request handling: any text a client sends, whatever state it is in.

:func:`fuzz_hub_request` feeds one input, as the text of a WebSocket message,
to a :class:`~hubbub.hub.core.node.Node` (memory broker, I/O-free, driven without an
event loop) from a session that may or may not have connected, and checks what
the hub promises (``docs/protocol.md``, ``docs/security.md``):

* :meth:`Node.handle` never raises;
* the request gets exactly one reply, carrying its ``id`` (or ``null`` when the
  id could not be read), with ``result`` or an ``error`` whose code is in the
  documented table;
* everything the hub sends is strict JSON that encodes to UTF-8 (a text frame
  any client can read);
* the other sessions are unaffected: after each input, an observer subscribed
  to a channel still gets a publication pushed, a direct event, and its own
  requests answered.

With bit 1 of the first byte set, the rest is a *binary* message of a
``hubbub.msgpack.v1`` session (:func:`check_hub_msgpack`, through
:func:`hubbub.hub.core.binary.handle_binary` as the servers call it): the same
promises, the reply's ``id`` being the request's when it decodes to a valid
one, and everything the hub sends packing into MessagePack that unpacks.

The node, its sessions and the broker live across inputs (a fuzzer finds bugs
in the state one input leaves for the next), re-created every
:data:`RESET_EVERY` inputs so that memory stays bounded.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any

from hubbub.hub import (
    Authenticator,
    HubConfig,
    HubMetrics,
    MemoryBroker,
    NamespaceRules,
    Node,
    StreamLimits,
)
from hubbub.hub.core import binary
from hubbub.hub.core.protocol import ErrorCode

__all__ = ["InvariantError", "check_hub_msgpack", "check_hub_text", "fuzz_hub_request", "hub_seeds"]

RESET_EVERY = 2000
CODES = {int(code) for code in ErrorCode}


class InvariantError(AssertionError):
    """The hub broke a promise."""


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits for I/O (the memory broker), without a loop."""
    try:
        while True:
            if coro.send(None) is not None:
                raise InvariantError("the node waited on a future with the memory broker")
    except StopIteration as stop:
        return stop.value


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class _Peer:
    def __init__(self, node: Node) -> None:
        self.out: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.session = node.open_session(self.out.append, self._close)

    def _close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def take(self) -> list[Any]:
        messages = []
        for text in self.out:
            try:
                text.encode("utf-8")
                messages.append(json.loads(text, parse_constant=_no_constant))
            except (UnicodeError, ValueError) as exc:
                raise InvariantError(
                    f"the hub sent what no client can read: {text[:200]!r}"
                ) from exc
        self.out.clear()
        return messages


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


class _World:
    def __init__(self) -> None:
        self.clock = _Clock()
        self.inputs = 0
        namespaces = {
            "": NamespaceRules(),
            "chat": NamespaceRules(history=StreamLimits(5, 60.0), recover_max=3),
            "priv": NamespaceRules(subscribe="private"),
            "quiet": NamespaceRules(
                presence=False, join_leave=False, history=StreamLimits(0, None)
            ),
        }
        config = HubConfig(namespaces=namespaces, command_rate=1e9, command_burst=1e9)
        auth = Authenticator(secret="s" * 32, insecure_dev_mode=True, clock=self.clock)
        self.node = Node(
            MemoryBroker(clock=self.clock), auth, config, clock=self.clock, metrics=HubMetrics()
        )
        self.observer = _Peer(self.node)
        self.handle(self.observer, '{"id":1,"method":"connect","params":{"name":"observer"}}')
        self.handle(self.observer, '{"id":2,"method":"subscribe","params":{"channel":"room"}}')
        self.observer.take()
        self.fuzzed = self.new_fuzzed(connected=False)
        self.serial = 0

    def new_fuzzed(self, *, connected: bool) -> _Peer:
        peer = _Peer(self.node)
        if connected:
            self.handle(peer, '{"id":1,"method":"connect","params":{"name":"fuzz"}}')
            # A member of the observer's channel: what it publishes there
            # reaches the observer.
            self.handle(peer, '{"id":2,"method":"subscribe","params":{"channel":"room"}}')
            peer.take()
        return peer

    def handle(self, peer: _Peer, text: str | bytes, *, packed: bool = False) -> None:
        try:
            if packed:
                run(binary.handle_binary(self.node, peer.session, text))
            else:
                run(self.node.handle(peer.session, text))
        except InvariantError:
            raise
        except BaseException as exc:
            raise InvariantError(f"Node.handle raised {exc!r}") from exc


_world: _World | None = None


def _reply_of(messages: list[Any], text: str) -> Any:
    replies = [m for m in messages if isinstance(m, dict) and ("result" in m or "error" in m)]
    if len(replies) != 1:
        raise InvariantError(f"{len(replies)} replies to {text[:200]!r}: {replies[:3]}")
    reply = replies[0]
    if "error" in reply:
        code = reply["error"].get("code")
        if code not in CODES or not isinstance(reply["error"].get("message"), str):
            raise InvariantError(f"undocumented error {reply['error']!r}")
    return reply


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("out of range")
    return value


def _expected_id(text: str) -> Any:
    """The id the reply must carry: ``None`` unless the text is strict JSON with a valid id."""
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict):
        req_id = obj.get("id")
        if type(req_id) is int and 1 <= req_id <= 2**53 - 1:
            return req_id
    return None


def fuzz_hub_request(data: bytes) -> None:
    """Feed one input to the hub and check its promises (see the module docstring).

    The first byte's bit 0 says whether the fuzzed session has connected; the
    rest is the text of the message, or with bit 1 set a binary message of a
    ``hubbub.msgpack.v1`` session.
    """
    if not data:
        return
    if data[0] & 2:
        check_hub_msgpack(data[1:4097], connected=bool(data[0] & 1))
        return
    # A WebSocket text message is valid UTF-8; anything else is the fuzzer's
    # way to reach the same text (latin-1 maps every byte to a character).
    try:
        text = data[1:].decode("utf-8")
    except UnicodeDecodeError:
        text = data[1:].decode("latin-1")
    check_hub_text(text[:4096], connected=bool(data[0] & 1))


def check_hub_text(text: str, *, connected: bool) -> None:
    """Send ``text`` from a (connected or not) session; check the reply and the observer."""
    _check_request(text, _expected_id(text), connected=connected, packed=False)


def check_hub_msgpack(raw: bytes, *, connected: bool) -> None:
    """:func:`check_hub_text` for a binary message of a ``hubbub.msgpack.v1`` session."""
    text = binary.request_text(raw, 10**9)  # what the node is handed, if it decodes
    expected = _expected_id(text) if isinstance(text, str) else None
    _check_request(raw, expected, connected=connected, packed=True)


def _check_request(
    message: str | bytes, expected_id: Any, *, connected: bool, packed: bool
) -> None:
    text = message if isinstance(message, str) else repr(message)
    global _world
    if _world is None or _world.inputs >= RESET_EVERY:
        _world = _World()
    world = _world
    world.inputs += 1
    world.clock.now += 0.25  # token expiries, buckets, history ages move on
    if connected and world.fuzzed.session.user is None and world.fuzzed.closed is None:
        world.fuzzed = world.new_fuzzed(connected=True)
    if world.fuzzed.closed is not None:  # 4008 after too many rejected requests
        world.fuzzed = world.new_fuzzed(connected=connected)
    fuzzed = world.fuzzed
    world.handle(fuzzed, message, packed=packed)
    if packed:
        for out in fuzzed.out:  # what a msgpack session is sent, packed and read back
            try:
                binary.unpack(binary.MsgpackEncoder().pack_text(out))
            except Exception as exc:
                raise InvariantError(f"no MessagePack for {out[:200]!r}: {exc!r}") from exc
    if fuzzed.closed is None:
        reply = _reply_of(fuzzed.take(), text)
        # Only a message over the size limit is refused unread, with id null.
        too_large = reply.get("error", {}).get("code") == int(ErrorCode.MESSAGE_TOO_LARGE)
        if reply.get("id") != expected_id and not (too_large and reply["id"] is None):
            raise InvariantError(f"reply {reply!r} does not carry the id of {text[:200]!r}")
    else:
        fuzzed.take()
    check_observer(world, text)


def check_observer(world: _World, text: str) -> None:
    """The observer still gets a publication, a direct event, and its ping answered."""
    world.serial += 1
    serial = world.serial
    run(world.node.publish("room", {"serial": serial}))
    run(world.node.send(["observer"], serial))
    observer = world.observer
    world.handle(observer, f'{{"id":{serial + 10},"method":"ping"}}')
    got = observer.take()
    pubs = [m for m in got if m.get("push") == "pub" and m.get("channel") == "room"]
    if not any(m["data"] == {"serial": serial} for m in pubs):
        raise InvariantError(f"the observer missed publication {serial} after {text[:200]!r}")
    if not any(m.get("push") == "message" and m.get("data") == serial for m in got):
        raise InvariantError(f"the observer missed direct event {serial} after {text[:200]!r}")
    if not any(m.get("id") == serial + 10 and "result" in m for m in got):
        raise InvariantError(f"the observer's ping went unanswered after {text[:200]!r}")
    if observer.closed is not None:
        raise InvariantError(f"the observer was closed {observer.closed} after {text[:200]!r}")


def hub_seeds() -> list[bytes]:
    """One valid request of each method, unconnected (mode 0) and connected (mode 1)."""
    requests = [
        {"method": "connect", "params": {"name": "fuzz", "tick": True}},
        {"method": "connect", "params": {"token": "a.b.c"}},
        {"method": "refresh", "params": {"token": "a.b.c"}},
        {
            "method": "subscribe",
            "params": {"channel": "chat:x", "since": {"offset": 0, "epoch": "e"}},
        },
        {"method": "subscribe", "params": {"channel": "priv:x", "token": "a.b.c"}},
        {"method": "unsubscribe", "params": {"channel": "chat:x"}},
        {"method": "publish", "params": {"channel": "room", "data": {"a": [1, 2.5, "é", None]}}},
        {"method": "publish", "params": {"channel": "chat:x", "data": "\ud83d\ude00"}},
        {"method": "send", "params": {"to": ["observer", "x"], "data": "hi"}},
        {"method": "presence", "params": {"channel": "room"}},
        {"method": "presence_stats", "params": {"channel": "room"}},
        {"method": "online", "params": {"users": ["observer"]}},
        {"method": "history", "params": {"stream": "chat:x", "limit": 3}},
        {"method": "history", "params": {"stream": "$inbox", "since": {"offset": 0, "epoch": "e"}}},
        {"method": "ack", "params": {"stream": "$inbox", "offset": 0, "epoch": "e"}},
        {"method": "ping"},
    ]
    seeds = []
    for n, request in enumerate(requests, start=1):
        text = json.dumps({"id": n, **request}, ensure_ascii=n % 2 == 0).encode()
        seeds += [b"\x00" + text, b"\x01" + text]
    seeds.append(b'\x01{"id":7,"method":"publish","params":{"channel":"room","data":"\\ud800"}}')
    return seeds
