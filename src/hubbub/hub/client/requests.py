"""The hub SDK's requests in flight, matched with their replies (protocol section 1).

:class:`Requests` numbers each request, keeps a future per ``id`` and settles it
when the reply comes: the ``result``, a :class:`HubError` for an ``error``, or
:class:`InvalidReply` for anything else with that ``id`` (an echo of the
request from a server that is not a hub). A reply never raises into the
reader that hands it over, so a malformed one cannot end the connection's
reading. It is a part of :class:`hubbub.hub.client.HubClient`, one per client.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...asyncio import ClientConnection
from ...exceptions import ConnectionClosed
from .types import ConnectionLost, HubError, InvalidReply
from .wire import Wire

__all__ = ["Requests"]

logger = logging.getLogger("hubbub.hub.client")

# What a malformed reply raises in the code reading it (a missing key, a
# value of another type); caught and turned into InvalidReply.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError)


@dataclass
class _Pending:
    future: asyncio.Future[Any]
    on_reply: Callable[[Any], None] | None


class Requests:
    """Requests sent and not yet answered, by ``id``."""

    def __init__(self, wire: Wire | None = None) -> None:
        self._wire = wire or Wire()
        self._pending: dict[int, _Pending] = {}
        self._ids = 0

    async def send(
        self,
        ws: ClientConnection,
        method: str,
        params: dict[str, Any],
        on_reply: Callable[[Any], None] | None = None,
    ) -> Any:
        """Send a request on ``ws`` and return its result.

        ``on_reply(result)`` runs as the reply is read, before later messages.

        Raises:
            HubError: the hub answered with an error.
            InvalidReply: the answer does not follow the protocol.
            ConnectionLost: the connection dropped before the reply.
        """
        self._ids += 1
        req_id = self._ids
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = _Pending(future, on_reply)
        try:
            await ws.send(self._wire.encode({"id": req_id, "method": method, "params": params}))
        except ConnectionClosed:
            self._pending.pop(req_id, None)
            raise ConnectionLost(f"connection lost before {method} was sent") from None
        return await future

    def reply(self, message: dict[str, Any]) -> None:
        """Settle the request ``message`` answers (a reply: no ``push``)."""
        pending = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
        if pending is None:
            logger.warning("unexpected reply from the hub: %.200s", message)
            return
        error = message.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), int):
            code = error["code"]
            # The text names the code too, as an error reply is shown (SDK docs).
            text = f"{error.get('message')} ({code})"
            pending.future.set_exception(HubError(code, text))
            return
        if "result" not in message:
            # Section 1: a reply has ``result`` or ``error``. An echo of our
            # own request (a server that is not a hub) has neither.
            pending.future.set_exception(
                InvalidReply(f"not a {self._wire.subprotocol} reply: {json.dumps(message)[:200]}")
            )
            return
        try:
            if pending.on_reply is not None:
                pending.on_reply(message["result"])
        except MALFORMED as exc:
            pending.future.set_exception(InvalidReply(f"malformed reply: {exc!r}"))
            return
        if not pending.future.done():
            pending.future.set_result(message["result"])

    def fail_all(self) -> None:
        """Fail every request in flight with :class:`ConnectionLost`."""
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(ConnectionLost("connection lost before the reply"))
                p.future.exception()  # nobody may be waiting: do not warn about it
