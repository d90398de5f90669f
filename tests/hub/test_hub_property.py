"""Property: any JSON in any field of any command gets one documented reply and harms no one.

Issue 12: arbitrary JSON values (lone surrogates, deep nesting, huge numbers,
wrong types) in every field of every command never raise out of the hub,
always get a documented reply carrying the request's id, and never affect
other sessions. The I/O-free node is checked with many examples through the
fuzz target's checks (``fuzzing/hub_targets.py``: one reply, strict UTF-8
JSON out, an observer session still served); a real hub over real sockets with
fewer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hub_helpers import SECRET, hub_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_client import RawClient

from hubbub.hub import mint_token
from hubbub.hub.core.protocol import ErrorCode
from hubbub.hub.server import start_hub

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzzing"))
import hub_targets

EXAMPLES = int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "300"))
CODES = {int(code) for code in ErrorCode}

# The parameters of each command (docs/protocol.md section 3).
COMMAND_FIELDS = {
    "connect": ["name", "tick"],
    "refresh": ["token"],
    "subscribe": ["channel", "since", "token"],
    "unsubscribe": ["channel"],
    "publish": ["channel", "data"],
    "send": ["to", "data"],
    "presence": ["channel"],
    "presence_stats": ["channel"],
    "online": ["users"],
    "history": ["stream", "since", "limit"],
    "ack": ["stream", "offset", "epoch"],
    "ping": [],
}
METHODS = list(COMMAND_FIELDS)
FIELDS = list(dict.fromkeys(f for fields in COMMAND_FIELDS.values() for f in fields))


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, by weight (st.one_of flattens nested unions, skewing them)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


lone_surrogates = st.integers(0xD800, 0xDFFF).map(chr)  # st.characters() never gives them
strings = st.one_of(
    st.text(max_size=12),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=3), lone_surrogates, st.text(max_size=3)),
    st.sampled_from(["room", "chat:x", "priv:x", "$inbox", "observer", "fuzz", "", "a" * 300]),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 2**53 - 1, 2**53, -1, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)


def _nest(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


nested = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(FIELDS) | strings, children, max_size=3)
    ),
    max_leaves=8,
)
deep = st.builds(_nest, st.integers(0, 300), scalars)  # nesting past MAX_DEPTH
json_values = _weighted((2, scalars), (3, nested), (1, deep))
# What each field usually holds, so that requests often get past the first
# checks and reach routing, storage and delivery; any JSON value otherwise.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "token": st.just("a.b.c"),
    "name": st.sampled_from(["fuzz", "observer"]),
    "tick": st.booleans(),
    "channel": st.sampled_from(["room", "room", "chat:x", "priv:x", "quiet:y", "chat:x#fuzz"]),
    "since": st.fixed_dictionaries({"offset": st.integers(0, 5), "epoch": strings}),
    "data": _weighted((1, strings), (1, json_values)),
    "to": st.sampled_from([["observer"], ["fuzz", "observer"], ["nobody"]]),
    "users": st.sampled_from([["observer"], ["fuzz", "nobody"]]),
    "stream": st.sampled_from(["$inbox", "chat:x", "room"]),
    "limit": st.integers(0, 1001),
    "offset": st.integers(-1, 5),
    "epoch": strings,
}


def _value(field: str) -> st.SearchStrategy[Any]:
    return _weighted((2, PLAUSIBLE[field]), (1, json_values))


def params_of(method: str) -> st.SearchStrategy[Any]:
    """Its own fields (each plausible or any JSON), maybe others; or not an object at all."""
    own = COMMAND_FIELDS.get(method, [])
    others = [f for f in FIELDS if f not in own]
    return _weighted(
        (4, st.fixed_dictionaries({f: _value(f) for f in own})),
        (1, st.fixed_dictionaries({}, optional=dict.fromkeys([*own, *others], json_values))),
        (1, json_values),
    )


valid_ids = st.integers(1, 2**53 - 1)
request_ids = _weighted((5, valid_ids), (1, json_values))


@st.composite
def requests(draw: st.DrawFn, *, ascii_only: bool = False) -> str:
    method = draw(_weighted((9, st.sampled_from(METHODS)), (1, strings)))
    obj: dict[str, Any] = {"id": draw(request_ids), "method": method}
    if draw(st.integers(0, 4)):
        obj["params"] = draw(params_of(method))
    if draw(st.integers(0, 9)) == 0:
        obj[draw(strings)] = draw(json_values)  # an unexpected member
    # ensure_ascii: a lone surrogate as a \\uD800 escape, as a client can send
    # it in a UTF-8 frame; otherwise the character itself in the str.
    return json.dumps(obj, ensure_ascii=ascii_only or draw(st.booleans()))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(requests(), min_size=1, max_size=8), st.booleans())
def test_any_json_in_any_field_gets_one_documented_reply_and_harms_no_one(
    texts: list[str], connected: bool
) -> None:
    for text in texts:
        hub_targets.check_hub_text(text, connected=connected)


async def _reply(client: RawClient) -> Any:
    """The next reply (whatever its id), skipping pushes."""
    while True:
        message = await asyncio.wait_for(client.recv_json(), 10)
        if "push" not in message:
            return message


@settings(
    max_examples=int(EXAMPLES / 30) + 1,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(requests(ascii_only=True), min_size=1, max_size=12))
@pytest.mark.slow
async def test_real_hub_same_property_over_sockets(texts: list[str]) -> None:
    async with start_hub(
        "127.0.0.1", 0, secret=SECRET, insecure_dev_mode=True, config=hub_config()
    ) as hub:
        observer = await RawClient.open(hub.port)
        reply = await observer.call(1, "connect", token=mint_token("observer", SECRET, 3600))
        assert "result" in reply
        assert "result" in await observer.call(2, "subscribe", channel="room")
        fuzzed = await RawClient.open(hub.port)
        assert "result" in await fuzzed.call(1, "connect", name="fuzz")
        for serial, text in enumerate(texts, start=3):
            fuzzed.send_text(text)
            reply = await _reply(fuzzed)
            assert set(reply) in ({"id", "result"}, {"id", "error"}), reply
            if "error" in reply:
                assert reply["error"]["code"] in CODES, reply
                assert reply["error"]["code"] != ErrorCode.INTERNAL, (text, reply)
            await hub.node.publish("room", {"serial": serial})
            assert "result" in await observer.call(serial, "ping")
            pubs = [p for p in observer.pushes if p.get("push") == "pub"]
            assert pubs, (text, observer.pushes)
            assert pubs[-1]["data"] == {"serial": serial}, (text, observer.pushes)
        observer.close()
        fuzzed.close()
