"""The hub's binary subprotocol, ``hubbub.msgpack.v1``, without I/O.

Theory of operation
-------------------

``hubbub.msgpack.v1`` carries exactly the messages of ``hubbub.json.v1``
(:mod:`hubbub.hub.core.protocol`, ``docs/protocol.md`` section 7): the same
requests, replies and pushes, each one MessagePack value in one *binary*
WebSocket message instead of one JSON text in a text message. Only the values
JSON has are allowed, so that whatever one client publishes reaches clients of
either encoding unchanged:

* :func:`unpack` decodes a client's message strictly: no extension type (the
  timestamp type included), no ``bin`` value, map keys only strings, strings
  valid UTF-8, no NaN or infinity, nesting at most :data:`~protocol.MAX_DEPTH`
  deep. It raises :class:`InvalidMessage` with the message the hub answers;
* :class:`MsgpackEncoder` turns the JSON text the node produced for a reply or
  push into MessagePack. The node encodes a fan-out push once and hands the
  same ``str`` object to every recipient, so the encoder remembers the last
  text it packed (an identity check): a publication is packed at most once
  however many msgpack sessions receive it, and JSON sessions pay nothing.

MessagePack itself comes from the ``msgpack`` package (the ``hub`` extra):
:func:`load_msgpack` raises :class:`~hubbub.exceptions.MissingExtra` without it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Coroutine
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ...exceptions import needs_extra
from . import protocol as p

if TYPE_CHECKING:
    from .node import Node
    from .session import Session

__all__ = [
    "MSGPACK_SUBPROTOCOL",
    "InvalidMessage",
    "MsgpackEncoder",
    "handle_binary",
    "handle_binary_now",
    "load_msgpack",
    "msgpack_available",
    "pack",
    "request_text",
    "unpack",
]

#: The WebSocket subprotocol (RFC 6455 section 1.9) of the MessagePack encoding.
MSGPACK_SUBPROTOCOL = "hubbub.msgpack.v1"

# MessagePack integers span int64 and uint64 (msgpack spec, "int format family").
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class InvalidMessage(ValueError):
    """A binary message the hub refuses; ``str()`` is the error message it answers."""


def load_msgpack() -> ModuleType:
    """The ``msgpack`` module.

    Raises:
        MissingExtra: ``msgpack`` is not installed (``pip install 'hubbub[hub]'``).
    """
    with needs_extra("hub", f"the {MSGPACK_SUBPROTOCOL} subprotocol"):
        import msgpack  # type: ignore[import-untyped]  # msgpack ships no type hints
    module: ModuleType = msgpack
    return module


def msgpack_available() -> bool:
    """Whether ``msgpack`` can be imported (the hub then offers ``hubbub.msgpack.v1``)."""
    try:
        load_msgpack()
    except ImportError:
        return False
    return True


def _refuse_ext(code: int, data: bytes) -> Any:
    raise InvalidMessage("MessagePack extension types are not supported")


def _check(value: Any) -> None:
    """Raise :class:`InvalidMessage` for what JSON cannot carry, or nesting too deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > p.MAX_DEPTH:
                raise InvalidMessage(f"arrays and maps nest more than {p.MAX_DEPTH} deep")
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        raise InvalidMessage("map keys must be strings")
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidMessage("NaN and infinity are not supported")
        elif isinstance(item, bytes | bytearray):
            raise InvalidMessage("bin values are not supported (JSON has no bytes): use a string")
        elif not (item is None or isinstance(item, str | int)):  # bool is an int
            # msgpack's own Timestamp (extension type -1) lands here.
            raise InvalidMessage("MessagePack extension types are not supported")


def unpack(raw: bytes) -> Any:
    """Decode one message strictly (module docstring).

    Raises:
        InvalidMessage: not one MessagePack value, or one the hub refuses.
    """
    msgpack = load_msgpack()
    try:
        # raw=False: str values decode as strict UTF-8 (a lone surrogate fails);
        # strict_map_key=False lets _check give the precise error for keys;
        # timestamp=0 hands a timestamp over as a Timestamp, refused by _check.
        value = msgpack.unpackb(
            raw, raw=False, strict_map_key=False, ext_hook=_refuse_ext, use_list=True
        )
    except InvalidMessage:
        raise
    except (ValueError, msgpack.UnpackException, TypeError, RecursionError) as exc:
        # ExtraData (two values), FormatError, StackError, truncated input,
        # invalid UTF-8 and unhashable map keys all end here.
        raise InvalidMessage("message is not valid MessagePack") from exc
    _check(value)
    return value


def _fit_ints(value: Any) -> Any:
    # JSON numbers have no range; MessagePack integers do. An integer beyond
    # it goes out as a float64, the value a JavaScript client gets from JSON.
    if isinstance(value, dict):
        return {key: _fit_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fit_ints(item) for item in value]
    if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
        return float(value)
    return value


def pack(value: Any) -> bytes:
    """Encode a JSON value (str keys, no bytes) as one MessagePack value.

    Integers beyond int64/uint64 are written as float64 (``docs/protocol.md`` 7.2).
    """
    msgpack = load_msgpack()
    try:
        data: bytes = msgpack.packb(value, use_bin_type=True)
    except OverflowError:
        data = msgpack.packb(_fit_ints(value), use_bin_type=True)
    return data


class MsgpackEncoder:
    """Packs the node's JSON texts, once per distinct text object (module docstring)."""

    __slots__ = ("_bytes", "_text")

    def __init__(self) -> None:
        load_msgpack()  # fails now, with MissingExtra, rather than at the first reply
        self._text: str | None = None
        self._bytes = b""

    def pack_text(self, text: str) -> bytes:
        """The MessagePack form of ``text``, a JSON message the node encoded."""
        if text is not self._text:
            self._bytes = pack(json.loads(text))
            self._text = text
        return self._bytes


def request_text(raw: str | bytes, max_bytes: int) -> str | p.Rejected:
    """The JSON text of a message received on a ``hubbub.msgpack.v1`` session.

    The node parses JSON text; a msgpack request is decoded, checked, and handed
    over as the equivalent JSON, so every command runs through the same code.

    Returns:
        The text for :meth:`Node.handle`, or the error to answer with.
    """
    if isinstance(raw, str):
        return p.Rejected(
            None,
            p.ErrorCode.BAD_REQUEST,
            f"text messages are not supported on {MSGPACK_SUBPROTOCOL}: send binary messages",
        )
    if len(raw) > max_bytes:
        return p.Rejected(None, p.ErrorCode.MESSAGE_TOO_LARGE, "message too large")
    try:
        value = unpack(raw)
    except InvalidMessage as exc:
        return p.Rejected(None, p.ErrorCode.BAD_REQUEST, str(exc))
    return p.encode(value)


async def handle_binary(node: Node, session: Session, raw: str | bytes) -> None:
    """:meth:`Node.handle` for a message received on a ``hubbub.msgpack.v1`` session.

    Every adapter (the asyncio server, the ASGI app) calls this (or
    :func:`handle_binary_now`) instead of ``node.handle`` for its msgpack
    sessions: a refused message is answered, and counted as a strike, exactly
    as a refused JSON request is.
    """
    rest = handle_binary_now(node, session, raw)
    if rest is not None:
        await rest


def handle_binary_now(
    node: Node, session: Session, raw: str | bytes
) -> Coroutine[Any, Any, None] | None:
    """:func:`handle_binary` as :meth:`Node.handle_now` does it: what is left, if anything."""
    text = request_text(raw, node.config.max_request_bytes)
    if isinstance(text, str):
        return node.handle_now(session, text)
    return node.reject(session, text)
