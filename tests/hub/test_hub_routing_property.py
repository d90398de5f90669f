"""Property: a session receives an event only if it is addressed to its user or to a
channel it joined, and then exactly once.

Random sequences of connect / subscribe / unsubscribe / publish / send / disconnect,
over several users, each with several sessions spread over two nodes sharing one
broker, are checked against a model after every step.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hub_helpers import Client, FakeClock, hub_config
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.hub import Authenticator, HubMetrics, MemoryBroker, Node

USERS = ["ann", "bob", "cid", "dee"]
CHANNELS = ["lobby", "room", "open:x", "quiet:y"]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(USERS), st.integers(0, 1)),
        st.tuples(st.just("sub"), st.integers(0, 20), st.sampled_from(CHANNELS)),
        st.tuples(st.just("unsub"), st.integers(0, 20), st.sampled_from(CHANNELS)),
        st.tuples(st.just("pub"), st.integers(0, 20), st.sampled_from(CHANNELS)),
        st.tuples(st.just("server_pub"), st.sampled_from(CHANNELS), st.integers(0, 1)),
        st.tuples(
            st.just("send"),
            st.integers(0, 20),
            st.lists(st.sampled_from([*USERS, "eve"]), min_size=1),
        ),
        st.tuples(st.just("close"), st.integers(0, 20), st.just(0)),
    ),
    max_size=40,
)


class Model:
    def __init__(self) -> None:
        self.clients: list[Client] = []
        self.joined: dict[str, set[str]] = {}  # conn_id -> channels
        self.closed: set[str] = set()
        self.tag = 0

    def live(self) -> list[Client]:
        return [c for c in self.clients if c.session.conn_id not in self.closed]

    def pick(self, index: int) -> Client | None:
        live = self.live()
        return live[index % len(live)] if live else None

    def next_tag(self) -> str:
        self.tag += 1
        return f"t{self.tag}"


def check(model: Model, expect: dict[str, Counter[str]]) -> None:
    """Every live client got exactly the expected tags, and only allowed pushes."""
    for client in model.clients:
        conn = client.session.conn_id
        got: Counter[str] = Counter()
        for push in client.take():
            kind = push["push"]
            assert conn not in model.closed, f"closed {conn} got {push}"
            if kind == "pub":
                assert push["channel"] in model.joined[conn], (conn, push)
                got[push["data"]] += 1
            elif kind == "message":
                got[push["data"]] += 1
            elif kind in ("join", "leave"):
                assert push["channel"] in model.joined[conn], (conn, push)
                assert push["conn_id"] != conn
            else:
                raise AssertionError(f"unexpected push {push}")
        assert got == expect.get(conn, Counter()), (conn, got, expect.get(conn))


initial = st.lists(
    st.tuples(st.just("open"), st.sampled_from(USERS), st.integers(0, 1)), min_size=2, max_size=6
)


@settings(max_examples=150, deadline=None)
@given(initial, ops)
async def test_events_reach_exactly_their_recipients(
    opens: list[tuple[Any, ...]], steps: list[tuple[Any, ...]]
) -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    auth = Authenticator(insecure_dev_mode=True, clock=clock)
    nodes = [Node(broker, auth, hub_config(), clock=clock, metrics=HubMetrics()) for _ in range(2)]
    model = Model()
    for op in opens + steps:
        expect: dict[str, Counter[str]] = {}
        kind = op[0]
        if kind == "open":
            client = Client(nodes[op[2]])
            await client.ok("connect", name=op[1])
            model.clients.append(client)
            model.joined[client.session.conn_id] = set()
        elif kind in ("sub", "unsub", "pub", "send", "close"):
            client = model.pick(op[1])
            if client is None:
                continue
            conn = client.session.conn_id
            if kind == "sub":
                reply = await client.call("subscribe", channel=op[2])
                if "result" in reply:
                    model.joined[conn].add(op[2])
            elif kind == "unsub":
                reply = await client.call("unsubscribe", channel=op[2])
                assert ("result" in reply) == (op[2] in model.joined[conn])
                model.joined[conn].discard(op[2])
            elif kind == "pub":
                tag = model.next_tag()
                reply = await client.call("publish", channel=op[2], data=tag)
                if "result" in reply:
                    expect = expected_for_channel(model, op[2], tag)
            elif kind == "send":
                tag = model.next_tag()
                await client.ok("send", to=op[2], data=tag)
                recipients = set(op[2])
                expect = {
                    c.session.conn_id: Counter([tag])
                    for c in model.live()
                    if c.session.user in recipients
                }
            else:
                await client.leave()
                model.closed.add(conn)
        elif kind == "server_pub":
            tag = model.next_tag()
            await nodes[op[2]].publish(op[1], tag)
            expect = expected_for_channel(model, op[1], tag)
        check(model, expect)


def expected_for_channel(model: Model, channel: str, tag: str) -> dict[str, Counter[str]]:
    return {
        c.session.conn_id: Counter([tag])
        for c in model.live()
        if channel in model.joined[c.session.conn_id]
    }
