"""hubbub.msgpack.v1: the codec, the hub over real sockets with both encodings, the SDK."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hub_helpers import WireClient
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.asyncio import connect
from hubbub.exceptions import InvalidStatus, MissingExtra
from hubbub.hub.client import HubClient
from hubbub.hub.core import binary
from hubbub.hub.core import protocol as p
from hubbub.hub.core.binary import MSGPACK_SUBPROTOCOL, InvalidMessage
from hubbub.hub.server import Hub, start_hub

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzzing"))
import hub_targets

# --- the codec ---------------------------------------------------------------

# Every value JSON represents and the hub relays: no lone surrogates (RFC 8259
# section 8.2 text the hub refuses), finite floats, integers in MessagePack's
# range (beyond it: test_integers_beyond_msgpack_go_out_as_floats).
json_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


def _json_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function: Hypothesis reads a lambda's source to check that it
    # uses its argument, which can fail for a lambda split over lines.
    return st.lists(children, max_size=5) | st.dictionaries(json_text, children, max_size=5)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | json_text,
    _json_containers,
    max_leaves=30,
)


@given(json_values)
def test_round_trip(value: Any) -> None:
    assert binary.unpack(binary.pack(value)) == value
    # What a msgpack session receives: the node's JSON text, packed.
    encoder = binary.MsgpackEncoder()
    assert binary.unpack(encoder.pack_text(p.encode(value))) == value
    # And what a msgpack request hands the node: the same JSON value.
    text = binary.request_text(binary.pack({"id": 1, "value": value}), 10**9)
    assert isinstance(text, str)
    assert json.loads(text) == {"id": 1, "value": value}


@given(st.integers(2**64, 2**80) | st.integers(-(2**80), -(2**63) - 1))
def test_integers_beyond_msgpack_go_out_as_floats(value: int) -> None:
    assert binary.unpack(binary.pack({"n": [value]})) == {"n": [float(value)]}


def test_encoder_packs_one_text_object_once() -> None:
    encoder = binary.MsgpackEncoder()
    text = p.encode_push("pub", {"channel": "c", "data": "x"})
    first = encoder.pack_text(text)
    assert encoder.pack_text(text) is first
    other = encoder.pack_text(p.encode_push("pub", {"channel": "c", "data": "y"}))
    assert other is not first
    assert msgpack.unpackb(other)["data"] == "y"


def _nested(depth: int) -> Any:
    """``depth`` arrays, one in the other (the outermost is level 1, as in JSON)."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


REFUSED = [
    (b"\xc1", "message is not valid MessagePack"),  # a never-used byte
    (b"\x92\x01", "message is not valid MessagePack"),  # truncated
    (msgpack.packb(1) + msgpack.packb(2), "message is not valid MessagePack"),  # two values
    (b"\xa2\xed\xa0", "message is not valid MessagePack"),  # str not UTF-8 (a surrogate)
    (msgpack.packb(msgpack.ExtType(5, b"x")), "MessagePack extension types are not supported"),
    (msgpack.packb(msgpack.Timestamp(1)), "MessagePack extension types are not supported"),
    (msgpack.packb({1: "a"}), "map keys must be strings"),
    (msgpack.packb({b"k": "a"}, use_bin_type=True), "map keys must be strings"),
    (msgpack.packb({"data": b"\x00"}, use_bin_type=True), "bin values are not supported"),
    (msgpack.packb({"data": float("nan")}), "NaN and infinity are not supported"),
    (msgpack.packb({"data": float("-inf")}), "NaN and infinity are not supported"),
    (msgpack.packb(_nested(p.MAX_DEPTH + 1)), "nest more than 64 deep"),
]


@pytest.mark.parametrize(("raw", "message"), REFUSED)
def test_unpack_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidMessage, match=message):
        binary.unpack(raw)
    refused = binary.request_text(raw, 10**6)
    assert isinstance(refused, p.Rejected)
    assert refused.code == p.ErrorCode.BAD_REQUEST
    assert message in refused.message


def test_nesting_as_deep_as_json_is_accepted() -> None:
    assert binary.unpack(msgpack.packb(_nested(p.MAX_DEPTH))) == _nested(p.MAX_DEPTH)


def _msgpack_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.text(max_size=5) | st.integers(0, 9)
    return st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)


# Anything MessagePack can carry, the types JSON lacks included.
msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4)),
    _msgpack_containers,
    max_leaves=20,
)


@given(st.binary(max_size=200) | msgpack_values.map(msgpack.packb))
def test_request_text_never_raises(raw: bytes) -> None:
    """Whatever a client sends: valid JSON for the node, or a documented refusal."""
    text = binary.request_text(raw, 10**6)
    if isinstance(text, p.Rejected):
        assert text.id is None
        assert text.code == p.ErrorCode.BAD_REQUEST
    else:
        p.decode(text)  # strict JSON the node takes (raises otherwise)
        p.parse_request(text)  # never raises


METHODS = ["connect", "subscribe", "publish", "send", "history", "ack", "ping", "online", "fly"]
FIELDS = ["name", "channel", "data", "to", "users", "stream", "since", "offset", "limit"]
msgpack_requests = st.fixed_dictionaries(
    {
        "id": st.integers(0, 2**53) | msgpack_values,
        "method": st.sampled_from(METHODS) | msgpack_values,
        "params": st.dictionaries(
            st.sampled_from(FIELDS), st.sampled_from(["room", "observer"]) | msgpack_values
        ),
    }
).map(msgpack.packb)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(msgpack_requests | st.binary(max_size=50), min_size=1, max_size=6), st.booleans())
def test_any_msgpack_request_gets_one_documented_reply_and_harms_no_one(
    messages: list[bytes], connected: bool
) -> None:
    """The hub fuzz target's promises (fuzzing/hub_targets.py) for msgpack sessions."""
    for raw in messages:
        hub_targets.check_hub_msgpack(raw, connected=connected)


def test_request_text_limits_and_frame_type() -> None:
    too_big = binary.request_text(msgpack.packb({"id": 1, "data": "x" * 100}), 50)
    assert isinstance(too_big, p.Rejected)
    assert too_big.code == p.ErrorCode.MESSAGE_TOO_LARGE
    text_frame = binary.request_text('{"id": 1}', 50)
    assert isinstance(text_frame, p.Rejected)
    assert text_frame.code == p.ErrorCode.BAD_REQUEST
    assert "text messages are not supported" in text_frame.message


# --- the hub over real sockets ----------------------------------------------------


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with start_hub("127.0.0.1", 0, insecure_dev_mode=True) as running:
        yield running


async def open_wire(hub: Hub, subprotocol: str, name: str | None) -> WireClient:
    """A raw client of either encoding, connected as ``name`` (unless None)."""
    ws = await connect(f"ws://127.0.0.1:{hub.port}/", subprotocols=[subprotocol])
    assert ws.subprotocol == subprotocol
    client = WireClient(ws, binary=subprotocol == MSGPACK_SUBPROTOCOL)
    if name is not None:
        await client.ok("connect", name=name)
    return client


DATA = {"text": "héllo", "n": [1, -2, 2.5, None, True], "nested": {"k": {}}}


async def test_one_channel_two_encodings(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    packed: list[Any] = []
    real_pack = binary.pack
    monkeypatch.setattr(binary, "pack", lambda value: packed.append(value) or real_pack(value))
    clients = [
        await open_wire(hub, MSGPACK_SUBPROTOCOL, "m1"),
        await open_wire(hub, MSGPACK_SUBPROTOCOL, "m2"),
        await open_wire(hub, MSGPACK_SUBPROTOCOL, "m3"),
        await open_wire(hub, p.SUBPROTOCOL, "j1"),
        await open_wire(hub, p.SUBPROTOCOL, "j2"),
    ]
    for client in clients:
        await client.ok("subscribe", channel="room")
    packed.clear()
    result = await clients[0].ok("publish", channel="room", data=DATA)
    for client in clients:
        pub = await client.push("pub")
        assert pub["data"] == DATA
        assert pub["offset"] == result["offset"]
        assert pub["from"] == "m1"
    # The publication was packed once for its three msgpack recipients (and
    # the publisher's reply once): "encoded once" holds per encoding.
    assert [v.get("push") for v in packed].count("pub") == 1
    result = await clients[3].ok("publish", channel="room", data=[DATA])
    for client in clients:
        assert (await client.push("pub"))["data"] == [DATA]
    for client in clients:
        await client.ws.close()


async def test_direct_events_between_encodings(hub: Hub) -> None:
    alice = await open_wire(hub, MSGPACK_SUBPROTOCOL, "alice")
    bob = await open_wire(hub, p.SUBPROTOCOL, "bob")
    await alice.ok("send", to=["bob"], data=DATA)
    message = await bob.push("message")
    assert message["data"] == DATA
    assert message["from"] == "alice"
    await bob.ok("send", to=["alice"], data={"re": DATA})
    message = await alice.push("message")
    assert message["data"] == {"re": DATA}
    assert message["from"] == "bob"
    history = await alice.ok("history", stream="$inbox")
    assert [entry["data"] for entry in history["publications"]] == [{"re": DATA}]
    await alice.ws.close()
    await bob.ws.close()


@pytest.mark.parametrize(("raw", "message"), REFUSED)
async def test_hub_refuses_bad_msgpack(hub: Hub, raw: bytes, message: str) -> None:
    client = await open_wire(hub, MSGPACK_SUBPROTOCOL, None)
    reply = await client.send_raw(raw)
    assert reply["id"] is None
    assert reply["error"]["code"] == p.ErrorCode.BAD_REQUEST
    assert message in reply["error"]["message"]
    assert await client.ok("ping")  # the session goes on (one strike)
    await client.ws.close()


async def test_hub_refuses_wrong_frame_types_and_sizes(hub: Hub) -> None:
    on_msgpack = await open_wire(hub, MSGPACK_SUBPROTOCOL, "m")
    reply = await on_msgpack.send_raw(json.dumps({"id": 1, "method": "ping"}))
    assert reply["error"]["code"] == p.ErrorCode.BAD_REQUEST
    assert "text messages are not supported" in reply["error"]["message"]
    on_json = await open_wire(hub, p.SUBPROTOCOL, "j")
    reply = await on_json.send_raw(msgpack.packb({"id": 1, "method": "ping"}))
    assert reply["error"]["code"] == p.ErrorCode.BAD_REQUEST
    assert "binary messages are not supported" in reply["error"]["message"]
    limit = hub.node.config.max_request_bytes
    big = msgpack.packb({"id": 9, "method": "publish", "params": {"data": "x" * limit}})
    reply = await on_msgpack.send_raw(big)
    assert reply["error"]["code"] == p.ErrorCode.MESSAGE_TOO_LARGE
    # The data limit is the same for both encodings (measured as JSON).
    data = "x" * (hub.node.config.max_message_bytes + 1)
    await on_msgpack.ok("subscribe", channel="c")
    reply = await on_msgpack.call("publish", channel="c", data=data)
    assert reply["error"]["code"] == p.ErrorCode.MESSAGE_TOO_LARGE
    await on_msgpack.ws.close()
    await on_json.ws.close()


async def test_hub_without_msgpack_offers_json_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # import msgpack now fails
    async with start_hub("127.0.0.1", 0, insecure_dev_mode=True) as running:
        with pytest.raises(InvalidStatus):
            await connect(f"ws://127.0.0.1:{running.port}/", subprotocols=[MSGPACK_SUBPROTOCOL])
        client = await open_wire(running, p.SUBPROTOCOL, "j")
        assert await client.ok("ping")
        await client.ws.close()


# --- the SDK ---------------------------------------------------------------------


async def test_sdk_with_msgpack(hub: Hub) -> None:
    uri = f"ws://127.0.0.1:{hub.port}/"
    async with (
        HubClient(uri, name="alice", encoding="msgpack") as alice,
        HubClient(uri, name="bob") as bob,
    ):
        assert alice.wire.subprotocol == MSGPACK_SUBPROTOCOL
        await alice.subscribe("room")
        await bob.subscribe("room")
        await bob.publish("room", DATA)
        push = await asyncio.wait_for(alice.recv(), 5)
        while push.kind != "pub":
            push = await asyncio.wait_for(alice.recv(), 5)
        assert push.data == DATA
        assert push.sender == "bob"
        await alice.send(["bob"], [DATA])
        push = await asyncio.wait_for(bob.recv(), 5)
        while push.kind != "message":
            push = await asyncio.wait_for(bob.recv(), 5)
        assert push.data == [DATA]
        assert push.sender == "alice"
        assert await alice.online(["bob", "carol"]) == {"bob": True, "carol": False}


def test_sdk_msgpack_needs_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(MissingExtra, match=r"needs the hub extra: pip install 'hubbub\[hub\]'"):
        HubClient("ws://127.0.0.1:1/", name="alice", encoding="msgpack")
    assert HubClient("ws://127.0.0.1:1/", name="alice").wire.subprotocol == p.SUBPROTOCOL
    with pytest.raises(ValueError, match="encoding must be"):
        HubClient("ws://127.0.0.1:1/", name="alice", encoding="cbor")  # type: ignore[arg-type]
