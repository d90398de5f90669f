"""``hubbub.WebSocket``: the browser's WebSocket API, without an event loop.

::

    ws = hubbub.WebSocket("wss://example.com/chat", "chat.v1")
    ws.on_open = lambda event: ws.send("hello")
    ws.on_message = lambda event: print(event.data)
    ws.on_close = lambda event: print("closed", event.code, event.was_clean)
    ws.wait_closed()

The constructor returns at once; a background thread connects with
:func:`hubbub.sync.client.connect` and then reads, running every listener on
that one thread, in order: ``open``, the ``message`` events, then ``error``
(only if the connection failed) and ``close``. The thread is a daemon: call
:meth:`WebSocket.wait_closed` to keep a script alive until the end.

Differences from the browser, forced by Python or chosen for it: ``send()``
blocks until the frame is in the kernel's buffer (the browser queues
without limit); ``binary_type`` is ``"bytes"`` (default), ``"bytearray"`` or
``"memoryview"`` (see :mod:`hubbub.browser`); the ``error`` event says what
happened. Options (``ssl``, ``proxy``, ``compression``, ``additional_headers``,
timeouts, ...) are passed on to :func:`hubbub.sync.client.connect`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from .browser import BrowserWebSocket, Listener
from .exceptions import ConnectionClosed, InvalidState
from .protocol.connection import State
from .protocol.frames import CloseCode
from .protocol.handshake import parse_uri
from .sync.client import ClientConnection, connect

__all__ = ["WebSocket"]

logger = logging.getLogger("hubbub.browser")


class WebSocket(BrowserWebSocket):
    """A browser-style WebSocket client; see the module docstring.

    Args:
        url: a ``ws://`` or ``wss://`` URL.
        protocols: a subprotocol or a list of them, preferred first.
        on_open: handler of the ``open`` event. Handlers given here are set
            before the connection starts; listeners added after the constructor
            returns may miss the ``error`` and ``close`` events of a connection
            that fails at once (it runs on another thread).
        on_message: handler of the ``message`` event (as ``on_open``).
        on_error: handler of the ``error`` event (as ``on_open``).
        on_close: handler of the ``close`` event (as ``on_open``).
        options: options of :func:`hubbub.sync.client.connect`.

    Raises:
        InvalidURI: ``url`` is not a WebSocket URL (at once, as in the browser).
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
        parse_uri(url)  # fail now on a bad URL, like the browser's SyntaxError
        self._options = options
        self._connection: ClientConnection | None = None
        self._mutex = threading.Lock()
        self._abort_requested = False
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"hubbub-websocket {url}", daemon=True
        )
        self._thread.start()

    # --- the API ------------------------------------------------------------------

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send ``data``: ``str`` as a text message, bytes-like as binary.

        As in the browser, sending while CLOSING or CLOSED discards the data.

        Raises:
            InvalidState: the connection is not open yet (CONNECTING).
            TypeError: ``data`` is neither ``str`` nor bytes-like.
        """
        connection = self._connection_to_send(data)
        if connection is None:
            return
        with contextlib.suppress(ConnectionClosed):  # the close event tells the rest
            connection.send(data)

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Start closing: ``code`` is 1000 or 3000-4999, ``reason`` at most 123 bytes.

        Returns at once; the ``close`` event follows. Closing before the
        connection is open fails it (``error`` then ``close`` with 1006).

        Raises:
            ValueError: the code or reason is not allowed.
        """
        self._check_close(code, reason)
        with self._mutex:
            state = self.ready_state
            if state in (State.CLOSING, State.CLOSED):
                return
            connection = self._connection
            self._ready_state = State.CLOSING
            if connection is None:
                self._abort_requested = True
                return
        connection.start_close(code, reason)

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the ``close`` event was dispatched; False on timeout."""
        if threading.current_thread() is self._thread:
            return self._done.is_set()
        return self._done.wait(timeout)

    # --- the callback thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except Exception:  # pragma: no cover - a bug; still end with a close event
            logger.exception("WebSocket thread failed")
            self._closed(CloseCode.ABNORMAL_CLOSURE, "", False)
        finally:
            self._done.set()

    def _serve(self) -> None:
        options = dict(self._options)
        if self.protocols:
            options["subprotocols"] = self.protocols
        try:
            connection = connect(self.url, **options)
        except Exception as exc:
            self._closed(CloseCode.ABNORMAL_CLOSURE, "", False, exc)
            return
        with self._mutex:
            self._connection = connection
            aborted = self._abort_requested
        if aborted:
            connection.abort()
            connection.wait_closed(connection.close_timeout)
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
                self._message(connection.recv())
        except ConnectionClosed as exc:
            error = exc
        connection.wait_closed(connection.close_timeout)
        protocol = connection.protocol
        code, reason, was_clean = self._close_details(error, protocol)
        self._closed(code, reason, was_clean, self._is_failure(error, protocol))
