"""The permessage-deflate extension (RFC 7692), plugged into the sans-I/O core.

Theory of operation
-------------------

Negotiation (sections 5 and 7.1). A client offers ``permessage-deflate`` with
up to four parameters; the server accepts one offer, answering with the
parameters that bind both ends, or declines it (:class:`NegotiationError`, and
the next offer is tried). Each end ends up with one :class:`PerMessageDeflate`
seen from its own side: *local* parameters govern what it compresses, *remote*
ones what it decompresses. ``server_*`` parameters are local on the server and
remote on the client.

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

import re
import zlib
from collections.abc import Sequence
from typing import Any, Literal, TypedDict, Unpack, cast, overload

from ..exceptions import NegotiationError, PayloadTooBig, RemoteProtocolError
from .connection import Side
from .extensions import ClientExtensionFactory, Extension, ExtensionParams, ServerExtensionFactory
from .frames import Frame, Opcode

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "DEFAULT_MIN_SIZE",
    "DEFAULT_WINDOW_BITS",
    "ClientPerMessageDeflateFactory",
    "DeflateOptions",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
    "deflate_factories",
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

# Section 7.1.2.1: "a decimal integer value without leading zeroes between 8
# to 15, inclusive".
_WINDOW_BITS = re.compile(r"8|9|1[0-5]")
_SERVER_NCT = "server_no_context_takeover"
_CLIENT_NCT = "client_no_context_takeover"
_SERVER_MWB = "server_max_window_bits"
_CLIENT_MWB = "client_max_window_bits"
_PARAMETERS = frozenset({_SERVER_NCT, _CLIENT_NCT, _SERVER_MWB, _CLIENT_MWB})


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

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Inflate a data frame (section 7.2.2), within ``max_size`` more bytes.

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
            out = self._inflate(frame.data, max_size)
        if frame.fin:
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
        return Frame(frame.opcode, out, frame.fin, False, frame.rsv2, frame.rsv3)

    def _inflate(self, data: bytes, budget: int | None) -> bytes:
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = self._new_decoder()
        try:
            if budget is None:
                out = decoder.decompress(data)
            else:
                # Ask for one byte more than allowed: getting it proves the
                # message too big, and no more than that is ever inflated.
                # (max_length=0 would mean "no limit": never pass it.)
                out = decoder.decompress(data, max(budget, 0) + 1)
                if len(out) > budget:
                    size = self._in_size + len(out)
                    self._decoder = None  # the connection fails: free it now
                    raise PayloadTooBig(size, self._in_size + budget)
        except zlib.error as exc:
            self._decoder = None
            raise RemoteProtocolError(f"invalid compressed data: {exc}") from None
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
        self._out_history = self._in_history = b""


# --- negotiation -----------------------------------------------------------------


def _parse_params(params: ExtensionParams, *, response: bool) -> dict[str, str | None]:
    """Check parameters of an offer or a response (sections 7.1.1 and 7.1.2).

    Raises:
        NegotiationError: unknown or duplicate parameter, or invalid value.
    """
    found: dict[str, str | None] = {}
    for name, value in params:
        if name not in _PARAMETERS:
            raise NegotiationError(f"unknown {EXTENSION_NAME} parameter: {name}")
        if name in found:
            raise NegotiationError(f"duplicate {EXTENSION_NAME} parameter: {name}")
        if name in (_SERVER_NCT, _CLIENT_NCT):
            if value is not None:
                raise NegotiationError(f"{name} takes no value, got {value!r}")
        elif value is None:
            # Only an offer's client_max_window_bits may come without a value
            # (section 7.1.2.2).
            if name == _SERVER_MWB or response:
                raise NegotiationError(f"{name} needs a value")
        elif _WINDOW_BITS.fullmatch(value) is None:
            raise NegotiationError(f"{name} must be an integer from 8 to 15, got {value!r}")
        found[name] = value
    return found


def _reject_duplicate(accepted: Sequence[Extension]) -> None:
    # Section 5: permessage-deflate uses RSV1 and can be negotiated once.
    if any(ext.name == EXTENSION_NAME for ext in accepted):
        raise NegotiationError(f"{EXTENSION_NAME} was already negotiated")


class _Tuning:
    """The options that are not negotiated, shared by both factories."""

    level: int
    mem_level: int
    min_size: int
    keep_zlib_objects: bool

    def _set_tuning(self, level: int, mem_level: int, min_size: int, keep: bool) -> None:
        _check_options(level, mem_level, min_size)
        self.level = level
        self.mem_level = mem_level
        self.min_size = min_size
        self.keep_zlib_objects = keep

    def _extension(
        self, local_nct: bool, remote_nct: bool, local_bits: int, remote_bits: int
    ) -> PerMessageDeflate:
        return PerMessageDeflate(
            local_no_context_takeover=local_nct,
            remote_no_context_takeover=remote_nct,
            local_max_window_bits=local_bits,
            remote_max_window_bits=remote_bits,
            level=self.level,
            mem_level=self.mem_level,
            min_size=self.min_size,
            keep_zlib_objects=self.keep_zlib_objects,
        )


class ServerPerMessageDeflateFactory(_Tuning, ServerExtensionFactory):
    """Accept a client's permessage-deflate offer.

    The defaults keep memory low: both windows limited to 12 bits when the
    client allows it (a client that does not offer ``client_max_window_bits``
    cannot be limited, section 7.1.2.2), and no zlib object between messages.

    Args:
        server_no_context_takeover: always reset our window between messages
            (we also do so whenever the client asks).
        client_no_context_takeover: always ask the client to reset its window
            (we also ask when the client offers it, which costs nothing).
        server_max_window_bits: largest window we compress with; ``None`` for
            15 unless the client asks for less.
        client_max_window_bits: largest window we let the client compress with,
            if it offers to be limited; ``None`` for no limit.
        level, mem_level, min_size, keep_zlib_objects: see
            :class:`PerMessageDeflate`.
    """

    name = EXTENSION_NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = DEFAULT_WINDOW_BITS,
        client_max_window_bits: int | None = DEFAULT_WINDOW_BITS,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        min_size: int = DEFAULT_MIN_SIZE,
        keep_zlib_objects: bool = False,
    ) -> None:
        if server_max_window_bits is not None:
            _check_bits("server_max_window_bits", server_max_window_bits)
        if client_max_window_bits is not None:
            _check_bits("client_max_window_bits", client_max_window_bits)
        self._set_tuning(level, mem_level, min_size, keep_zlib_objects)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits

    def process_request_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> tuple[ExtensionParams, PerMessageDeflate]:
        """Accept one offer, or decline it with :class:`NegotiationError` (section 7.1)."""
        _reject_duplicate(accepted)
        offer = _parse_params(params, response=False)
        answer: ExtensionParams = []
        # Section 7.1.1.1: accepting an offer with server_no_context_takeover
        # means answering it; the server may also answer it unasked.
        server_nct = self.server_no_context_takeover or _SERVER_NCT in offer
        if server_nct:
            answer.append((_SERVER_NCT, None))
        # Section 7.1.1.2: the server may always answer client_no_context_takeover;
        # when the client offered it, answering lets us drop its window for free.
        client_nct = self.client_no_context_takeover or _CLIENT_NCT in offer
        if client_nct:
            answer.append((_CLIENT_NCT, None))
        # Section 7.1.2.1: answer the same or a smaller value than requested;
        # the server may also limit its window unasked.
        server_bits = 15 if self.server_max_window_bits is None else self.server_max_window_bits
        requested = offer.get(_SERVER_MWB)
        if requested is not None:
            server_bits = min(server_bits, int(requested))
        if requested is not None or server_bits < 15:
            answer.append((_SERVER_MWB, str(server_bits)))
        # Section 7.1.2.2: the client's window may only be limited if the client
        # offered client_max_window_bits, to its value at most.
        client_bits = 15
        if _CLIENT_MWB in offer:
            allowed = offer[_CLIENT_MWB]
            client_bits = 15 if allowed is None else int(allowed)
            if self.client_max_window_bits is not None:
                client_bits = min(client_bits, self.client_max_window_bits)
            if allowed is not None or client_bits < 15:
                answer.append((_CLIENT_MWB, str(client_bits)))
        return answer, self._extension(server_nct, client_nct, server_bits, client_bits)


class ClientPerMessageDeflateFactory(_Tuning, ClientExtensionFactory):
    """Offer permessage-deflate and check the server's answer.

    The default offer is ``permessage-deflate; client_max_window_bits``, as
    browsers send it: the server may limit our window, and asks for nothing it
    could have to decline. Whatever the server allows, our compressor uses at
    most ``window_bits`` (12: a 4 KiB window, cheap to rebuild and cheap for
    the server to inflate); a smaller window than allowed is always valid,
    since any inflater reads a stream made with a smaller window. (Offering
    ``client_max_window_bits=12`` instead would bind the server too, but some
    servers, Autobahn's among them, then answer 15 and must be refused.)

    Args:
        server_no_context_takeover: ask the server to reset its window.
        client_no_context_takeover: tell the server we reset ours (section
            7.1.1.2: a hint that holds even if the server does not answer it).
        server_max_window_bits: ask the server for at most this window.
        client_max_window_bits: ``True`` offers the parameter without a value
            (the server may then limit our window), an integer offers it with
            that value (our largest window), ``None`` does not offer it.
        window_bits: the largest window our compressor uses, within what the
            server allows; by default the numeric ``client_max_window_bits``
            offered, else 12.
        level, mem_level, min_size, keep_zlib_objects: see
            :class:`PerMessageDeflate`.
    """

    name = EXTENSION_NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | Literal[True] | None = True,
        window_bits: int | None = None,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        min_size: int = DEFAULT_MIN_SIZE,
        keep_zlib_objects: bool = False,
    ) -> None:
        if server_max_window_bits is not None:
            _check_bits("server_max_window_bits", server_max_window_bits)
        if client_max_window_bits is not None and client_max_window_bits is not True:
            _check_bits("client_max_window_bits", client_max_window_bits)
        if window_bits is None:
            # An explicit numeric offer is also our compressor's window.
            window_bits = (
                client_max_window_bits
                if isinstance(client_max_window_bits, int) and client_max_window_bits is not True
                else DEFAULT_WINDOW_BITS
            )
        _check_bits("window_bits", window_bits)
        self.window_bits = window_bits
        self._set_tuning(level, mem_level, min_size, keep_zlib_objects)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits

    def get_request_params(self) -> ExtensionParams:
        params: ExtensionParams = []
        if self.server_no_context_takeover:
            params.append((_SERVER_NCT, None))
        if self.client_no_context_takeover:
            params.append((_CLIENT_NCT, None))
        if self.server_max_window_bits is not None:
            params.append((_SERVER_MWB, str(self.server_max_window_bits)))
        bits = self.client_max_window_bits
        if bits is True:
            params.append((_CLIENT_MWB, None))
        elif bits is not None:
            params.append((_CLIENT_MWB, str(bits)))
        return params

    def process_response_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> PerMessageDeflate:
        """Check the server's answer (section 7.1); :class:`NegotiationError` fails it."""
        _reject_duplicate(accepted)
        answer = _parse_params(params, response=True)
        server_nct = _SERVER_NCT in answer
        if self.server_no_context_takeover and not server_nct:
            raise NegotiationError(f"server accepted {EXTENSION_NAME} without {_SERVER_NCT}")
        client_nct = self.client_no_context_takeover or _CLIENT_NCT in answer
        server_value = answer.get(_SERVER_MWB)
        if server_value is None:
            if self.server_max_window_bits is not None:
                raise NegotiationError(f"server accepted {EXTENSION_NAME} without {_SERVER_MWB}")
            server_bits = 15
        else:
            server_bits = int(server_value)
            limit = self.server_max_window_bits
            if limit is not None and server_bits > limit:
                raise NegotiationError(
                    f"server answered {_SERVER_MWB}={server_bits}, more than requested"
                )
        offered = self.client_max_window_bits
        client_value = answer.get(_CLIENT_MWB)
        if client_value is None:
            client_bits = 15 if offered is None or offered is True else offered
        else:
            # Section 7.1.2.2: the server may answer it only if it was offered,
            # with a value no larger than the offered one.
            if offered is None:
                raise NegotiationError(f"server answered {_CLIENT_MWB}, which was not offered")
            client_bits = int(client_value)
            if offered is not True and client_bits > offered:
                raise NegotiationError(
                    f"server answered {_CLIENT_MWB}={client_bits}, more than offered"
                )
        client_bits = min(client_bits, self.window_bits)
        return self._extension(client_nct, server_nct, client_bits, server_bits)


# --- the adapters' ``compression`` option ------------------------------------------


class DeflateOptions(TypedDict, total=False):
    """Options of both factories; window bits default per side (see each factory)."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int | None
    client_max_window_bits: int | Literal[True] | None  # True: client only
    window_bits: int  # client only
    level: int
    mem_level: int
    min_size: int
    keep_zlib_objects: bool


@overload
def deflate_factories(
    side: Literal[Side.SERVER], compression: str | None = ..., **options: Unpack[DeflateOptions]
) -> list[ServerPerMessageDeflateFactory]: ...
@overload
def deflate_factories(
    side: Literal[Side.CLIENT], compression: str | None = ..., **options: Unpack[DeflateOptions]
) -> list[ClientPerMessageDeflateFactory]: ...
@overload
def deflate_factories(
    side: Side, compression: str | None = ..., **options: Unpack[DeflateOptions]
) -> list[ServerPerMessageDeflateFactory] | list[ClientPerMessageDeflateFactory]: ...
def deflate_factories(
    side: Side, compression: str | None = "deflate", **options: Unpack[DeflateOptions]
) -> list[ServerPerMessageDeflateFactory] | list[ClientPerMessageDeflateFactory]:
    """Turn an adapter's ``compression`` option into extension factories.

    ``compression="deflate"`` (the adapters' default) enables permessage-deflate
    with the given options, ``None`` disables it (an empty list). For example
    ``ServerConnection(extensions=deflate_factories(Side.SERVER, "deflate",
    level=9))``.

    Raises:
        ValueError: unknown compression or invalid option value.
    """
    if compression is None:
        if options:
            raise ValueError("compression options given with compression=None")
        return []
    if compression != "deflate":
        raise ValueError(f"unsupported compression: {compression!r}; use 'deflate' or None")
    if side is Side.SERVER:
        if "window_bits" in options:
            raise ValueError("window_bits is a client option; servers use *_max_window_bits")
        return [ServerPerMessageDeflateFactory(**cast(Any, options))]
    return [ClientPerMessageDeflateFactory(**options)]
