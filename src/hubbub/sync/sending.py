"""The send side of a :mod:`hubbub.sync` connection: messages, fragmented or not.

``send()`` may be called from several threads. Every frame goes to the core
and the socket under the writer's lock, so frames never interleave on the
wire; a message sent from an iterable holds :attr:`Sender.mutex` for its whole
duration, so other senders wait until its last frame (RFC 6455 section 5.4
forbids interleaving data frames of two messages).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import NoReturn

from ..adapter import Data, Fragmenter
from ..exceptions import InvalidState
from ..protocol import connection as core
from ..protocol.frames import CloseCode, Opcode
from .writing import SocketWriter

__all__ = ["Sender"]


class Sender:
    """Sends messages through the core and a :class:`~hubbub.sync.writing.SocketWriter`.

    Args:
        protocol: the sans-I/O connection.
        writer: writes what the core queued, under its lock.
        closed: called when the connection is closing or closed (or a write
            gave up after ``send_timeout``): waits for the close and raises
            the :class:`~hubbub.exceptions.ConnectionClosed` that tells how.
    """

    def __init__(
        self, protocol: core.Connection, writer: SocketWriter, closed: Callable[[], NoReturn]
    ) -> None:
        self.protocol = protocol
        self.writer = writer
        self.mutex = threading.RLock()
        """Held for a whole message (a fragmented one: all its frames)."""
        self._closed = closed

    def send(self, message: Data | bytearray | memoryview | Iterable[Data], compress: bool) -> None:
        """:meth:`hubbub.sync.connection.Connection.send` (see there)."""
        with self.mutex:
            if isinstance(message, str):
                self._frame(Opcode.TEXT, message.encode(), True, compress)
            elif isinstance(message, (bytes, bytearray, memoryview)):
                self._frame(Opcode.BINARY, bytes(message), True, compress)
            elif isinstance(message, Iterable):
                self._fragments(message, compress)
            else:
                raise TypeError(f"cannot send {type(message).__name__}: use str or bytes")

    def _frame(self, opcode: int, data: bytes, fin: bool, compress: bool) -> None:
        writer = self.writer
        try:
            with writer.lock:
                self.protocol.send_data_frame(opcode, data, fin, compress=compress)
                writer.flush()
        except InvalidState:
            closing = True
        else:
            # This write gave up (send_timeout): the connection is failed.
            closing = writer.timed_out
        if closing:
            self._closed()

    def _fragments(self, message: Iterable[Data], compress: bool) -> None:
        fragmenter = Fragmenter()
        protocol = self.protocol
        try:
            for item in message:
                frame = fragmenter.push(item)
                if frame is not None:
                    self._frame(*frame, compress)
            frame = fragmenter.finish()
            if frame is not None:
                self._frame(*frame, compress)
        except BaseException:
            # Half a message went out and cannot be finished (section 5.4 allows
            # no other data frame before it ends): fail the connection.
            if protocol.sending_fragmented and protocol.state is core.State.OPEN:
                with self.writer.lock:
                    protocol.fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                    self.writer.flush()
            raise
