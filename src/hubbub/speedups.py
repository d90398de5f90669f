"""The hot-path building blocks: the compiled accelerator or its pure-Python twins.

Theory of operation
-------------------

:mod:`hubbub._speedups` (C, built by ``pip install`` when a compiler is there)
provides these functions and one type; this module defines the same in pure
Python and exports whichever is available, so the rest of the library imports
them from here and never cares:

* :func:`apply_mask` - masking, RFC 6455 section 5.3;
* :func:`parse_messages` - the small-message fast path of the frame parser:
  every complete frame in the buffer that is a whole text or binary message by
  itself becomes a ``str``/``bytes`` in one call; anything else stops it and is
  left to the general parser in :mod:`hubbub.protocol.connection`;
* :func:`message_frame` - a whole unmasked frame for a ``str`` or bytes-like
  message, header and payload in one ``bytes`` (what a server without
  extensions sends, and what a broadcast writes to every connection);
* :func:`unmask_join` - a large frame gathered in pieces becomes its payload;
* :func:`write_chunks` - the one drain of a connection's outgoing chunks (the
  core's ``outgoing`` list) into a transport, used by every adapter path;
* :func:`broadcast_frames` - a broadcast's loop over connections, calling each
  one's public ``send_frames_nowait``;
* :class:`Payload` - a large frame's payload read straight into its final
  ``bytes`` (the C type fills a ``bytes`` object in place; the pure-Python one
  fills an anonymous memory mapping and copies it once at the end).

Both implementations behave identically (``tests/test_speedups.py`` checks them
against each other); the C one is faster. Setting the environment variable
``HUBBUB_NO_EXTENSIONS=1`` forces the pure-Python ones (CI runs the tests both
ways). :data:`ACCELERATED` tells which is in use.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from . import _speedups

__all__ = [
    "ACCELERATED",
    "Payload",
    "PyPayload",
    "apply_mask",
    "broadcast_frames",
    "mask_inplace",
    "message_frame",
    "parse_messages",
    "py_apply_mask",
    "py_broadcast_frames",
    "py_mask_inplace",
    "py_message_frame",
    "py_parse_messages",
    "py_unmask_join",
    "py_write_chunks",
    "unmask_join",
    "write_chunks",
]

Buffer = bytes | bytearray | memoryview

_from_bytes = int.from_bytes


def py_apply_mask(data: Buffer, mask: Buffer, offset: int = 0) -> bytes:
    """XOR ``data`` with the 4-byte ``mask``; ``offset`` is where ``data[0]`` sits in the payload.

    XORing two big integers runs in C at memory speed, far faster than a
    byte-by-byte loop; converting between bytes and integers is what costs.
    """
    if len(mask) != 4:
        raise ValueError("mask must be 4 bytes long")
    if offset < 0:
        raise ValueError("offset must be >= 0")
    n = len(data)
    if not n:
        return b""
    key = bytes(mask)
    if offset & 3:
        r = offset & 3
        key = key[r:] + key[:r]
    if n <= _SMALL:
        # The key repeated to a whole number of words: the XOR then has up to 3
        # bytes of key alone at its top (little-endian), which the slice drops.
        m = (n + 3) & ~3
        out = (_from_bytes(data, "little") ^ _from_bytes(key * (m >> 2), "little")).to_bytes(
            m, "little"
        )
        return out if m == n else out[:n]
    # Large payloads go by chunks (a multiple of 4, so the key stays aligned):
    # the temporary integers then stay in the CPU cache. The repeated key is
    # the key times 0x...000100000001 (one bit per 32-bit word: no carries),
    # a multiplication much cheaper than converting a repeated key from bytes.
    word = _from_bytes(key, "little")
    keys = word * _REPEAT_CHUNK
    view = memoryview(data)
    parts = []
    whole = n - n % _CHUNK
    for i in range(0, whole, _CHUNK):
        parts.append(
            (_from_bytes(view[i : i + _CHUNK], "little") ^ keys).to_bytes(_CHUNK, "little")
        )
    if whole < n:
        rest = n - whole
        m = (rest + 3) & ~3
        tail = (_from_bytes(view[whole:], "little") ^ (keys & ((1 << (m << 3)) - 1))).to_bytes(
            m, "little"
        )
        parts.append(tail if m == rest else tail[:rest])
    return parts[0] if len(parts) == 1 else b"".join(parts)


_SMALL = 512
_CHUNK = 1 << 16
_REPEAT_CHUNK = _from_bytes(b"\x01\x00\x00\x00" * (_CHUNK >> 2), "little")


def py_mask_inplace(
    buf: bytearray | memoryview, start: int, end: int, mask: Buffer, offset: int = 0
) -> None:
    """XOR ``buf[start:end]`` with the mask, in place."""
    if start < 0 or end > len(buf) or start > end:
        raise ValueError("bad range")
    buf[start:end] = py_apply_mask(memoryview(buf)[start:end], mask, offset)


# --- UTF-8 -----------------------------------------------------------------------
#
# A validator state is 0 between characters, else: bits 0-1 the continuation
# bytes still due, bits 8-15 and 16-23 the range the next byte must fall in
# (narrower than 80..BF only right after E0, ED, F0 and F4: overlong forms,
# surrogates and code points over U+10FFFF; Unicode table 3-7).


def py_unmask_join(chunks: Sequence[Buffer], start: int, length: int, mask: Buffer | None) -> bytes:
    """Bytes ``start:start+length`` of the chunks joined, unmasked with ``mask`` if given.

    A large frame gathered in pieces becomes its payload (section 5.3: the key
    starts over at the payload's first byte).
    """
    if start < 0 or length < 0:
        raise ValueError("start and length must be >= 0")
    parts: list[bytes] = []
    need = length
    for chunk in chunks:
        n = len(chunk)
        if start >= n:
            start -= n
            continue
        take = min(n - start, need)
        parts.append(bytes(chunk[start : start + take]))
        start = 0
        need -= take
        if not need:
            break
    if need:
        raise ValueError("chunks hold fewer bytes than asked for")
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    return data if mask is None else py_apply_mask(data, mask)


# --- frames ------------------------------------------------------------------------


def py_parse_messages(buf: Buffer, pos: int, masked: bool, max_size: int, events: list[Any]) -> int:
    """Append the complete single-frame text/binary messages at ``buf[pos:]`` to ``events``.

    Stops at the first frame that is anything else (incomplete, control,
    fragmented, with RSV bits, over ``max_size``, wrongly masked, invalid
    UTF-8) and returns the position after the last frame taken; the general
    parser takes it from there. ``max_size`` -1 means no limit.
    """
    if pos < 0 or pos > len(buf):
        raise ValueError("pos out of range")
    end = len(buf)
    append = events.append
    want = 1 if masked else 0
    while end - pos >= 2:
        b0 = buf[pos]
        b1 = buf[pos + 1]
        # FIN set, RSV clear, text (0x81) or binary (0x82); section 5.2.
        if b0 not in {0x81, 0x82} or b1 >> 7 != want:
            break
        length = b1 & 0x7F
        start = pos + 2
        if length == 126:
            if end - pos < 4:
                break
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            start = pos + 4
        elif length == 127:
            if end - pos < 10:
                break
            length = _from_bytes(buf[pos + 2 : pos + 10], "big")
            if length >> 62:
                break
            start = pos + 10
        if max_size >= 0 and length > max_size:
            break
        if want:
            if end - start < 4:
                break
            stop = start + 4 + length
            if stop > end:
                break
            if length > _CHUNK:
                data = py_apply_mask(memoryview(buf)[start + 4 : stop], buf[start : start + 4])
            else:  # inlined _xor: this is the per-message hot path
                words = (length + 3) >> 2
                data = (
                    _from_bytes(buf[start + 4 : stop], "little")
                    ^ _from_bytes(bytes(buf[start : start + 4]) * words, "little")
                ).to_bytes(words << 2, "little")
                if words << 2 != length:
                    data = data[:length]
        else:
            stop = start + length
            if stop > end:
                break
            data = bytes(buf[start:stop])
        if b0 == 0x81:
            try:
                append(data.decode())
            except UnicodeDecodeError:
                break
        else:
            append(data)
        pos = stop
    return pos


_pack_short = struct.Struct("!BB").pack
_pack_medium = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


def py_message_frame(message: str | Buffer, /) -> bytes:
    """One whole unmasked frame (FIN, no RSV bit) carrying ``message``.

    ``str`` becomes a text frame of its UTF-8, bytes-like a binary frame
    (RFC 6455 section 5.2). What a server sends without extensions (section
    5.1: it does not mask), and so the same bytes on every such connection.
    """
    if isinstance(message, str):
        b0 = 0x81
        data = message.encode()
    elif isinstance(message, (bytes, bytearray, memoryview)):
        b0 = 0x82
        data = message if type(message) is bytes else bytes(message)
    else:
        raise TypeError(f"cannot send {type(message).__name__}: use str or bytes")
    n = len(data)
    if n < 126:
        return _pack_short(b0, n) + data
    if n < 65536:
        return _pack_medium(b0, 126, n) + data
    return _pack_long(b0, 127, n) + data


# --- writing -------------------------------------------------------------------------


class ChunkWriter(Protocol):
    """Where :func:`write_chunks` puts the chunks: an asyncio transport, say."""

    def write(self, data: bytes, /) -> None: ...

    def writelines(self, list_of_data: list[bytes], /) -> None: ...


class SharedFramesSink(Protocol):
    """A connection that :func:`broadcast_frames` can write shared frames to."""

    def send_frames_nowait(self, frames: bytes, *, limit: int | None = None) -> bool: ...


Sink = TypeVar("Sink", bound=SharedFramesSink)


def py_write_chunks(chunks: list[bytes], writer: ChunkWriter, last: bytes | None = None, /) -> None:
    """Hand ``chunks``, then ``last`` if given, to ``writer`` in one call; empty the list.

    Nothing when there is nothing; ``write`` for a single chunk (an asyncio
    transport then joins nothing), ``writelines`` for more. ``writer`` must not
    keep the list. If it raises, the chunks stay in the list (``last`` with
    them if there were chunks before it).
    """
    if last is not None:
        if not chunks:
            writer.write(last)
            return
        chunks.append(last)
    if chunks:
        if len(chunks) == 1:
            writer.write(chunks[0])
        else:
            writer.writelines(chunks)
        chunks.clear()


def py_broadcast_frames(
    connections: Iterable[Sink], frames: bytes, limit: int | None, /
) -> tuple[int, list[Sink]]:
    """Call ``send_frames_nowait(frames)`` on each connection (``limit=limit`` unless None).

    Returns:
        How many took the frames, and the connections that refused them, in order.
    """
    sent = 0
    refused: list[Sink] = []
    for conn in connections:
        if (
            conn.send_frames_nowait(frames)
            if limit is None
            else conn.send_frames_nowait(frames, limit=limit)
        ):
            sent += 1
        else:
            refused.append(conn)
    return sent, refused


class PyPayload:
    """A large frame's payload, read into in place and then handed over as bytes.

    ``view()`` is a writable view of the whole payload; once every byte is
    written, ``finish(mask)`` returns it as ``bytes``, unmasked with ``mask``
    (RFC 6455 section 5.3) if one is given. The compiled twin writes into the
    final ``bytes`` object itself and saves the copy this one makes.

    The memory is an anonymous mapping, as the C twin's large ``bytes`` is: the
    system provides its pages as they are first written, so a frame header
    announcing a large payload costs address space, not memory, until the
    payload actually arrives.
    """

    __slots__ = ("_buf", "_size")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self._size = size
        self._buf: mmap.mmap | bytearray | None = mmap.mmap(-1, size) if size else bytearray()

    def __len__(self) -> int:
        return self._size

    def view(self) -> memoryview:
        if self._buf is None:
            raise BufferError("the payload was finished: it is read-only bytes now")
        return memoryview(self._buf)

    def finish(self, mask: Buffer | None = None, /) -> bytes:
        buf = self._buf
        if buf is None:
            raise RuntimeError("the payload was finished already")
        data = bytes(buf) if mask is None else py_apply_mask(memoryview(buf), mask)
        self._buf = None
        return data


# --- choosing ----------------------------------------------------------------------

apply_mask = py_apply_mask
mask_inplace = py_mask_inplace
unmask_join = py_unmask_join
parse_messages = py_parse_messages
message_frame = py_message_frame
write_chunks = py_write_chunks
broadcast_frames = py_broadcast_frames
Payload: type[PyPayload] | type[_speedups.Payload] = PyPayload
ACCELERATED = False
"""Whether the compiled accelerator is in use."""

if os.environ.get("HUBBUB_NO_EXTENSIONS", "") in ("", "0"):
    try:
        from . import _speedups
    except ImportError:  # no compiler at install time: stay in pure Python
        pass
    else:
        apply_mask = _speedups.apply_mask
        mask_inplace = _speedups.mask_inplace
        unmask_join = _speedups.unmask_join
        parse_messages = _speedups.parse_messages
        message_frame = _speedups.message_frame
        write_chunks = _speedups.write_chunks
        broadcast_frames = _speedups.broadcast_frames
        Payload = _speedups.Payload
        ACCELERATED = True
