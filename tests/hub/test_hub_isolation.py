"""Delivery to one session cannot break another's, whatever goes wrong (issue 12, finding 3)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from hub_helpers import Client

from hubbub.hub import Node


class BrokenClient(Client):
    """A client whose adapter ``send`` raises once ``broken`` is set."""

    broken = False

    def _record(self, text: str) -> None:
        if self.broken:
            raise RuntimeError("the adapter failed")
        super()._record(text)


async def test_a_failing_recipient_is_closed_and_the_others_still_get_pushes(
    node: Node, connect: Callable[..., Awaitable[Client]], token: Callable[..., str]
) -> None:
    alice = await connect("alice")
    carol = await connect("carol")
    bob = BrokenClient(node)
    await bob.ok("connect", token=token("bob"))
    for client in (alice, bob, carol):
        await client.ok("subscribe", channel="room")
    bob.broken = True
    for n in range(3):
        await alice.ok("publish", channel="room", data=n)  # the publisher is answered
    assert [m["data"] for m in carol.take("pub")] == [0, 1, 2]
    assert [m["data"] for m in alice.take("pub")] == [0, 1, 2]
    # The failing session is closed for real (its client reconnects and
    # recovers), not left open, online and silently skipped.
    assert bob.closed == (1011, "internal error")  # RFC 6455 section 7.4.1
    assert b"hubbub_delivery_failures_total 1.0" in node.metrics.render()
    await bob.leave()
    presence = await alice.ok("presence", channel="room")
    assert sorted(presence["users"]) == ["alice", "carol"]
    # Direct events too.
    await alice.ok("send", to=["bob", "carol"], data="hi")
    assert [m["data"] for m in carol.take("message")] == ["hi"]


async def test_a_failing_recipient_of_a_direct_message_is_closed(
    node: Node, connect: Callable[..., Awaitable[Client]], token: Callable[..., str]
) -> None:
    alice = await connect("alice")
    bob = BrokenClient(node)
    await bob.ok("connect", token=token("bob"))
    bob.broken = True
    # The sender is answered; the recipient whose send raised is closed (1011).
    result = await alice.ok("send", to=["bob"], data="hi")
    assert result["results"]["bob"]["status"] == "live"
    assert bob.closed == (1011, "internal error")
    assert b"hubbub_delivery_failures_total 1.0" in node.metrics.render()


async def test_server_api_data_with_a_lone_surrogate_is_delivered_escaped(
    node: Node, connect: Callable[..., Awaitable[Client]]
) -> None:
    # Requests cannot carry a lone surrogate any more; the server's own API
    # can. The push must still be a UTF-8 text frame, for everyone.
    alice = await connect("alice")
    await alice.ok("subscribe", channel="room")
    await node.publish("room", "\ud800")
    await node.send(["dave"], {"k": "\udfff"})
    (push,) = alice.take("pub")
    assert push["data"] == "\ud800"
    for text in alice.raw:
        text.encode("utf-8")  # would raise on an unescaped surrogate
    dave = await connect("dave")  # the inbox entry does not poison the connect
    (reply,) = [json.loads(t) for t in dave.raw if '"id":1' in t]
    assert reply["result"]["inbox"]["messages"][0]["data"] == {"k": "\udfff"}


async def test_an_inbox_entry_that_cannot_be_encoded_is_left_out_of_connect(
    node: Node, connect: Callable[..., Awaitable[Client]]
) -> None:
    await node.send(["erin"], "fine")
    await node.send(["erin"], {1, 2})  # not JSON: only the Python API could store it
    await node.send(["erin"], "also fine")
    erin = await connect("erin")
    reply = json.loads(erin.raw[0])
    assert [m["data"] for m in reply["result"]["inbox"]["messages"]] == ["fine", "also fine"]
    assert await erin.ok("ping")  # and the session works
