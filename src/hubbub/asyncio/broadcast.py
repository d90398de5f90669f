"""Send one message to many connections: :func:`broadcast`.

Theory of operation
-------------------

A server does not mask its frames (RFC 6455 section 5.1), so one encoded frame
is byte for byte the same on every connection: :func:`broadcast` builds it once
and hands the same ``bytes`` object to every transport, with no per-connection
encoding, copy or task. Connections where that does not hold take the
per-connection path (the core encodes the frame as :meth:`Connection.send`
would): a client connection (it masks), or one with an extension such as
permessage-deflate (it compresses per connection, RFC 7692).

Only OPEN connections receive the message. A connection in the middle of
sending a fragmented message is skipped: a data frame may not be interleaved
with the fragments of another message (section 5.4).

Slow consumers
--------------

:func:`broadcast` never waits: one stuck client must not hold back the
others, nor grow the server's memory without limit. The bytes a client has
not read yet sit in its transport's write buffer, so that buffer is what is
bounded. When it holds more than ``limit`` bytes (by default: while the
transport has paused writing, from when its buffer passed the high water mark
of ``write_limit`` until it drained below the low one):

* ``on_slow="skip"`` (the default): that client misses this message. Its
  buffer never exceeds ``limit`` plus one message, and it gets messages again
  once it catches up. Fine for state that is sent again (prices, positions).
* ``on_slow="close"``: the connection is failed with close code 1008 (policy
  violation, reason "slow consumer") and dropped after ``close_timeout`` if
  the peer does not even read the close frame. For streams where a gap is
  worse than a reconnection.

The return value counts what happened, so an application can log or export it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

from ..exceptions import HubbubError
from ..protocol.connection import State
from ..protocol.frames import CloseCode, Opcode, encode_shared_frame
from ..speedups import broadcast_frames as _broadcast_frames
from .connection import Connection

__all__ = ["BroadcastResult", "broadcast"]

_OPEN = State.OPEN


def _slow(conn: Connection, limit: int | None) -> bool:
    # Without a limit, the transport's own flow control tells: it paused
    # writing above its high water mark and resumes below the low one.
    return conn.writing_paused if limit is None else conn.buffered_amount > limit


class BroadcastResult(NamedTuple):
    """What :func:`broadcast` did, connection by connection."""

    sent: int
    """Connections the message was written to (or queued for, in their buffer)."""
    skipped: int
    """OPEN connections that did not get it: slow, or sending a fragmented message."""
    closed: int
    """Connections failed with 1008 because they were too slow (``on_slow="close"``)."""


def broadcast(
    connections: Iterable[Connection],
    message: str | bytes | bytearray | memoryview,
    *,
    on_slow: Literal["skip", "close"] = "skip",
    limit: int | None = None,
) -> BroadcastResult:
    """Send ``message`` to every OPEN connection, without waiting.

    Args:
        connections: the recipients, e.g. ``server.connections``. Connections
            that are not OPEN are ignored.
        message: ``str`` is sent as a text message, bytes-like as binary.
        on_slow: what to do with a connection whose write buffer holds more
            than ``limit`` bytes: ``"skip"`` it for this message, or ``"close"``
            it with 1008. See the module's documentation.
        limit: the write buffer bound in bytes; by default each connection's
            high water mark (its ``write_limit``).

    Returns:
        How many connections got the message, were skipped and were closed.

    Raises:
        TypeError: ``message`` is neither ``str`` nor bytes-like.
        ValueError: ``on_slow`` is not ``"skip"`` or ``"close"``.
    """
    if isinstance(message, str):
        opcode = Opcode.TEXT
        payload = message.encode()
    elif isinstance(message, (bytes, bytearray, memoryview)):
        opcode = Opcode.BINARY
        payload = bytes(message)
    else:
        raise TypeError(f"cannot broadcast {type(message).__name__}: use str or bytes")
    if on_slow not in ("skip", "close"):
        raise ValueError(f"on_slow must be 'skip' or 'close', not {on_slow!r}")
    close_slow = on_slow == "close"
    # One frame for every server connection without extensions (section 5.1:
    # server frames are not masked, so they are identical).
    frame = encode_shared_frame(opcode, payload)
    # The usual case first, every connection in one call (a loop in C with the
    # accelerator): a server connection without extensions that can take the
    # shared frame now takes it in its send_frames_nowait. The others are
    # sorted out below.
    sent, refused = _broadcast_frames(connections, frame, limit)
    skipped = closed = 0
    for conn in refused:
        if conn.protocol.state is not _OPEN:
            continue
        if not conn.shares_frames and not _slow(conn, limit):
            # A client masks each frame; an extension transforms it per
            # connection (RFC 7692 keeps a compression context per connection).
            try:
                conn.send_nowait(message)
            except HubbubError:  # closing, or sending a fragmented message
                skipped += 1
            else:
                sent += 1
            continue
        # Not written: too slow, closing, or in the middle of a fragmented
        # message (section 5.4 forbids interleaving a data frame).
        if close_slow and _slow(conn, limit):
            conn.fail(CloseCode.POLICY_VIOLATION, "slow consumer")
            closed += 1
        else:
            skipped += 1
    return BroadcastResult(sent, skipped, closed)
