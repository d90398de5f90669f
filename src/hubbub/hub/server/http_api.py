"""The server-side HTTP API: publish, send, presence, history, online, with an API key.

Every endpoint is ``POST /api/<method>`` with a JSON object body holding the same
parameters as the WebSocket command of that name (``docs/protocol.md``), and the
key in ``Authorization: Bearer <key>`` (or ``X-API-Key``). The answer is the
command's result as JSON (200), or ``{"error": {"code", "message"}}`` with the
wire error code and an HTTP status (400, 401, 404, 405, 413, 503).

``POST /api/publish_batch`` (no WebSocket command of that name) takes
``{"publications": [{"channel", "data"}, ...]}``, at most :data:`MAX_BATCH`,
checks them all, then publishes them in order and answers ``{"results":
[{"offset", "epoch"}, ...]}``. On the in-process broker they are fanned out
in one loop iteration, so each subscriber gets the publications of a batch in
one write (``send_frames_soon``). A 503 (the broker failed midway) may leave
the first ones published.

The API shares the hub's port with the WebSocket endpoint: the adapter reads a
request's ``Content-Length`` body (up to ``max_body``, :data:`MAX_BODY` here;
413 past it) before the hub's ``process_request`` hook hands it to
:meth:`HttpApi.respond`.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from ...asyncio.server import ServerConnection
from ...protocol.http11 import Request, Response
from ..core import protocol as p
from ..core.broker import BrokerUnavailable
from ..core.node import Node
from ..core.session import Fail

__all__ = ["MAX_BATCH", "MAX_BODY", "HttpApi"]

logger = logging.getLogger(__name__)

#: Largest request body accepted, in bytes.
MAX_BODY = 1024 * 1024

#: Most publications one ``publish_batch`` request may carry.
MAX_BATCH = 1000


class _HttpError(Exception):
    def __init__(self, status: int, code: p.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# The answer to a /metrics request without the metrics token, from both the
# hub's own server and its ASGI app: RFC 6750 section 3, a 401 names the scheme.
METRICS_REFUSAL = '{"error":"/metrics needs Authorization: Bearer <metrics token>"}'
METRICS_CHALLENGE = 'Bearer realm="hubbub metrics"'


def bearer_matches(authorization: str | None, key: bytes, fallback: str | None = None) -> bool:
    """Whether ``Authorization: Bearer <key>`` (RFC 6750 section 2.1) presents ``key``.

    ``fallback`` is a key presented another way (the API's ``X-API-Key``),
    used when there is no bearer token.
    """
    presented = fallback
    if authorization is not None and authorization[:7].lower() == "bearer ":
        presented = authorization[7:].strip()
    # Constant time, so the key cannot be guessed byte by byte from timings.
    return presented is not None and hmac.compare_digest(presented.encode(), key)


class HttpApi:
    """The API server of one node.

    Args:
        node: the node whose broker the API uses.
        api_key: the secret clients must present.
    """

    METHODS = (
        "publish",
        "publish_batch",
        "send",
        "presence",
        "presence_stats",
        "history",
        "online",
    )

    def __init__(self, node: Node, api_key: str) -> None:
        if not api_key:
            raise ValueError("the API key must not be empty")
        self.node = node
        self._key = api_key.encode()

    async def respond(self, conn: ServerConnection, request: Request) -> Response:
        """Answer one API request (the hub's ``process_request`` hands it over)."""
        status, body = await self.answer(request)
        return conn.respond(status, body, "application/json")

    async def answer(self, request: Request) -> tuple[int, str]:
        """The HTTP status and JSON body answering ``request``, whatever server carried it.

        ``request.path`` is relative to where the API is mounted (``/api/publish``);
        the ASGI app (:mod:`hubbub.hub.server.asgi`) calls this too.
        """
        try:
            result: Any = await self.dispatch(
                request.method,
                request.path_only,
                request.headers.get("Authorization"),
                request.headers.get("X-API-Key"),
                request.body,
            )
            status = 200
        except _HttpError as exc:
            status, result = exc.status, _error(exc.code, str(exc))
        return status, json.dumps(result)

    def _authorized(self, authorization: str | None, api_key: str | None) -> bool:
        return bearer_matches(authorization, self._key, fallback=api_key)

    async def dispatch(
        self,
        method: str,
        path: str,
        authorization: str | None,
        api_key: str | None,
        body: bytes,
    ) -> Any:
        """Execute one API request; raises ``_HttpError`` for error answers."""
        name = path.removeprefix("/api/")
        if not path.startswith("/api/") or name not in self.METHODS:
            raise _HttpError(404, p.ErrorCode.UNKNOWN_METHOD, "no such endpoint")
        if method != "POST":
            raise _HttpError(405, p.ErrorCode.BAD_REQUEST, "use POST")
        if not self._authorized(authorization, api_key):
            raise _HttpError(401, p.ErrorCode.UNAUTHORIZED, "missing or wrong API key")
        try:
            params = p.decode(body or b"{}")
        except p.InvalidText as exc:  # a lone surrogate, too deep: as on the WebSocket
            raise _HttpError(400, p.ErrorCode.BAD_REQUEST, str(exc)) from None
        except (ValueError, RecursionError):
            raise _HttpError(400, p.ErrorCode.BAD_REQUEST, "body is not JSON") from None
        cmd: p.Command | list[p.Publish] | p.Rejected
        cmd = _parse_batch(params) if name == "publish_batch" else p.parse_params(name, params)
        if isinstance(cmd, p.Rejected):
            raise _HttpError(400, cmd.code, cmd.message)
        try:
            return await self._execute(cmd)
        except Fail as exc:
            raise _HttpError(400, exc.code, str(exc)) from exc
        except ValueError as exc:
            raise _HttpError(400, p.ErrorCode.UNKNOWN_CHANNEL, str(exc)) from exc
        except BrokerUnavailable as exc:
            raise _HttpError(503, p.ErrorCode.BROKER_UNAVAILABLE, "broker unavailable") from exc
        except Exception as exc:
            logger.exception("HTTP API error on %r", cmd)
            raise _HttpError(500, p.ErrorCode.INTERNAL, "internal error") from exc

    async def _execute(self, cmd: p.Command | list[p.Publish]) -> Any:
        node = self.node
        if isinstance(cmd, list):
            # Every publication is checked before the first is published.
            for pub in cmd:
                node.permissions.check_size(pub.data)
                node.operations.check_channel(pub.channel)
            results = []
            for pub in cmd:
                entry = await node.publish(pub.channel, pub.data)
                results.append({"offset": entry.offset, "epoch": entry.epoch})
            return {"results": results}
        if isinstance(cmd, p.Publish):
            node.permissions.check_size(cmd.data)
            entry = await node.publish(cmd.channel, cmd.data)
            return {"offset": entry.offset, "epoch": entry.epoch}
        if isinstance(cmd, p.Send):
            if len(cmd.to) > node.config.max_recipients:
                raise Fail(p.ErrorCode.TOO_MANY_RECIPIENTS, "too many recipients")
            return {"results": await node.send(cmd.to, cmd.data)}
        if isinstance(cmd, p.Presence):
            return await node.presence(cmd.channel)
        if isinstance(cmd, p.PresenceStats):
            presence = await node.presence(cmd.channel)
            return {"clients": len(presence["clients"]), "users": len(presence["users"])}
        if isinstance(cmd, p.History):
            if cmd.stream == p.INBOX:
                raise Fail(p.ErrorCode.INVALID_PARAMS, "the API reads channels, not inboxes")
            return await node.history(cmd.stream, cmd.since, cmd.limit)
        assert isinstance(cmd, p.Online)
        online = await node.broker.online(cmd.users)
        return {"online": {u: u in online for u in cmd.users}}


def _parse_batch(params: Any) -> list[p.Publish] | p.Rejected:
    """The publications of a ``publish_batch`` body, or why it is refused."""
    pubs = params.get("publications") if isinstance(params, dict) else None
    if not isinstance(pubs, list) or not pubs:
        return p.Rejected(0, p.ErrorCode.INVALID_PARAMS, "publications must be a non-empty list")
    if len(pubs) > MAX_BATCH:
        return p.Rejected(
            0, p.ErrorCode.INVALID_PARAMS, f"at most {MAX_BATCH} publications per batch"
        )
    parsed = []
    for i, item in enumerate(pubs):
        cmd = p.parse_params("publish", item)
        if isinstance(cmd, p.Rejected):
            return p.Rejected(0, cmd.code, f"publications[{i}]: {cmd.message}")
        assert isinstance(cmd, p.Publish)
        parsed.append(cmd)
    return parsed


def _error(code: p.ErrorCode, message: str) -> dict[str, Any]:
    return {"error": {"code": int(code), "message": message}}
