"""The browser's WebSocket API, shared by :class:`hubbub.WebSocket` and
:class:`hubbub.asyncio.WebSocket` (WHATWG WebSockets Standard).

Theory of operation
-------------------

:class:`EventTarget` holds listeners per event type, registered with
:meth:`~EventTarget.add_event_listener` or through the ``on_open`` /
``on_message`` / ``on_error`` / ``on_close`` handler properties. As in the
DOM, a handler property takes the place in the listener list where it was
first set, setting it to ``None`` removes it, and a listener that raises is
logged and does not stop the others.

:class:`BrowserWebSocket` is everything of the API that does not depend on
how bytes move: ``ready_state``, ``url``, ``protocol``, ``extensions``,
``binary_type``, argument checks of ``close()``, and the order of events the
standard prescribes:

* ``open`` once the handshake succeeded, before any ``message``;
* when the connection is *failed* (handshake refused, connection refused,
  protocol error, keepalive timeout): ``error`` then ``close``, both with
  ``ready_state`` already CLOSED (3), as the standard requires;
* ``close`` last, exactly once, with ``code``, ``reason`` and ``was_clean``
  (true when the closing handshake completed, section 7.1.4 of RFC 6455).

The two adapters only call :meth:`BrowserWebSocket._opened`,
:meth:`BrowserWebSocket._message` and :meth:`BrowserWebSocket._closed` from
their callback thread or event loop, where listeners then run.

``binary_type``: the browser's ``"blob"`` and ``"arraybuffer"`` have no Python
meaning. Binary messages are ``bytes`` by default (immutable, hashable, what
the rest of hubbub uses); ``"bytearray"`` gives a mutable copy and
``"memoryview"`` a read-only view without copying. Text is always ``str``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .exceptions import ConnectionClosed, HubbubError, InvalidState
from .protocol.connection import State
from .protocol.frames import CloseCode

__all__ = [
    "BINARY_TYPES",
    "BrowserWebSocket",
    "CloseEvent",
    "ErrorEvent",
    "Event",
    "EventTarget",
    "Listener",
    "MessageEvent",
]

logger = logging.getLogger("hubbub.browser")

BINARY_TYPES = ("bytes", "bytearray", "memoryview")

Listener = Callable[[Any], object]


@dataclass
class Event:
    """An event, shaped like the DOM's ``Event``."""

    type: str
    target: Any = None
    time_stamp: float = field(default_factory=lambda: time.time() * 1000.0)
    """Milliseconds since the epoch, like ``Event.timeStamp`` in spirit."""

    @property
    def current_target(self) -> Any:
        return self.target


@dataclass
class MessageEvent(Event):
    """A message arrived: ``data`` is ``str`` for text, per ``binary_type`` for binary."""

    data: str | bytes | bytearray | memoryview = ""
    origin: str = ""
    last_event_id: str = ""


@dataclass
class CloseEvent(Event):
    """The connection closed: ``code``, ``reason`` and ``was_clean``, as in the browser."""

    code: int = CloseCode.NO_STATUS_RCVD
    reason: str = ""
    was_clean: bool = False


@dataclass
class ErrorEvent(Event):
    """The connection failed. Unlike the browser, it says why: ``error`` and ``message``."""

    error: BaseException | None = None
    message: str = ""


class EventTarget:
    """Listeners per event type, and the ``on_<type>`` handler properties."""

    def __init__(self) -> None:
        # Per type: [listener, once]; a handler property is a slot whose
        # listener is replaced in place.
        self._listeners: dict[str, list[list[Any]]] = {}
        self._handlers: dict[str, list[Any]] = {}

    def add_event_listener(self, type: str, listener: Listener, *, once: bool = False) -> None:
        """Call ``listener(event)`` for every event of ``type``; duplicates are ignored."""
        entries = self._listeners.setdefault(type, [])
        if any(entry[0] is listener for entry in entries):
            return
        entries.append([listener, once])

    def remove_event_listener(self, type: str, listener: Listener) -> None:
        """Stop calling ``listener`` for ``type``; unknown listeners are ignored."""
        entries = self._listeners.get(type, [])
        for entry in entries:
            if entry[0] is listener and entry is not self._handlers.get(type):
                entries.remove(entry)
                return

    def _get_handler(self, type: str) -> Listener | None:
        slot = self._handlers.get(type)
        return None if slot is None else slot[0]

    def _set_handler(self, type: str, handler: Listener | None) -> None:
        slot = self._handlers.get(type)
        if handler is None:
            if slot is not None:
                self._listeners[type].remove(slot)
                del self._handlers[type]
        elif slot is not None:
            slot[0] = handler
        else:
            slot = [handler, False]
            self._handlers[type] = slot
            self._listeners.setdefault(type, []).append(slot)

    def dispatch_event(self, event: Event) -> None:
        """Call the listeners of ``event.type`` in order; log the ones that raise."""
        if event.target is None:
            event.target = self
        for entry in list(self._listeners.get(event.type, ())):
            listener, once = entry
            if once:
                self.remove_event_listener(event.type, listener)
            try:
                result = listener(event)
            except Exception:
                logger.exception("%s listener %r raised", event.type, listener)
                continue
            self._listener_result(result)

    def _listener_result(self, result: object) -> None:
        """What to do with a listener's return value; the asyncio flavour runs coroutines."""

    on_open = property(
        lambda self: self._get_handler("open"),
        lambda self, handler: self._set_handler("open", handler),
        doc="Handler of ``open`` events, or None.",
    )
    on_message = property(
        lambda self: self._get_handler("message"),
        lambda self, handler: self._set_handler("message", handler),
        doc="Handler of ``message`` events, or None.",
    )
    on_error = property(
        lambda self: self._get_handler("error"),
        lambda self, handler: self._set_handler("error", handler),
        doc="Handler of ``error`` events, or None.",
    )
    on_close = property(
        lambda self: self._get_handler("close"),
        lambda self, handler: self._set_handler("close", handler),
        doc="Handler of ``close`` events, or None.",
    )


class BrowserWebSocket(EventTarget):
    """The adapter-independent part of the browser-style WebSocket (see module docs)."""

    CONNECTING: ClassVar[State] = State.CONNECTING
    OPEN: ClassVar[State] = State.OPEN
    CLOSING: ClassVar[State] = State.CLOSING
    CLOSED: ClassVar[State] = State.CLOSED

    def __init__(
        self,
        url: str,
        protocols: str | list[str] | tuple[str, ...] | None,
        handlers: dict[str, Listener | None] | None = None,
    ) -> None:
        super().__init__()
        for kind, handler in (handlers or {}).items():
            if handler is not None:
                self._set_handler(kind, handler)
        self.url = url
        if isinstance(protocols, str):
            protocols = [protocols]
        self.protocols: list[str] = list(protocols or ())
        if len(set(self.protocols)) != len(self.protocols):
            # The standard throws a SyntaxError for duplicates.
            raise ValueError("duplicate subprotocols")
        self._ready_state = State.CONNECTING
        self._binary_type = "bytes"
        self.protocol = ""
        """The subprotocol the server chose, "" for none."""
        self.extensions = ""
        """The extensions the server accepted, as its header said, "" for none."""
        self._error_fired = False
        self._close_fired = False

    @property
    def ready_state(self) -> State:
        """CONNECTING (0), OPEN (1), CLOSING (2) or CLOSED (3).

        CLOSING as soon as a close frame went either way; CLOSED when the
        ``error`` event (if the connection failed) or else the ``close`` event
        is dispatched (WHATWG: the state is CLOSED before either fires).
        """
        state = self._ready_state
        if state is State.OPEN and self._connection_state() >= State.CLOSING:
            return State.CLOSING
        return state

    _connection: Any = None
    """The adapter's connection once the handshake succeeded."""

    @property
    def buffered_amount(self) -> int:
        """Bytes given to ``send()`` that are not yet written to the socket."""
        connection = self._connection
        return int(connection.buffered_amount) if connection is not None else 0

    def _connection_state(self) -> State:
        connection = self._connection
        return connection.protocol.state if connection is not None else self._ready_state

    def _connection_to_send(self, data: object) -> Any:
        """The standard's checks in ``send()``: the connection to use, or None to discard.

        Raises:
            InvalidState: the connection is not open yet (CONNECTING).
            TypeError: ``data`` is neither ``str`` nor bytes-like.
        """
        if not isinstance(data, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"cannot send {type(data).__name__}: use str or bytes")
        state = self.ready_state
        if state is State.CONNECTING:
            raise InvalidState("cannot send before the connection is open")
        connection = self._connection
        if state is not State.OPEN or connection is None:
            # As in the browser, sending while CLOSING or CLOSED discards the data.
            logger.debug("discarding a message sent in state %s", state.name)
            return None
        return connection

    @property
    def binary_type(self) -> str:
        """How binary messages are given: ``"bytes"``, ``"bytearray"`` or ``"memoryview"``."""
        return self._binary_type

    @binary_type.setter
    def binary_type(self, value: str) -> None:
        if value not in BINARY_TYPES:
            raise ValueError(f"binary_type must be one of {', '.join(BINARY_TYPES)}")
        self._binary_type = value

    @staticmethod
    def _check_close(code: int | None, reason: str) -> None:
        """The standard's checks in ``close()``: 1000 or 3000-4999, reason <= 123 bytes."""
        if code is not None and code != CloseCode.NORMAL_CLOSURE and not 3000 <= code <= 4999:
            raise ValueError(f"close code must be 1000 or in 3000-4999, not {code}")
        if code is None and reason:
            raise ValueError("a close reason needs a close code")
        if len(reason.encode()) > 123:
            raise ValueError("close reason longer than 123 bytes in UTF-8")

    # --- called by the adapters on the callback thread / event loop -----------

    def _opened(self, protocol: str | None, extensions: str) -> None:
        self.protocol = protocol or ""
        self.extensions = extensions
        if self._ready_state is State.CONNECTING:
            self._ready_state = State.OPEN
        self.dispatch_event(Event("open", self))

    def _message(self, data: str | bytes) -> None:
        payload: str | bytes | bytearray | memoryview = data
        if isinstance(data, bytes):
            if self._binary_type == "bytearray":
                payload = bytearray(data)
            elif self._binary_type == "memoryview":
                payload = memoryview(data)
        origin = self.url.split("/", 3)
        self.dispatch_event(
            MessageEvent("message", self, data=payload, origin="/".join(origin[:3]))
        )

    def _failed(self, error: BaseException | None) -> None:
        """Fire ``error`` (once) when the connection is failed."""
        if self._error_fired or self._close_fired:
            return
        self._error_fired = True
        self.dispatch_event(
            ErrorEvent("error", self, error=error, message=str(error) if error else "")
        )

    def _closed(
        self, code: int, reason: str, was_clean: bool, error: BaseException | None = None
    ) -> None:
        """Fire ``error`` if the connection failed (``error`` given), then ``close``, once."""
        if self._close_fired:
            return
        # WHATWG WebSockets, "the WebSocket connection is closed": readyState
        # becomes CLOSED first, then ``error`` (if it failed), then ``close``;
        # so listeners of ``error`` see CLOSED (3), as in every browser.
        self._ready_state = State.CLOSED
        if error is not None:
            self._failed(error)
        self._close_fired = True
        self.dispatch_event(
            CloseEvent("close", self, code=code, reason=reason, was_clean=was_clean)
        )

    @staticmethod
    def _close_details(exc: BaseException | None, protocol: Any) -> tuple[int, str, bool]:
        """``(code, reason, was_clean)`` for the close event, from the core's state."""
        if protocol is None:
            return CloseCode.ABNORMAL_CLOSURE, "", False
        received = protocol.close_received
        sent = protocol.close_sent
        # Section 7.1.4/7.4: clean when close frames went both ways and TCP
        # then closed; 1006 when no close frame was received.
        was_clean = received is not None and sent is not None and protocol.close_exc is None
        if isinstance(exc, ConnectionClosed) and received is None:
            return CloseCode.ABNORMAL_CLOSURE, "", False
        code = protocol.close_code or CloseCode.ABNORMAL_CLOSURE
        return code, protocol.close_reason, was_clean

    @staticmethod
    def _is_failure(exc: BaseException | None, protocol: Any) -> BaseException | None:
        """The error to report in an ``error`` event, or None for a plain close."""
        if protocol is not None and protocol.close_exc is not None:
            return protocol.close_exc  # type: ignore[no-any-return]
        if exc is not None and not isinstance(exc, (ConnectionClosed,)):
            return exc
        if protocol is not None and protocol.close_sent is not None:
            sent = protocol.close_sent.code
            if sent == CloseCode.INTERNAL_ERROR and protocol.close_received is None:
                return HubbubError(protocol.close_sent.reason or "connection failed")
        return None
