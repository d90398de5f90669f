"""The server-side HTTP API: publish, send, presence, history, online, with an API key.

Every endpoint is ``POST /api/<method>`` with a JSON object body holding the same
parameters as the WebSocket command of that name (``docs/protocol.md``), and the
key in ``Authorization: Bearer <key>`` (or ``X-API-Key``). The answer is the
command's result as JSON (200), or ``{"error": {"code", "message"}}`` with the
wire error code and an HTTP status (400, 401, 404, 405, 413, 503).

The API is served by this small HTTP/1.1 server (one request per connection,
bodies bounded by ``Content-Length``), on its own port: the WebSocket endpoint's
handshake hook sees request heads only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from typing import Any

from ..exceptions import HubbubError
from ..protocol.http11 import parse_request
from . import protocol as p
from .broker import BrokerUnavailable
from .core import Node
from .session import Fail

__all__ = ["MAX_BODY", "HttpApi"]

logger = logging.getLogger(__name__)

#: Largest request body accepted, in bytes.
MAX_BODY = 1024 * 1024
_MAX_HEAD = 16 * 1024
_TIMEOUT = 10.0

_STATUS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _HttpError(Exception):
    def __init__(self, status: int, code: p.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class HttpApi:
    """The API server of one node.

    Args:
        node: the node whose broker the API uses.
        api_key: the secret clients must present.
    """

    METHODS = ("publish", "send", "presence", "presence_stats", "history", "online")

    def __init__(self, node: Node, api_key: str) -> None:
        if not api_key:
            raise ValueError("the API key must not be empty")
        self.node = node
        self._key = api_key.encode()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str | None, port: int | None) -> None:
        self._server = await asyncio.start_server(self._serve, host, port or 0, limit=_MAX_HEAD)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await asyncio.wait_for(self._exchange(reader), _TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except Exception:
            logger.exception("HTTP API failure")
            status, body = 500, _error(p.ErrorCode.INTERNAL, "internal error")
        payload = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {_STATUS.get(status, 'Error')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + payload)
            await writer.drain()
        writer.close()

    async def _exchange(self, reader: asyncio.StreamReader) -> tuple[int, Any]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return 413, _error(p.ErrorCode.MESSAGE_TOO_LARGE, "request head too large")
        try:
            parsed = parse_request(head)
        except HubbubError as exc:
            return 400, _error(p.ErrorCode.BAD_REQUEST, str(exc))
        assert parsed is not None  # the head is complete
        request = parsed[0]
        try:
            length = int(request.headers.get("Content-Length") or "0")
        except ValueError:
            return 400, _error(p.ErrorCode.BAD_REQUEST, "invalid Content-Length")
        if length < 0 or length > MAX_BODY:
            return 413, _error(p.ErrorCode.MESSAGE_TOO_LARGE, "body too large")
        body = await reader.readexactly(length)
        try:
            result = await self.dispatch(
                request.method,
                request.path_only,
                request.headers.get("Authorization"),
                request.headers.get("X-API-Key"),
                body,
            )
        except _HttpError as exc:
            return exc.status, _error(exc.code, str(exc))
        return 200, result

    def _authorized(self, authorization: str | None, api_key: str | None) -> bool:
        presented = api_key
        if authorization is not None and authorization[:7].lower() == "bearer ":
            presented = authorization[7:].strip()
        # Constant time, so the key cannot be guessed byte by byte from timings.
        return presented is not None and hmac.compare_digest(presented.encode(), self._key)

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
        except (ValueError, RecursionError):
            raise _HttpError(400, p.ErrorCode.BAD_REQUEST, "body is not JSON") from None
        cmd = p.parse_params(name, params)
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

    async def _execute(self, cmd: p.Command) -> Any:
        node = self.node
        if isinstance(cmd, p.Publish):
            if len(p.encode(cmd.data)) > node.config.max_message_bytes:
                raise Fail(p.ErrorCode.MESSAGE_TOO_LARGE, "data too large")
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


def _error(code: p.ErrorCode, message: str) -> dict[str, Any]:
    return {"error": {"code": int(code), "message": message}}
