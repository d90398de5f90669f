"""Large binary frames: gathered in pieces, or read straight into the message.

A binary frame of 64 KiB or more with more than 4 KiB of it still to come once
its header is in is not parsed piece by piece (nothing reads binary data before
it is whole, unlike text, which is validated as it arrives: section 8.1). The
connection's frame reader (:class:`~hubbub.protocol.reader.FrameReader`) hands
it to a :class:`LargeFrameReader`, an object of its own that the frame reader holds
(``FrameReader.large_frame``, also ``Connection.large_frame``) only while that
frame arrives, and one of two things happens:

* the adapter keeps calling ``receive_data()``: the reader holds the pieces as
  they are (:meth:`LargeFrameReader.hold`) and joins them once, unmasked in the
  same pass (section 5.3), when the last one arrives
  (:meth:`LargeFrameReader.join_held`);
* the adapter can read into memory (``BufferedProtocol``, ``recv_into``): it asks
  the connection's ``receive_buffer()`` for the missing part of the payload,
  which is the message's final ``bytes`` (:class:`hubbub.speedups.Payload`), reads
  into it and reports with ``receive_buffer_updated()``. Reads stop at the
  frame's end; nothing is copied between the kernel and the message the
  application receives.

The two may be mixed: ``receive_data()`` during a direct read copies into the
payload (:meth:`LargeFrameReader.copy_in`). A payload that cannot be allocated
at once (``max_size=None`` and a huge length) falls back to gathering pieces.

The reader never calls back into the frame reader: it returns the frame's
first byte and payload once complete, and the frame reader hands them to the
message assembler like any other frame.
"""

from __future__ import annotations

from typing import Any

from ..speedups import ACCELERATED as _MASK_AS_READ
from ..speedups import Payload as _Payload
from ..speedups import mask_inplace as _mask_inplace
from ..speedups import unmask_join as _unmask_join

__all__ = ["LargeFrameReader"]

# A payload read into directly is unmasked read by read with the C accelerator
# (_MASK_AS_READ), while each piece is in the CPU cache; in pure Python one
# pass at the end is cheaper (each pass goes through big integers).


def _header(head: bytes | bytearray) -> tuple[int, int, int, bytes | None]:
    """First byte, payload length, header length and masking key of a frame.

    ``head`` starts with a whole header that was checked already (section 5.2).
    """
    b0, b1 = head[0], head[1]
    length = b1 & 0x7F
    hlen = 2
    if length == 126:
        length, hlen = int.from_bytes(head[2:4], "big"), 4
    elif length == 127:
        length, hlen = int.from_bytes(head[2:10], "big"), 10
    mask = None
    if b1 & 0x80:
        mask, hlen = bytes(head[hlen : hlen + 4]), hlen + 4
    return b0, length, hlen, mask


class LargeFrameReader:
    """One large binary frame while it arrives (see the module docstring).

    Args:
        missing: bytes of the frame still to come after what the frame reader's
            buffer holds (its header and the start of its payload, handed over
            with :meth:`hold_head`).
    """

    __slots__ = ("_direct", "_held", "missing")

    def __init__(self, missing: int) -> None:
        self.missing = missing
        """Bytes of the frame still to come."""
        self._held: list[bytes | bytearray] = []
        # Once an adapter asked for receive_buffer(): the payload being read
        # into, a view of it, the frame's first byte and its masking key.
        self._direct: tuple[Any, memoryview, int, bytes | None] | None = None

    @property
    def reading_directly(self) -> bool:
        """Whether the payload is read into its final ``bytes`` (see :meth:`buffer`)."""
        return self._direct is not None

    # --- gathering pieces ------------------------------------------------------

    def hold_head(self, head: bytes | bytearray) -> None:
        """Keep the frame's header and the start of its payload (not in ``missing``).

        ``head`` is kept as it is: the caller lets go of it.
        """
        self._held.append(head)

    def hold(self, piece: bytes) -> bool:
        """Keep a piece of the frame (the first one starts with its header).

        Copying each piece into the frame reader's buffer would reallocate and
        copy the whole buffer every time (quadratic for a 1 MiB frame).

        Returns:
            Whether the frame is complete (the last piece may run past it).
        """
        self._held.append(piece)
        self.missing -= len(piece)
        return self.missing <= 0

    def join_held(self) -> bytes:
        """The held pieces as they arrived, joined (for extensions to parse)."""
        return b"".join(self._held)

    def finish_held(self) -> tuple[int, bytes, bytes | memoryview]:
        """The complete frame's first byte, its payload, and what followed it.

        The payload is copied (and unmasked) once, straight from the pieces;
        what followed is a view of the last piece, not a copy of it.
        """
        held = self._held
        b0, length, hlen, mask = _header(held[0])
        payload = _unmask_join(held, hlen, length, mask)
        extra = sum(map(len, held)) - hlen - length
        last = held[-1]
        assert type(last) is bytes  # a piece given to hold(): the head came first
        return b0, payload, memoryview(last)[len(last) - extra :] if extra > 0 else b""

    # --- reading straight into the payload -------------------------------------

    def buffer(self) -> memoryview | None:
        """A writable view of the part of the payload still missing, if possible.

        The first call moves what was held into the final payload; ``None``
        when no payload of that size can be allocated at once.
        """
        direct = self._direct
        if direct is None:
            direct = self._direct = self._start_direct()
            if direct is None:
                return None
        view = direct[1]
        return view[len(view) - self.missing :]

    def _start_direct(self) -> tuple[Any, memoryview, int, bytes | None] | None:
        # The held pieces start with the frame's header, checked when the frame
        # began; they hold less than the payload.
        held = self._held
        b0, length, hlen, mask = _header(held[0])
        try:
            payload = _Payload(length)
        except (MemoryError, OverflowError, ValueError, OSError):
            # No room for the whole payload at once (max_size=None and a huge
            # length): keep gathering the pieces as they come.
            return None
        self._held = []
        view = payload.view()
        pos = 0
        for i, piece in enumerate(held):
            chunk = memoryview(piece)[hlen:] if i == 0 else piece
            view[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
        if mask is not None and _MASK_AS_READ:
            _mask_inplace(view, 0, pos, mask)
        return payload, view, b0, mask

    def copy_in(self, data: bytes | bytearray | memoryview) -> int:
        """Copy the head of ``data`` into the payload read directly; return how much.

        For bytes that reached the connection through ``receive_data()`` while
        an adapter reads into the payload; report them with :meth:`updated`.
        """
        assert self._direct is not None
        view = self._direct[1]
        take = min(len(data), self.missing)
        start = len(view) - self.missing
        view[start : start + take] = data[:take] if take < len(data) else data
        return take

    def updated(self, nbytes: int) -> tuple[int, bytes] | None:
        """``nbytes`` were written at the start of the last :meth:`buffer`.

        Returns:
            The frame's first byte and its payload once complete, else None.

        Raises:
            ValueError: no view was handed out, or ``nbytes`` does not fit it.
        """
        direct = self._direct
        if direct is None or not 0 < nbytes <= self.missing:
            raise ValueError(f"{nbytes} bytes do not fit the receive buffer")
        payload, view, b0, mask = direct
        if mask is not None and _MASK_AS_READ:
            # Unmasked as it arrives (section 5.3), while it is in the cache.
            start = len(view) - self.missing
            _mask_inplace(view, start, start + nbytes, mask, start)
        self.missing -= nbytes
        if self.missing:
            return None
        self._direct = None
        view.release()
        return b0, payload.finish() if _MASK_AS_READ else payload.finish(mask)

    def release(self) -> None:
        """Let go of the payload and the pieces (the connection was closed, failed or lost)."""
        self._direct = None
        self._held = []
