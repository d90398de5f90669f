"""Large binary frames: gathered in pieces, or read straight into the message.

:class:`LargeFrames` is a mixin of :class:`hubbub.protocol.connection.Connection`.
A binary frame with more than 64 KiB still to come once its header is in is not
parsed piece by piece (nothing reads binary data before it is whole, unlike
text, which is validated as it arrives: section 8.1). The connection notes how
many bytes are missing (``large_frame_missing``) and one of two things happens:

* the adapter keeps calling ``receive_data()``: the pieces are held as they are
  and joined once, unmasked in the same pass (section 5.3), when the last one
  arrives (:meth:`LargeFrames._large_frame`);
* the adapter can read into memory (``BufferedProtocol``, ``recv_into``): it asks
  :meth:`LargeFrames.receive_buffer` for the missing part of the payload, which
  is the message's final ``bytes`` (:class:`hubbub.speedups.Payload`), reads
  into it and reports with :meth:`LargeFrames.receive_buffer_updated`. Reads
  stop at the frame's end; nothing is copied between the kernel and the
  message the application receives.

The two may be mixed: ``receive_data()`` during a direct read copies into the
payload. A payload that cannot be allocated at once (``max_size=None`` and a
huge length) falls back to gathering pieces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import RemoteProtocolError
from ..speedups import ACCELERATED as _MASK_AS_READ
from ..speedups import Payload as _Payload
from ..speedups import mask_inplace as _mask_inplace
from ..speedups import unmask_join as _unmask_join
from .extensions import Extension
from .messages import _NOTHING

__all__ = ["LargeFrames"]

# A payload read into directly is unmasked read by read with the C accelerator
# (_MASK_AS_READ), while each piece is in the CPU cache; in pure Python one
# pass at the end is cheaper (each pass goes through big integers).


def _header(head: bytes) -> tuple[int, int, int, bytes | None]:
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


class LargeFrames:
    """The large-frame half of a connection's reading."""

    # The slots are the connection's (see Connection.__slots__): an empty
    # tuple here keeps instances free of a __dict__. Hidden from mypy, which
    # would otherwise refuse every assignment to the connection's slots.
    if not TYPE_CHECKING:
        __slots__ = ()

    extensions: list[Extension]
    eof_received: bool
    _reading: bool
    large_frame_missing: int
    _held: list[bytes]
    _direct: tuple[Any, memoryview, int, bytes | None] | None

    def _data_frame(self, opcode: int, fin: int | bool, data: bytes) -> None:
        raise NotImplementedError  # MessageAssembler's

    def _remote_error(self, exc: RemoteProtocolError) -> None:
        raise NotImplementedError  # the connection's

    def receive_buffer(self) -> memoryview | None:
        """Where the next bytes received may be written directly, if anywhere.

        While a large binary frame is arriving without extensions, this is a
        writable view of the part of its payload still missing: an adapter that
        can read into memory reads into it, then calls
        :meth:`receive_buffer_updated`. Otherwise ``None``: use
        :meth:`receive_data`. Both may be mixed; the view is only valid until
        the next call to either.
        """
        if not self.large_frame_missing or self.extensions or not self._reading:
            return None
        direct = self._direct
        if direct is None:
            direct = self._direct = self._start_direct()
            if direct is None:
                return None
        view = direct[1]
        return view[len(view) - self.large_frame_missing :]

    def _start_direct(self) -> tuple[Any, memoryview, int, bytes | None] | None:
        # The held pieces start with the frame's header, checked when the frame
        # began (_parse_frames set _need); they hold less than the payload.
        held = self._held
        b0, length, hlen, mask = _header(held[0])
        try:
            payload = _Payload(length)
        except (MemoryError, OverflowError, ValueError, OSError):
            # No room for the whole payload at once (max_size=None and a huge
            # length): keep gathering the pieces as they come.
            return None
        self._held = _NOTHING
        view = payload.view()
        pos = 0
        for i, piece in enumerate(held):
            chunk = memoryview(piece)[hlen:] if i == 0 else piece
            view[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
        if mask is not None and _MASK_AS_READ:
            _mask_inplace(view, 0, pos, mask)
        return payload, view, b0, mask

    def receive_buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the last :meth:`receive_buffer`.

        May be called for each read, or once for several reads made one after
        the other into the same view.
        """
        direct = self._direct
        if direct is None and self.eof_received:
            return  # the connection was lost meanwhile: nothing to account for
        if direct is None or not 0 < nbytes <= self.large_frame_missing:
            raise ValueError(f"{nbytes} bytes do not fit the receive buffer")
        payload, view, b0, mask = direct
        if mask is not None and _MASK_AS_READ:
            # Unmasked as it arrives (section 5.3), while it is in the cache.
            start = len(view) - self.large_frame_missing
            _mask_inplace(view, start, start + nbytes, mask, start)
        self.large_frame_missing -= nbytes
        if self.large_frame_missing:
            return
        self._direct = None
        view.release()
        data = payload.finish() if _MASK_AS_READ else payload.finish(mask)
        if not self._reading:
            return
        try:
            self._data_frame(b0 & 0x0F, b0 & 0x80, data)
        except RemoteProtocolError as exc:
            self._remote_error(exc)

    def _large_frame(self, held: list[bytes]) -> bytes:
        """Handle the large binary frame gathered in ``held``; return what follows it.

        ``held[0]`` starts with the frame's header, checked when the frame began
        (``_parse_frames`` set ``_need``); the last piece may run past the frame.
        """
        b0, length, hlen, mask = _header(held[0])
        payload = _unmask_join(held, hlen, length, mask)
        extra = sum(map(len, held)) - hlen - length
        last = held[-1]
        try:
            self._data_frame(b0 & 0x0F, b0 & 0x80, payload)
        except RemoteProtocolError as exc:
            self._remote_error(exc)
            return b""
        return last[len(last) - extra :] if extra > 0 else b""
