"""A connection's requests run from the read callback, with a task only for those that wait.

Theory of operation
-------------------

In queue mode every request costs a Future and a step of the handler's task:
the adapter queues the message, wakes the task, and the task awaits
``Node.handle``. With the in-process broker nothing in ``Node.handle`` ever
waits (its coroutines complete without suspending, ``Broker.suspends`` is
False), so :class:`InlineRequests` sets the connection's ``on_message``
(the library's callback mode) and handles each request right there, in the
read callback: ``Node.handle_now`` answers a ``send`` or ``publish`` with no
coroutine at all, and returns the coroutine of anything else, which is run to
its end by hand: ``next(coro.__await__(), done)`` returning ``done`` means it
finished (iterated, not sent to: a coroutine that returns None then raises no
``StopIteration``, which cost more per message than two levels of ``await``).

Should one suspend anyway (a broker call that waits), order and flow control
must hold: the connection goes back to queue mode at once (``on_message =
None``), so the messages after it wait in the connection's bounded queue
(which stops reading when full), and a task finishes the suspended request.
When it is done, setting ``on_message`` again hands the queued messages over
in order. A session's requests are thus answered in the order they came, one
at a time, as ``Node.handle`` requires.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from ...asyncio import ServerConnection

__all__ = ["InlineRequests"]

#: Handles one message: None when done, else the coroutine that finishes it.
Request = Callable[[str | bytes], Coroutine[Any, Any, None] | None]

_DONE: Any = object()  # what next() returns once a request is done


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, Any, None]:
    """Go on with a coroutine that suspended on ``waiting_on``, inside a task.

    What ``await`` (``yield from``, PEP 380) does for a coroutine one has
    started by hand: the task gets what it yields, and the coroutine gets what
    the task sends or throws in (a cancellation included).
    """
    yielded = waiting_on
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration:
                return


class InlineRequests:
    """Runs one connection's requests from its ``on_message`` callback (module docstring).

    Args:
        ws: the connection; :meth:`start` puts it in callback mode.
        handle: handles one message, returning None when it is done or the
            coroutine that finishes it (``Node.handle_now`` bound to the
            session).
    """

    __slots__ = ("handle", "waiting", "ws")

    def __init__(self, ws: ServerConnection, handle: Request) -> None:
        self.ws = ws
        self.handle = handle
        # The task finishing a request that suspended, if one is running.
        self.waiting: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Hand every message (those already queued first) to :meth:`on_message`."""
        self.ws.on_message = self.on_message

    def on_message(self, message: str | bytes) -> None:
        coro = self.handle(message)
        if coro is None:
            return  # answered without a coroutine (Node.handle_now)
        # Iterated rather than sent to (module docstring): CPython's
        # gen_iternext sets no StopIteration when a coroutine returns None.
        waiting_on = next(coro.__await__(), _DONE)
        if waiting_on is _DONE:
            return  # the usual case: the request is done, its reply written
        # It waits: the next messages queue in the connection (and its flow
        # control) until this one is done.
        self.ws.on_message = None
        self.waiting = asyncio.get_running_loop().create_task(self._finish(coro, waiting_on))

    async def _finish(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        try:
            await _resume(coro, waiting_on)
        finally:
            # Hands over what queued meanwhile, in order (one may suspend
            # again), whatever became of this request. Also once closed: what
            # the client sent before its close frame is handled, as the
            # queue-mode loop handles it.
            self.ws.on_message = self.on_message

    async def wait_done(self) -> None:
        """Wait until no request of this connection is running any more."""
        while self.waiting is not None and not self.waiting.done():
            await asyncio.shield(self.waiting)
