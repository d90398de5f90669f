"""Hostile input: whatever a client sends, the node answers with one reply and never raises."""

from __future__ import annotations

import json

from hub_helpers import Client, FakeClock, hub_config
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.hub import Authenticator, HubMetrics, MemoryBroker, Node
from hubbub.hub.core.protocol import ErrorCode

METHODS = [
    "connect",
    "refresh",
    "subscribe",
    "unsubscribe",
    "publish",
    "send",
    "presence",
    "presence_stats",
    "online",
    "history",
    "ack",
    "ping",
    "fly",
]
KEYS = [
    "token",
    "name",
    "tick",
    "channel",
    "since",
    "data",
    "to",
    "users",
    "stream",
    "limit",
    "offset",
    "epoch",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)

requests = st.one_of(
    st.text(max_size=50),
    st.binary(max_size=20),
    st.builds(
        lambda i, m, p: json.dumps({"id": i, "method": m, "params": p}),
        st.one_of(st.integers(1, 50), json_values),
        st.sampled_from(METHODS),
        st.one_of(json_values, st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5)),
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(requests, min_size=1, max_size=15), st.booleans())
async def test_every_message_gets_exactly_one_reply(
    messages: list[str | bytes], login: bool
) -> None:
    clock = FakeClock()
    auth = Authenticator(insecure_dev_mode=True, clock=clock)
    node = Node(
        MemoryBroker(clock=clock),
        auth,
        hub_config(max_strikes=10**6),
        clock=clock,
        metrics=HubMetrics(),
    )
    client = Client(node)
    if login:
        await client.ok("connect", name="fuzz")
        await client.ok("subscribe", channel="lobby")
    for raw in messages:
        start = len(client.raw)
        await node.handle(client.session, raw)
        replies = [m for m in client.messages[start:] if "push" not in m]
        assert len(replies) == 1, (raw, replies)
        reply = replies[0]
        assert set(reply) in ({"id", "result"}, {"id", "error"})
        if "error" in reply:
            code = reply["error"]["code"]
            assert code in {int(c) for c in ErrorCode}
            assert code != ErrorCode.INTERNAL, (raw, reply)
    assert client.closed is None
