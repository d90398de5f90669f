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


async def test_a_task_waiting_for_a_turn_has_its_iteration_to_itself() -> None:
    # Inbox.wait_turn(): the turn is granted in one iteration and the task
    # resumes in the next; no other turn may run in that one, or a handler
    # answering a large message would run beside another connection's step.
    loop = asyncio.get_running_loop()
    queue = turns(loop)
    events: list[str] = []
    iteration = 0

    async def count_iterations() -> None:
        nonlocal iteration
        while True:
            iteration += 1
            await asyncio.sleep(0)

    async def waiter() -> None:
        await queue.wait()
        events.append(f"task@{iteration}")

    counter = asyncio.ensure_future(count_iterations())
    task = asyncio.ensure_future(waiter())
    await asyncio.sleep(0)  # the task is waiting for its turn now
    queue.add(lambda: events.append(f"callback@{iteration}"))
    for _ in range(8):
        await asyncio.sleep(0)
    counter.cancel()
    await task
    assert [e.split("@")[0] for e in events] == ["task", "callback"]
    ran = [int(e.split("@")[1]) for e in events]
    assert ran[1] > ran[0], events


async def test_a_granted_turn_does_not_skip_a_later_one() -> None:
    # The iteration a granted task resumes in runs no other turn; once it is
    # over, a callback added later runs in the next iteration as usual (the
    # flag used to linger until the next callback came, and skipped its turn).
    loop = asyncio.get_running_loop()
    queue = turns(loop)
    await queue.wait()
    for _ in range(3):
        await asyncio.sleep(0)
    ran: list[str] = []
    queue.add(lambda: ran.append("later"))
    await asyncio.sleep(0)
    assert ran == ["later"]
