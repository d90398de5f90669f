"""``hubbub.asyncio.WebSocket``: the browser's WebSocket API on the running loop.

::

    ws = hubbub.asyncio.WebSocket("wss://example.com/chat")
    ws.on_open = lambda event: ws.send("hello")
    ws.on_message = lambda event: print(event.data)
    await ws.wait_closed()

Create it inside a running event loop; a task connects with
:func:`hubbub.asyncio.connect` and dispatches the events on the loop: ``open``,
the ``message`` events, then ``error`` (only if the connection failed) and
``close``. A listener may be a coroutine function: its coroutine is run as a
task. ``send()`` and ``close()`` are plain functions, as in the browser:
``send()`` queues the frame in the transport (``buffered_amount`` is what
waits there) and ``close()`` starts the closing handshake. The event order and
attributes come from :mod:`hubbub.browser`, shared with :class:`hubbub.WebSocket`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from ..browser import BrowserWebSocket, Listener
from ..exceptions import ConnectionClosed, InvalidState
from ..protocol.connection import State
from ..protocol.frames import CloseCode
from ..protocol.handshake import parse_uri
from .client import ClientConnection, connect

__all__ = ["WebSocket"]

logger = logging.getLogger("hubbub.browser")


class WebSocket(BrowserWebSocket):
    """A browser-style WebSocket client on asyncio; see the module docstring.

    Args:
        url: a ``ws://`` or ``wss://`` URL.
        protocols: a subprotocol or a list of them, preferred first.
        on_open: handler of the ``open`` event. Handlers may also be set after
            the constructor: events are dispatched by a task, once the caller
            yields to the loop, as in the browser.
        on_message: handler of the ``message`` event (as ``on_open``).
        on_error: handler of the ``error`` event (as ``on_open``).
        on_close: handler of the ``close`` event (as ``on_open``).
        options: options of :func:`hubbub.asyncio.connect`.

    Raises:
        InvalidURI: ``url`` is not a WebSocket URL.
        RuntimeError: no event loop is running.
    """

    def __init__(
        self,
        url: str,
        protocols: str | list[str] | tuple[str, ...] | None = None,
        *,
        on_open: Listener | None = None,
        on_message: Listener | None = None,
        on_error: Listener | None = None,
        on_close: Listener | None = None,
        **options: Any,
    ) -> None:
        handlers = {"open": on_open, "message": on_message, "error": on_error, "close": on_close}
        super().__init__(url, protocols, handlers)
        parse_uri(url)
        self._options = options
        self._connection: ClientConnection | None = None
        self._abort_requested = False
        self._loop = asyncio.get_running_loop()
        self._listener_tasks: set[asyncio.Task[Any]] = set()
        self._task = self._loop.create_task(self._run())

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Queue ``data``: ``str`` as a text message, bytes-like as binary.

        As in the browser, sending while CLOSING or CLOSED discards the data.

        Raises:
            InvalidState: the connection is not open yet (CONNECTING).
            TypeError: ``data`` is neither ``str`` nor bytes-like.
        """
        connection = self._connection_to_send(data)
        if connection is None:
            return
        # The transport buffers without limit, like the browser; the caller
        # watches buffered_amount.
        connection.send_nowait(data)

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Start closing: ``code`` is 1000 or 3000-4999, ``reason`` at most 123 bytes.

        Returns at once; the ``close`` event follows. Closing before the
        connection is open fails it (``error`` then ``close`` with 1006).

        Raises:
            ValueError: the code or reason is not allowed.
        """
        self._check_close(code, reason)
        if self.ready_state in (State.CLOSING, State.CLOSED):
            return
        self._ready_state = State.CLOSING
        connection = self._connection
        if connection is None:
            self._abort_requested = True
            return
        connection.start_close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the ``close`` event was dispatched."""
        await asyncio.shield(self._task)

    def _listener_result(self, result: object) -> None:
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._listener_tasks.add(task)
            task.add_done_callback(self._listener_done)

    def _listener_done(self, task: asyncio.Task[Any]) -> None:
        self._listener_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("listener task failed", exc_info=task.exception())

    async def _run(self) -> None:
        options = dict(self._options)
        if self.protocols:
            options["subprotocols"] = self.protocols
        try:
            connection = await connect(self.url, **options)
        except Exception as exc:
            self._closed(CloseCode.ABNORMAL_CLOSURE, "", False, exc)
            return
        self._connection = connection
        if self._abort_requested:
            connection.abort()
            await connection.wait_closed()
            self._closed(
                CloseCode.ABNORMAL_CLOSURE,
                "",
                False,
                InvalidState("closed before the connection was established"),
            )
            return
        response = connection.response
        extensions = response.headers.get("Sec-WebSocket-Extensions", "") if response else ""
        self._opened(connection.subprotocol, extensions or "")
        error: BaseException | None = None
        try:
            while True:
                self._message(await connection.recv())
        except ConnectionClosed as exc:
            error = exc
        await connection.wait_closed()
        protocol = connection.protocol
        code, reason, was_clean = self._close_details(error, protocol)
        self._closed(code, reason, was_clean, self._is_failure(error, protocol))
