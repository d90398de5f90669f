"""Compressing and inflating messages with permessage-deflate (RFC 7692 sections 6 and 7.2).

:class:`PerMessageDeflate` is the :class:`~hubbub.protocol.extensions.Extension`
a connection runs once permessage-deflate has been negotiated: it holds the
per-connection compression state and nothing about the handshake. The offers,
answers and adapter options that produce it live in
:mod:`hubbub.protocol.permessage_deflate`, which also re-exports everything
public here; the split keeps the frame-level hot path readable on its own.

Theory of operation
-------------------

Each end has one :class:`PerMessageDeflate` seen from its own side: *local*
parameters govern what it compresses, *remote* ones what it decompresses.

Compression (section 7.2). A message is compressed as one DEFLATE stream
flushed with ``Z_SYNC_FLUSH``, which ends it with an empty stored block whose
last four octets ``00 00 ff ff`` are removed before sending and appended again
before inflating. Only the first frame of a compressed message has RSV1 set
(section 6); control frames are never compressed. Fragments of a message are
compressed and inflated one frame at a time, so per-message state lives here.

Memory. With context takeover (the default), the LZ77 window of the previous
messages is the only state that has to survive between two messages. Instead
of keeping zlib objects alive (a compressor costs ``2**(window_bits + 2) +
2**(mem_level + 9)`` bytes plus ~6 KiB, a decompressor ``2**window_bits`` plus
~7 KiB), each direction keeps the last ``2**window_bits`` bytes of
uncompressed data it handled, and rebuilds its zlib object for the next
message with that tail as a preset dictionary (``zdict``). Back references of
the new stream then point into data the peer still has in its own window, so
the bytes on the wire are valid exactly as if the object had been kept. An
idle connection holds two byte strings (4 KiB each with the default 12-bit
windows) and no zlib object; ``keep_zlib_objects=True`` trades that memory for
CPU (worth it with 15-bit windows, whose dictionaries take longer to load).
A rebuilt compressor is also disposable, which allows sending a message that
does not shrink uncompressed without desynchronizing the two windows.

Safety. :meth:`PerMessageDeflate.decode` gets the remaining budget of the
message as ``max_size`` and never asks zlib for more than one byte past it
(``decompress(data, max_length)``), so a decompression bomb raises
:class:`~hubbub.exceptions.PayloadTooBig` (1009) after producing at most
``max_size + 1`` bytes.
"""

from __future__ import annotations

import zlib

from ..exceptions import PayloadTooBig, RemoteProtocolError
from .extensions import Extension
from .frames import Frame, Opcode

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "DEFAULT_MIN_SIZE",
    "DEFAULT_WINDOW_BITS",
    "EXTENSION_NAME",
    "PerMessageDeflate",
]

EXTENSION_NAME = "permessage-deflate"

# The defaults are justified with measurements in docs/compression.md.
DEFAULT_LEVEL = 6
"""zlib's default: level 1 sends 15-20% more bytes of small JSON for little CPU saved."""
DEFAULT_MEM_LEVEL = 5
"""A 4096-entry hash table, enough for a 4 KiB window."""
DEFAULT_WINDOW_BITS = 12
"""4 KiB windows: ~10% more bytes than 32 KiB, an eighth of the memory when idle."""
DEFAULT_MIN_SIZE = 32
"""Below 32 bytes, compressing saves less than a TCP/IP header, for ~15 µs of CPU."""

_TAIL = b"\x00\x00\xff\xff"
# Section 7.2.3.6: an empty stored block with BFINAL=0, once the tail is
# removed, is one octet.
_EMPTY_BLOCK = b"\x00"
# Section 7.2.3.4: a peer may end a message with a block that has BFINAL=1,
# followed by the header of an empty block (0x00) so that the appended tail
# decodes; what follows the final block may only be that.
_AFTER_FINAL_BLOCK = (_TAIL, _EMPTY_BLOCK + _TAIL)
_OP_CONT = Opcode.CONTINUATION


def _check_bits(name: str, bits: int) -> None:
    if isinstance(bits, bool) or not 8 <= bits <= 15:
        raise ValueError(f"{name} must be between 8 and 15, not {bits}")


def _check_options(level: int, mem_level: int, min_size: int) -> None:
    if not -1 <= level <= 9:
        raise ValueError(f"level must be between -1 and 9, not {level}")
    if not 1 <= mem_level <= 9:
        raise ValueError(f"mem_level must be between 1 and 9, not {mem_level}")
    if min_size < 0:
        raise ValueError(f"min_size must be positive or zero, not {min_size}")


def _remember(history: bytes, data: bytes, size: int) -> bytes:
    """The last ``size`` bytes of ``history + data``, copying as little as possible."""
    if len(data) >= size:
        return data[-size:]
    if not history:
        return data
    return (history + data)[-size:]


class PerMessageDeflate(Extension):
    """permessage-deflate on one connection, seen from one end.

    Args:
        local_no_context_takeover: compress each message with a fresh window.
        remote_no_context_takeover: the peer does so; inflate each message with
            a fresh window.
        local_max_window_bits: the window size (log2) the peer can inflate.
        remote_max_window_bits: the window size (log2) the peer compresses with.
        level: zlib compression level, -1 to 9.
        mem_level: zlib memory level, 1 to 9.
        min_size: messages sent in one frame and shorter than this are not
            compressed.
        keep_zlib_objects: keep zlib objects between messages instead of
            rebuilding them from the window (see the theory of operation).
    """

    name = EXTENSION_NAME

    def __init__(
        self,
        *,
        local_no_context_takeover: bool = False,
        remote_no_context_takeover: bool = False,
        local_max_window_bits: int = 15,
        remote_max_window_bits: int = 15,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        min_size: int = DEFAULT_MIN_SIZE,
        keep_zlib_objects: bool = False,
    ) -> None:
        _check_bits("local_max_window_bits", local_max_window_bits)
        _check_bits("remote_max_window_bits", remote_max_window_bits)
        _check_options(level, mem_level, min_size)
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self.level = level
        self.mem_level = mem_level
        self.min_size = min_size
        self.keep_zlib_objects = keep_zlib_objects
        # zlib >= 1.2.9 refuses a raw deflate window of 8 bits. With 9 bits,
        # zlib emits no distance above 2**9 - 262 = 250 (its MAX_DIST), so the
        # stream still fits a peer's 256-byte window.
        self._compress_wbits = -max(local_max_window_bits, 9)
        self._out_window = 1 << local_max_window_bits
        self._in_window = 1 << remote_max_window_bits
        # Sending.
        self._encoder: zlib._Compress | None = None
        self._out_history = b""  # last bytes compressed: the peer's window
        self._encoding = False  # a compressed fragmented message is being sent
        # Receiving.
        self._decoder: zlib._Decompress | None = None
        self._in_history = b""  # last bytes inflated: our window
        self._decoding = False  # a compressed message is being received
        self._in_size = 0  # bytes inflated in the current message
        self._in_fed = False  # compressed bytes were inflated in this message
        # A frame inflated in parts (decode(limit=...)): its compressed bytes
        # not inflated yet, and whether it ends its message.
        self._rest = b""
        self._rest_fin = False

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_max_window_bits={self.local_max_window_bits}, "
            f"remote_max_window_bits={self.remote_max_window_bits})"
        )

    # --- sending -------------------------------------------------------------------

    def encode(self, frame: Frame) -> Frame:
        """Compress a data frame (section 7.2.1); RSV1 goes on the first frame only."""
        first = frame.opcode != _OP_CONT
        if not first:
            if not self._encoding:
                return frame  # the first frame was sent uncompressed
        elif frame.fin and len(frame.data) < self.min_size:
            return frame
        encoder = self._encoder
        if encoder is None:
            encoder = self._encoder = self._new_encoder()
        data = frame.data
        out = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
        disposable = self.local_no_context_takeover or not self.keep_zlib_objects
        if frame.fin:
            self._encoding = False
            if disposable:
                self._encoder = None
            # Section 7.2.1: remove the 4 octets 00 00 ff ff of the final empty
            # block. zlib emits that block even with nothing new to flush, as
            # compress() was called; should it ever emit nothing (the stream is
            # byte-aligned after the previous flush), send the block explicitly.
            out = out[:-4] if out else _EMPTY_BLOCK
            if first and disposable and len(out) >= len(data):
                # Nothing gained: send the message as it is. The compressor was
                # built for this message only and is dropped, the window left
                # as the peer knows it (RFC 7692 section 6 lets any message go
                # uncompressed).
                return frame
        else:
            self._encoding = True
        if not self.local_no_context_takeover:
            self._out_history = _remember(self._out_history, data, self._out_window)
        return Frame(frame.opcode, out, frame.fin, first, frame.rsv2, frame.rsv3)

    def _new_encoder(self) -> zlib._Compress:
        if self._out_history:
            return zlib.compressobj(
                self.level,
                zlib.DEFLATED,
                self._compress_wbits,
                self.mem_level,
                zdict=self._out_history,
            )
        return zlib.compressobj(self.level, zlib.DEFLATED, self._compress_wbits, self.mem_level)

    # --- receiving -----------------------------------------------------------------

    partial_decoding = True

    @property
    def decode_pending(self) -> bool:
        """Whether the last frame decoded with a ``limit`` has more to inflate."""
        return bool(self._rest)

    def decode(
        self, frame: Frame, *, max_size: int | None = None, limit: int | None = None
    ) -> Frame:
        """Inflate a data frame (section 7.2.2), within ``max_size`` more bytes.

        With ``limit``, at most that many bytes are inflated now: if the frame
        holds more, the frame returned is its first part (FIN clear) and
        :attr:`decode_pending` is true until :meth:`decode_rest` has returned
        the rest, part by part.

        Raises:
            PayloadTooBig: the message inflates past the budget.
            RemoteProtocolError: RSV1 on a continuation frame, or invalid data.
        """
        if frame.opcode >= 8:
            return frame  # section 6.1: control frames are never compressed
        if frame.opcode == _OP_CONT:
            if not self._decoding:
                return frame
            if frame.rsv1:
                # Section 6.1: RSV1 is set on the first frame of a message only.
                raise RemoteProtocolError("RSV1 set on a continuation frame")
        else:
            if not frame.rsv1:
                return frame
            self._decoding = True
            self._in_size = 0
            self._in_fed = False
        out = b""
        if frame.data:
            self._in_fed = True
            out = self._inflate(frame.data, max_size, limit)
        return self._decoded(
            frame.opcode, out, frame.fin, max_size=max_size, rsv2=frame.rsv2, rsv3=frame.rsv3
        )

    def decode_rest(self, *, max_size: int | None = None, limit: int | None = None) -> Frame:
        """The next part of the frame that :meth:`decode` left pending.

        A continuation frame (FIN set on the last part if the frame had it),
        with at most ``limit`` bytes; ``max_size`` as in :meth:`decode`.

        Raises:
            PayloadTooBig: the message inflates past the budget.
            RemoteProtocolError: invalid data.
        """
        rest, self._rest = self._rest, b""
        out = self._inflate(rest, max_size, limit) if rest else b""
        return self._decoded(_OP_CONT, out, self._rest_fin, max_size=max_size)

    def _decoded(
        self,
        opcode: Opcode,
        out: bytes,
        fin: bool,
        *,
        max_size: int | None,
        rsv2: bool = False,
        rsv3: bool = False,
    ) -> Frame:
        """The frame holding ``out``; ends the message after a final frame's last part."""
        if self._rest:
            self._rest_fin = fin
            fin = False
        elif fin:
            # An entirely empty payload is not valid DEFLATE data, but appending
            # the tail to it would leave the inflater inside a block header and
            # corrupt the next message: accept it as an empty message instead.
            if self._in_fed:
                more = self._inflate(_TAIL, None if max_size is None else max_size - len(out))
                if more:
                    out += more
            self._end_message()
        if out and not self.remote_no_context_takeover:
            self._in_history = _remember(self._in_history, out, self._in_window)
        return Frame(opcode, out, fin, False, rsv2, rsv3)

    def _inflate(self, data: bytes, budget: int | None, limit: int | None = None) -> bytes:
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = self._new_decoder()
        try:
            if budget is None:
                out = decoder.decompress(data, limit or 0)
            else:
                # Ask for one byte more than allowed: getting it proves the
                # message too big, and no more than that is ever inflated.
                # (max_length=0 would mean "no limit": never pass it.)
                ask = max(budget, 0) + 1
                out = decoder.decompress(data, ask if limit is None else min(ask, limit))
                if len(out) > budget:
                    size = self._in_size + len(out)
                    self._decoder = None  # the connection fails: free it now
                    raise PayloadTooBig(size, self._in_size + budget)
        except zlib.error as exc:
            self._decoder = None
            raise RemoteProtocolError(f"invalid compressed data: {exc}") from None
        if limit is not None:
            # Output stopped at the limit: what zlib did not take is the rest
            # of the frame (less than 258 bytes of a match may also wait
            # inside zlib: the next call or the tail brings them out).
            self._rest = decoder.unconsumed_tail
        self._in_size += len(out)
        return out

    def _new_decoder(self) -> zlib._Decompress:
        wbits = -self.remote_max_window_bits
        if self._in_history:
            return zlib.decompressobj(wbits, zdict=self._in_history)
        return zlib.decompressobj(wbits)

    def _end_message(self) -> None:
        self._decoding = False
        decoder = self._decoder
        if decoder is None:
            return
        if decoder.eof:
            # Section 7.2.3.4: the peer ended its DEFLATE stream (BFINAL=1); the
            # next message starts a new one, from the window kept here.
            if decoder.unused_data not in _AFTER_FINAL_BLOCK:
                raise RemoteProtocolError("data after the final DEFLATE block")
            self._decoder = None
        elif self.remote_no_context_takeover or not self.keep_zlib_objects:
            self._decoder = None

    # --- memory --------------------------------------------------------------------

    def compact(self) -> None:
        """Drop zlib objects kept between messages; for an adapter's idle timer.

        Only useful with ``keep_zlib_objects=True``: the next message rebuilds
        them from the windows kept. A message in progress is not affected.
        """
        # Every frame we send ends with a sync flush, on a block boundary, so
        # even a message in progress continues from a rebuilt compressor. The
        # peer's frames may end anywhere, inside a block: keep that inflater.
        self._encoder = None
        if not self._decoding:
            self._decoder = None

    def release(self) -> None:
        """Free everything; the connection is closed."""
        self._encoder = self._decoder = None
        self._out_history = self._in_history = self._rest = b""
