"""hubbub.asyncio.turns: callbacks take turns, one per event loop iteration."""

from __future__ import annotations

import asyncio

from hubbub.asyncio.turns import turns


async def test_one_callback_runs_per_loop_iteration_in_order() -> None:
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    queue = turns(loop)
    assert turns(loop) is queue  # one per loop
    for name in ("a", "b", "c"):
        queue.add(lambda name=name: ran.append(name))
    # Each sleep(0) lets the loop run one iteration: with call_soon from each
    # connection, all three would have run in the first one.
    await asyncio.sleep(0)
    assert ran == ["a"]
    queue.add(lambda: ran.append("d"))  # behind the ones already waiting
    await asyncio.sleep(0)
    assert ran == ["a", "b"]
    for _ in range(5):
        await asyncio.sleep(0)
    assert ran == ["a", "b", "c", "d"]
