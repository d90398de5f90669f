"""Fragmented messages (RFC 6455 section 5.4), sending and streaming, for both adapters.

:class:`Fragmenter` turns the items of ``send(iterable)`` into frames;
:class:`FragmentStream` keeps the bookkeeping of ``recv_streaming()``;
:func:`join_fragments` and :func:`fragment_converter` turn queued fragments
into what the application asked for.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import cast

from ..exceptions import (
    ConcurrencyError,
)
from ..protocol.events import Fragment
from ..protocol.frames import Opcode

__all__ = [
    "FragmentStream",
    "Fragmenter",
    "fragment_converter",
    "join_fragments",
]


class Fragmenter:
    """Frames of a message sent from an iterable (RFC 6455 section 5.4).

    Each item becomes a frame once the next one is known, so the last frame
    carries FIN and no empty frame trails. Items are ``str`` (a text message)
    or bytes-like (binary), never both. :meth:`push` and :meth:`finish` return
    ``(opcode, data, fin)`` for the adapter to send, or None.
    """

    __slots__ = ("_opcode", "_pending", "_started")

    def __init__(self) -> None:
        self._opcode = 0
        self._pending: bytes | None = None
        self._started = False

    def push(self, item: object) -> tuple[int, bytes, bool] | None:
        """Take the next item; return the frame of the previous one, if any.

        Raises:
            TypeError: the item is neither str nor bytes-like, or its type
                differs from the first item's.
        """
        if isinstance(item, str):
            opcode, data = Opcode.TEXT, item.encode()
        elif isinstance(item, (bytes, bytearray, memoryview)):
            opcode, data = Opcode.BINARY, bytes(item)
        else:
            raise TypeError(f"cannot send {type(item).__name__} in a fragmented message")
        if not self._opcode:
            self._opcode = opcode
        elif opcode != self._opcode:
            raise TypeError("a fragmented message mixes text and binary")
        previous, self._pending = self._pending, data
        return None if previous is None else self._frame(previous, False)

    def finish(self) -> tuple[int, bytes, bool] | None:
        """The last frame, with FIN; None if the iterable was empty."""
        pending, self._pending = self._pending, None
        return None if pending is None else self._frame(pending, True)

    def _frame(self, data: bytes, fin: bool) -> tuple[int, bytes, bool]:
        opcode = Opcode.CONTINUATION if self._started else self._opcode
        self._started = True
        return opcode, data, fin


class FragmentStream:
    """The bookkeeping of ``recv_streaming()`` (section 5.4), shared by both adapters.

    A connection makes one when it first streams a message. While the frames
    of a message are streamed, the core reports them as
    :class:`~hubbub.protocol.events.Fragment` entries of the receive queue;
    ``recv()`` joins such entries into the message. If the application stops
    iterating before the last fragment, the next receive (:meth:`abandon`)
    discards the rest of that message, and the abandoned iterator raises
    :class:`ConcurrencyError` if it is resumed (its ``token`` is stale).
    """

    __slots__ = ("rest", "skip", "token")

    def __init__(self) -> None:
        self.rest = False
        """A fragment other than the last was handed out: the rest is unread."""
        self.skip = False
        self.token = 0

    def begin(self) -> int:
        """A stream starts: abandon the rest of the previous one; return this one's token."""
        self.abandon()
        return self.token

    def hand_out(
        self, fragment: Fragment, convert: Callable[[str | bytes, bool], str | bytes]
    ) -> str | bytes:
        """The fragment's data for the application, which owns the rest of the message now."""
        self.rest = not fragment.fin
        return convert(fragment.data, fragment.fin)

    def resume(self, token: int) -> None:
        """The stream with ``token`` asks for its next fragment.

        Raises:
            ConcurrencyError: another receive discarded the rest meanwhile.
        """
        if self.token != token:
            raise ConcurrencyError("another receive took over: the rest was discarded")
        self.rest = False

    def abandon(self) -> None:
        """A receive starts: the rest of a message whose stream was left is discarded."""
        if self.rest:
            self.rest = False
            self.skip = True
            self.token += 1

    def skipped(self, item: object) -> bool:
        """Whether ``item`` belongs to an abandoned message and is to be dropped."""
        if self.skip and type(item) is Fragment:
            if item.fin:
                self.skip = False
            return True
        self.skip = False
        return False


def join_fragments(parts: list[str | bytes]) -> str | bytes:
    """The message whose fragments' data are ``parts`` (all ``str`` or all ``bytes``)."""
    if isinstance(parts[0], str):
        return "".join(cast(list[str], parts))
    return b"".join(cast(list[bytes], parts))


def fragment_converter(decode: bool | None) -> Callable[[str | bytes, bool], str | bytes]:
    """``convert(data, fin)`` for the fragments of one message, as ``recv_streaming(decode)``.

    With ``decode=True`` a binary message is decoded across its fragments, so a
    character may be cut between frames.
    """
    if decode is None:
        return lambda data, fin: data
    if decode is False:
        return lambda data, fin: data.encode() if isinstance(data, str) else data
    decoder = codecs.getincrementaldecoder("utf-8")()
    return lambda data, fin: data if isinstance(data, str) else decoder.decode(data, fin)
