"""A raw asyncio WebSocket client for hostile tests: it writes frames and reads only when told.

Written from RFC 6455 alone (no hubbub code on the client side), so a test can
behave as an attacker would: flood pings without reading, stop reading, send
text the hub must refuse.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from typing import Any

from hubbub.hub import SUBPROTOCOL


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame with FIN set (RFC 6455 section 5.2; clients mask, 5.3)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


class RawClient:
    """One TCP connection that completed the opening handshake and nothing else."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.pushes: list[Any] = []

    @classmethod
    async def open(
        cls, port: int, *, origin: str | None = None, host: str | None = None
    ) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET / HTTP/1.1",
            f"Host: {host or f'127.0.0.1:{port}'}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}",
        ]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        client = cls(reader, writer)
        client.status = int((await reader.readuntil(b"\r\n\r\n")).split(b" ", 2)[1])
        return client

    def send_text(self, text: str | bytes) -> None:
        payload = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        self.writer.write(frame(0x1, payload))

    def ping(self, payload: bytes = b"") -> None:
        self.writer.write(frame(0x9, payload))

    async def recv_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (unmasked, 5.1): ``(opcode, payload)``."""
        head = await self.reader.readexactly(2)
        length = head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return head[0] & 0x0F, await self.reader.readexactly(length)

    async def recv_json(self) -> Any:
        """The next text message, decoded (control frames skipped)."""
        while True:
            opcode, payload = await self.recv_frame()
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x8:
                raise EOFError(f"closed: {payload!r}")

    async def call(self, req_id: int, method: str, **params: Any) -> Any:
        """Send a request and return its reply, keeping pushes in ``self.pushes``."""
        self.send_text(
            json.dumps({"id": req_id, "method": method, "params": params}, ensure_ascii=False)
        )
        return await self.reply(req_id)

    async def reply(self, req_id: int) -> Any:
        """The reply to ``req_id``, keeping the pushes before it in ``self.pushes``."""
        while True:
            message = await asyncio.wait_for(self.recv_json(), 10)
            if message.get("id") == req_id:
                return message
            self.pushes.append(message)

    async def wait_eof(self) -> bytes:
        """Read (and discard) until the server closes TCP; return the last close frame."""
        close = b""
        try:
            while True:
                opcode, payload = await self.recv_frame()
                if opcode == 0x8:
                    close = payload
        except (asyncio.IncompleteReadError, ConnectionError):
            return close

    def close(self) -> None:
        self.writer.transport.abort()
