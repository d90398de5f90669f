"""Reading frames from the bytes received (RFC 6455 sections 5.1-5.5).

A :class:`FrameReader` is one part of a
:class:`~hubbub.protocol.connection.Connection`, owned by it. It holds the
bytes received that are not parsed yet, finds frames in them and checks each
header as soon as its two first bytes are in (section 5.2: RSV bits, opcodes;
section 5.1: masking; section 5.4: fragmentation; section 5.5: control frames),
so a reserved opcode or a bad RSV bit fails at once. It hands data frames to
the :class:`~hubbub.protocol.messages.MessageAssembler` and returns control
frames to the connection, which answers them and owns closing (section 7): the
reader never calls back into the connection, and raises
:class:`~hubbub.exceptions.RemoteProtocolError` for it to fail on.

Three ways through it, fastest first:

* whole single-frame messages at the head of what arrived are parsed in one
  call by :func:`hubbub.speedups.parse_messages` (C, or its Python twin) and
  never copied into the buffer;
* other frames are parsed here. A text frame is validated as UTF-8 while it
  arrives, even while it is incomplete: its payload is unmasked in place,
  piece by piece (section 8.1);
* a binary frame of 64 KiB or more with more than 4 KiB of it still to come
  is handed to a :class:`~hubbub.protocol.large_frames.LargeFrameReader`
  (:attr:`FrameReader.large_frame`), which gathers its pieces or lets the
  adapter read straight into the message.

With a ``decode_limit`` (:class:`~hubbub.protocol.limits.Limits`), parsing
stops once extensions decoded that much in one step
(:attr:`FrameReader.paused`): a peer cannot make one read inflate a thousand
compressed messages at once (RFC 7692). A frame that inflates past the limit
is stopped inside, once it gave at least ``_MIN_PART`` (64 KiB), when the
extension can (``partial_decoding``, permessage-deflate): its rest waits in
the extension and is inflated first in the next step, so a step inflates at
most ``decode_limit`` + 64 KiB whatever ``max_size`` allows one message
(the part decoded is assembled as a fragment, section 5.4).
"""

from __future__ import annotations

from ..exceptions import RemoteProtocolError
from ..speedups import apply_mask
from ..speedups import parse_messages as _parse_messages
from ..speedups import unmask_join as _unmask_join
from .extensions import Extension
from .frames import Opcode
from .large_frames import LargeFrameReader
from .limits import Limits
from .messages import MessageAssembler

__all__ = ["FrameReader"]

_OP_CONT = Opcode.CONTINUATION
_OP_BINARY = Opcode.BINARY
_KNOWN_OPCODES = frozenset(int(op) for op in Opcode)
# A binary frame of at least _LARGE bytes with more than _MISSING of it still to
# come is read by a LargeFrameReader. 64 KiB frames are the usual size of a
# binary echo or a file chunk: buffered, each would be copied twice more (into
# the buffer, then out of it, unmasked), about a third of a 64 KiB echo's
# instructions (docs/performance.md, "Session 6"). A few KiB missing are not
# worth the adapter's direct read (a read of its own, then a short one).
_LARGE = 65536
# The least a parsing step inflates of a frame before it may stop inside it:
# the step's limit bounds a step to decode_limit + _MIN_PART bytes, and a
# tiny limit still inflates at least 64 bytes for each compressed byte
# (deflate inflates at most 1,032 bytes per byte).
_MIN_PART = 65536
_MISSING = 4096


class FrameReader:
    """Frames found in the bytes received; see the module docstring.

    Args:
        masked: whether frames must be masked: a server reads masked frames, a
            client unmasked ones (section 5.1).
        assembler: where data frames go; the reader asks it whether a
            fragmented message is in progress (section 5.4).
        extensions: the negotiated extensions (the connection's list).
        limits: the bounds to enforce; replace with :attr:`limits`.
    """

    # Slots: a server holds thousands of idle connections (see Connection).
    __slots__ = (
        "_buf",
        "_decoded",
        "_masked",
        "_partial_done",
        "assembler",
        "extensions",
        "large_frame",
        "limits",
        "paused",
        "reading",
    )

    def __init__(
        self,
        masked: bool,
        assembler: MessageAssembler,
        extensions: list[Extension],
        limits: Limits,
    ) -> None:
        self._masked = masked
        self.assembler = assembler
        self.extensions = extensions
        self.limits = limits
        # The bytes held: None while none are (an idle connection owns no
        # buffer; most reads are parsed straight from what arrived).
        self._buf: bytearray | None = None
        # How much of the payload of an incomplete frame at the head of the
        # buffer was already unmasked in place and validated.
        self._partial_done = 0
        self.large_frame: LargeFrameReader | None = None
        """The large binary frame arriving, or None (see :mod:`.large_frames`)."""
        self.reading = True
        """False once nothing more is to be read (see :meth:`stop`)."""
        self.paused = False
        """Whether bytes wait unparsed because the decode limit was reached."""
        # Bytes decoded by extensions in this parsing step (see paused).
        self._decoded = 0

    @property
    def step_decoded(self) -> int:
        """Bytes extensions decoded in the last parsing step (see :attr:`paused`)."""
        return self._decoded

    @property
    def buffered(self) -> int:
        """Bytes received and held, not parsed yet."""
        return 0 if self._buf is None else len(self._buf)

    def stop(self) -> None:
        """Read nothing more and let go of what is held (closed, failed or lost)."""
        self.reading = False
        self.paused = False
        self._buf = None
        if self.large_frame is not None:
            self.large_frame.release()
            self.large_frame = None

    # --- receiving -------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Take bytes received; whole small messages become events at once.

        Returns:
            Whether bytes wait in the buffer for :meth:`parse`.

        Raises:
            RemoteProtocolError: the peer broke the protocol (in a large frame
                that this completed).
        """
        if not self.reading or not data:
            return False
        buf = self._buf
        if self.paused:
            # Parsing waits for resume(): keep the bytes, inflate nothing.
            if buf is None:  # paused inside the last frame held
                self._buf = bytearray(data)
            else:
                buf += data
            return False
        large = self.large_frame
        if large is not None:
            data = self._feed_large(large, data)
            if not data or not self.reading:
                return False
        if not buf and not self._partial_done and not self.assembler.opcode and not self.extensions:
            # Fast path (hubbub.speedups): the whole single-frame messages at the
            # head of the data become events in one call, and what they take is
            # never copied into the buffer.
            pos = _parse_messages(
                data, 0, self._masked, self.limits.parse_max_size, self.assembler.events
            )
            if pos == len(data):
                return False
            if pos:
                data = memoryview(data)[pos:]
        if buf is None:
            self._buf = bytearray(data)
        else:
            buf += data
        self._decoded = 0
        return True

    def resume(self) -> bool:
        """End a pause (see :attr:`paused`); return whether :meth:`parse` has bytes to parse."""
        if not self.paused:
            return False
        self.paused = False
        self._decoded = 0
        return self.reading

    def _feed_large(
        self, large: LargeFrameReader, data: bytes | bytearray | memoryview
    ) -> bytes | bytearray | memoryview:
        """Feed ``data`` to the large frame arriving; return what follows it."""
        if large.reading_directly:
            # An adapter reads into the payload but got these bytes otherwise.
            take = large.copy_in(data)
            self.buffer_updated(take)
            if take == len(data):
                return b""
            data = memoryview(data)[take:]
            if self.large_frame is None:
                return data
        if not large.hold(data if isinstance(data, bytes) else bytes(data)):
            return b""
        self.large_frame = None
        if self.extensions:
            return large.join_held()
        # The frame is whole: its payload is copied (and unmasked) once,
        # straight from the pieces; what follows it is parsed as usual.
        b0, payload, rest = large.finish_held()
        self.assembler.data_frame(b0 & 0x0F, b0 & 0x80, payload)
        return rest

    def buffer(self) -> memoryview | None:
        """Where the next bytes received may be written directly, if anywhere.

        See ``Connection.receive_buffer``.
        """
        large = self.large_frame
        if large is None or self.extensions or not self.reading:
            return None
        return large.buffer()

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written at the start of the last :meth:`buffer`.

        Raises:
            ValueError: no large frame is arriving (and reading did not stop),
                or ``nbytes`` does not fit.
            RemoteProtocolError: the frame completed breaks the protocol.
        """
        large = self.large_frame
        if large is None:
            if not self.reading:
                return  # stopped meanwhile (closed, failed, lost): nothing to account for
            raise ValueError(f"{nbytes} bytes do not fit the receive buffer")
        frame = large.updated(nbytes)
        if frame is None:
            return
        self.large_frame = None
        if self.reading:
            b0, payload = frame
            self.assembler.data_frame(b0 & 0x0F, b0 & 0x80, payload)

    # --- parsing ------------------------------------------------------------------

    def parse(self) -> tuple[int, bytes] | None:
        """Parse the buffer up to the next control frame, and return that one.

        Data frames go to the assembler. Returns ``(opcode, payload)`` of the
        first control frame, with what precedes it consumed, or ``None`` once
        the buffer holds no whole frame (or parsing paused). The caller
        handles the control frame, then calls again while :attr:`reading`.

        Raises:
            RemoteProtocolError: the peer broke the protocol.
        """
        if self.extensions and self.assembler.decoding and self.reading:
            # The frame the last step stopped inside comes first.
            limit = self.limits.decode_limit
            self._decoded += self.assembler.decode_rest(
                None if limit is None else max(limit - self._decoded, _MIN_PART)
            )
            if self.assembler.decoding:
                self.paused = True
                return None
        buf = self._buf
        if buf is None:
            return None
        control = self._parse_frames(buf)
        if control is None and self.large_frame is not None and buf:
            # The head of that large frame is held too: once complete, the frame
            # is joined once and parsed straight from the joined bytes. Nothing
            # is held yet: no large frame was arriving when this call started.
            # The buffer itself is handed over, not a copy of it.
            self.large_frame.hold_head(buf)
            self._buf = None
        if not buf and self._buf is buf:
            self._buf = None  # let go of its capacity too
        return control

    def _parse_frames(self, buf: bytearray) -> tuple[int, bytes] | None:
        pos = 0
        end = len(buf)
        masked_expected = self._masked
        extensions = self.extensions
        assembler = self.assembler
        control = None
        if not assembler.opcode and not self._partial_done and not extensions:
            # Same fast path as in feed(); the loop below takes the rest.
            pos = _parse_messages(
                buf, 0, masked_expected, self.limits.parse_max_size, assembler.events
            )
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            hlen = 2
            if length == 126:
                if end - pos < 4:
                    # The first two bytes are judged as soon as they are in.
                    self._check_first_bytes(b0, b1, opcode)
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                hlen = 4
            elif length == 127:
                if end - pos < 10:
                    self._check_first_bytes(b0, b1, opcode)
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hlen = 10
            self._check_header(b0, b1, opcode, length)
            masked = b1 & 0x80
            if masked:
                hlen += 4
            if end - pos < hlen + length:
                if end - pos >= hlen and opcode < 8:
                    self._partial_frame(buf, pos, hlen, end)
                    missing = hlen + length - (end - pos)
                    if (
                        length >= _LARGE
                        and missing > _MISSING
                        and (
                            opcode == _OP_BINARY
                            or (opcode == _OP_CONT and not assembler.text_in_progress)
                        )
                    ):
                        # Nothing reads a binary frame before it is whole (text
                        # is validated as it arrives): feed() holds the rest.
                        self.large_frame = LargeFrameReader(missing)
                break
            start = pos + hlen
            pos = start + length
            if masked and not self._partial_done:
                # Copied and unmasked in one pass (hubbub.speedups).
                data = _unmask_join([buf], start, length, buf[start - 4 : start])
            else:
                data = bytes(buf[start:pos])
            done = self._partial_done
            if done:
                # The head of this payload was unmasked in place already.
                self._partial_done = 0
                if masked and done < length:
                    data = data[:done] + apply_mask(data[done:], buf[start - 4 : start], done)
                assembler.finish_partial(data, done, b0, opcode)
                continue
            if opcode >= 8:
                if extensions and b0 & 0x70:
                    # RFC 7692 section 6: extensions act on data frames only.
                    raise RemoteProtocolError("reserved bits set on a control frame")
                control = (opcode, data)
                break
            if extensions:
                limit = self.limits.decode_limit
                if limit is None:
                    assembler.extension_frame(b0, opcode, data)
                    continue
                self._decoded += assembler.extension_frame(
                    b0, opcode, data, max(limit - self._decoded, _MIN_PART)
                )
                if assembler.decoding or (self._decoded >= limit and pos < end):
                    # Stop inside this frame (the extension keeps the rest of
                    # it) or at its end: what follows stays in the buffer
                    # until resume() (see paused).
                    self.paused = True
                    break
            else:
                assembler.data_frame(opcode, b0 & 0x80, data)
        if pos:
            del buf[:pos]
        return control

    def _check_header(self, b0: int, b1: int, opcode: int, length: int) -> None:
        self._check_first_bytes(b0, b1, opcode)
        if opcode >= 8:
            # Section 5.5: control frames have payloads of at most 125 bytes.
            if length > 125:
                raise RemoteProtocolError("control frame payload longer than 125 bytes")
            return
        if length >> 63:
            raise RemoteProtocolError("most significant bit of the payload length is set")
        assembler = self.assembler
        self.limits.check_frame(
            length + (assembler.size if opcode == _OP_CONT else 0),
            bool(self.extensions) and assembler.transformed(b0, opcode),
        )

    def _check_first_bytes(self, b0: int, b1: int, opcode: int) -> None:
        """Check what the first two bytes of a frame tell, whatever its length."""
        # Section 5.2: "RSV1, RSV2, RSV3: MUST be 0 unless an extension is
        # negotiated that defines meanings for non-zero values."
        if b0 & 0x70 and not self.extensions:
            raise RemoteProtocolError("reserved bits must be 0")
        if opcode not in _KNOWN_OPCODES:
            raise RemoteProtocolError(f"reserved opcode {opcode:#x}")
        # Section 5.1: a server MUST close on an unmasked frame; a client MUST
        # close on a masked one.
        if bool(b1 & 0x80) is not self._masked:
            raise RemoteProtocolError(
                "incorrect masking: client frames must be masked, server frames must not"
            )
        if opcode >= 8:
            # Section 5.5: control frames MUST NOT be fragmented.
            if not b0 & 0x80:
                raise RemoteProtocolError("fragmented control frame")
            return
        # Section 5.4: a fragmented message is a first frame, then continuation
        # frames; a new message cannot start before the last one ended.
        if opcode == _OP_CONT:
            if not self.assembler.opcode:
                raise RemoteProtocolError("continuation frame without a message to continue")
        elif self.assembler.opcode:
            raise RemoteProtocolError("new data frame inside a fragmented message")

    def _partial_frame(self, buf: bytearray, pos: int, hlen: int, end: int) -> None:
        """Validate the available part of an incomplete text frame (section 8.1)."""
        b0 = buf[pos]
        done = self._partial_done
        if not self.assembler.begin_partial(b0, b0 & 0x0F, not done):
            return
        start = pos + hlen
        if start + done >= end:
            return
        chunk: bytes | bytearray = buf[start + done : end]
        if buf[pos + 1] & 0x80:
            chunk = apply_mask(chunk, buf[start - 4 : start], done)
            buf[start + done : end] = chunk
        self._partial_done = end - start
        self.assembler.partial_text(chunk)
