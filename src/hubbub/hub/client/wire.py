"""The SDK's encoding of hub messages: ``hubbub.json.v1`` or ``hubbub.msgpack.v1``.

:class:`Wire` names the subprotocol the client offers and turns messages into
WebSocket payloads and back: JSON text for ``"json"``, one binary MessagePack
value for ``"msgpack"`` (``docs/protocol.md`` section 7). The msgpack encoding
needs the ``msgpack`` package (the ``hub`` extra); without it, asking for it
raises :class:`~hubbub.exceptions.MissingExtra` at once and JSON keeps working.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeAlias

from ..core import binary
from ..core.protocol import SUBPROTOCOL

__all__ = ["Encoding", "Wire"]

#: The encodings a :class:`~hubbub.hub.client.HubClient` speaks.
Encoding: TypeAlias = Literal["json", "msgpack"]


class Wire:
    """One client's message encoding.

    Args:
        encoding: ``"json"`` (``hubbub.json.v1``, text messages) or
            ``"msgpack"`` (``hubbub.msgpack.v1``, binary messages).

    Raises:
        ValueError: another encoding.
        MissingExtra: ``"msgpack"`` without the ``msgpack`` package.
    """

    def __init__(self, encoding: Encoding = "json") -> None:
        if encoding == "json":
            self.subprotocol = SUBPROTOCOL
        elif encoding == "msgpack":
            binary.load_msgpack()
            self.subprotocol = binary.MSGPACK_SUBPROTOCOL
        else:
            raise ValueError(f"encoding must be 'json' or 'msgpack', not {encoding!r}")
        self.encoding: Encoding = encoding

    def encode(self, message: dict[str, Any]) -> str | bytes:
        """The payload of one request (text for JSON, bytes for MessagePack)."""
        if self.encoding == "json":
            return json.dumps(message)
        return binary.pack(message)

    def decode(self, payload: str | bytes) -> Any:
        """One message from the hub.

        Raises:
            ValueError: not a message of this encoding (a text frame on a
                msgpack connection, or the other way round, included).
        """
        if self.encoding == "json":
            if not isinstance(payload, str):
                raise ValueError(f"a binary message on {SUBPROTOCOL}")
            return json.loads(payload)
        if not isinstance(payload, bytes):
            raise ValueError(f"a text message on {binary.MSGPACK_SUBPROTOCOL}")
        return binary.unpack(payload)
