"""What a hub keeps after many distinct users came and went (issue 12, the soak).

A churned connection must leave nothing behind in the node (sessions, users,
channel routing) nor in the broker's presence. What the broker keeps is
bounded and documented (docs/security.md, "Soak"): the streams those users
touched, until their entries age out and they have been idle for the
broker's ``idle_ttl``; then nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hub_helpers import SECRET, FakeClock, hub_config
from raw_client import RawClient, frame

from hubbub.hub import MemoryBroker, mint_token
from hubbub.hub.server import Hub, start_hub

USERS = 40
IDLE_TTL = 100.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def hub(clock: FakeClock) -> AsyncIterator[Hub]:
    broker = MemoryBroker(clock=clock, idle_ttl=IDLE_TTL)
    async with start_hub(
        "127.0.0.1",
        0,
        secret=SECRET,
        broker=broker,
        config=hub_config(),
        tick_interval=0.05,
        close_timeout=1.0,
    ) as running:
        yield running


async def _wait_released(hub: Hub, bound: float = 20.0) -> None:
    """Wait until the node holds no session; fail after ``bound`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while hub.node.sessions or hub.server.connections:
        assert loop.time() < deadline, "a closed connection is still held"
        await asyncio.sleep(0.05)


async def test_distinct_users_churned_leave_only_bounded_streams(
    hub: Hub, clock: FakeClock
) -> None:
    before = hub.node.health()
    for i in range(USERS):
        client = await RawClient.open(hub.port)
        user = f"churn-{i}"
        reply = await client.call(1, "connect", token=mint_token(user, SECRET, 3600))
        assert "result" in reply
        assert "result" in await client.call(2, "subscribe", channel=f"room-{i}")
        assert "result" in await client.call(3, "publish", channel=f"room-{i}", data=i)
        # An inbox entry for a user who never connects: kept up to the inbox bounds.
        assert "result" in await client.call(4, "send", to=[f"away-{i}"], data=i)
        # Half leave cleanly (close frame, the hub closes TCP), half vanish
        # (TCP reset without a close frame).
        if i % 2:
            client.writer.write(frame(0x8, (1000).to_bytes(2, "big")))
            await client.wait_eof()
        client.close()
    await _wait_released(hub)

    health = hub.node.health()
    assert (health["sessions"], health["users"], health["channels"]) == (0, 0, 0)
    assert health["broker"]["presence"] == before["broker"]["presence"] == 0
    # Kept on purpose: per user an inbox (empty for churn-i, one entry for
    # away-i) and a channel with one entry of history.
    assert health["broker"]["streams"] == 3 * USERS
    assert health["broker"]["entries"] == 2 * USERS

    # Past the channel history's max_age (5 minutes) and the idle TTL, the
    # broker's housekeeping drops the channels and the empty inboxes; the
    # offline users' inbox entries stay for the inbox's max_age (7 days).
    clock.advance(300.0 + IDLE_TTL + 1)
    await hub.node.periodic()
    health = hub.node.health()
    assert health["broker"]["streams"] == USERS
    assert health["broker"]["entries"] == USERS
    clock.advance(7 * 86400.0 + IDLE_TTL + 1)
    await hub.node.periodic()
    health = hub.node.health()
    assert (health["broker"]["streams"], health["broker"]["entries"]) == (0, 0)
