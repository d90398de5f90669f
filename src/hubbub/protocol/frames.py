"""Frames: opcodes, close codes, masking and the wire format (RFC 6455 section 5).

The base framing protocol, section 5.2::

      0                   1                   2                   3
      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
     +-+-+-+-+-------+-+-------------+-------------------------------+
     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
     |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
     |N|V|V|V|       |S|             |   (if payload len==126/127)   |
     | |1|2|3|       |K|             |                               |
     +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
     |     Extended payload length continued, if payload len == 127  |
     + - - - - - - - - - - - - - - - +-------------------------------+
     |                               |Masking-key, if MASK set to 1  |
     +-------------------------------+-------------------------------+
     | Masking-key (continued)       |          Payload Data         |
     +-------------------------------- - - - - - - - - - - - - - - - +

This module only knows the wire format. Which frames are legal when (masking
direction, fragmentation, control frame rules) is decided by
:mod:`hubbub.protocol.connection`, which owns the state machine.
"""

from __future__ import annotations

import enum
import os
import struct
from dataclasses import dataclass

from .. import speedups as _speedups
from ..exceptions import LocalProtocolError, RemoteProtocolError

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "CloseCode",
    "Frame",
    "Opcode",
    "apply_mask",
    "encode_frame",
    "encode_shared_frame",
    "parse_close",
    "serialize_close",
]


class Opcode(enum.IntEnum):
    """Frame opcodes, RFC 6455 section 5.2 (names from section 11.8)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})


class CloseCode(enum.IntEnum):
    """Close status codes, RFC 6455 section 7.4.1 and the IANA registry."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_FRAME_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


# Section 7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close
# control frame by an endpoint"; 1004 is reserved. 1012-1014 are registered with
# IANA since the RFC was published. 3000-4999 belong to libraries and applications.
_WIRE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def is_valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may appear in a close frame on the wire."""
    return code in _WIRE_CODES or 3000 <= code <= 4999


@dataclass(slots=True)
class Frame:
    """One WebSocket frame, payload unmasked."""

    opcode: Opcode
    data: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False


_pack_short = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack
_pack_tiny = struct.Struct("!BB").pack
_from_bytes = int.from_bytes


# Masking (section 5.3) comes from hubbub.speedups: the compiled accelerator's
# word-at-a-time XOR when it is built, else a pure-Python big-integer XOR.
# apply_mask(data, mask, offset=0): ``offset`` is the position of ``data[0]`` in
# the payload, so that a payload can be unmasked piece by piece.
apply_mask = _speedups.apply_mask


def encode_header(opcode: int, length: int, fin: bool, rsv1: bool, mask: bytes | None) -> bytes:
    """Build a frame header (section 5.2) for a payload of ``length`` bytes."""
    b0 = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
    m = 0x80 if mask is not None else 0
    if length < 126:
        head = _pack_tiny(b0, m | length)
    elif length < 0x10000:
        head = _pack_short(b0, m | 126, length)
    else:
        head = _pack_long(b0, m | 127, length)
    return head + mask if mask is not None else head


def encode_frame(
    opcode: int, data: bytes, *, fin: bool = True, rsv1: bool = False, mask: bool = False
) -> list[bytes]:
    """Serialize one frame as a list of chunks ready for ``writelines``.

    A client masks every frame with a fresh unpredictable key (section 5.3: "the
    masking key MUST be derived from a strong source of entropy"); a server sends
    the header and the payload as two chunks so that a large payload is never
    copied. A large masked payload is two chunks too, the header and the masked
    copy: joining them would make a second copy of the payload (for 1 MiB, a
    fresh mapping the kernel faults in page by page).
    """
    n = len(data)
    if mask:
        key = os.urandom(4)
        header = encode_header(opcode, n, fin, rsv1, key)
        if n < 1024:
            return [header + apply_mask(data, key)]
        return [header, apply_mask(data, key)]
    header = encode_header(opcode, n, fin, rsv1, None)
    if n < 1024:
        return [header + data]
    return [header, data]


def encode_shared_frame(opcode: int, data: bytes) -> bytes:
    """Serialize one whole unmasked frame as one ``bytes``, to send to many connections.

    A server does not mask (section 5.1), so without extensions the frame is
    byte for byte the same on each of its connections
    (:attr:`~hubbub.protocol.connection.Connection.shares_frames`): encode it
    once and write the same object to every transport, as
    :func:`hubbub.asyncio.broadcast` does.
    """
    return encode_header(opcode, len(data), True, False, None) + data


def parse_close(data: bytes) -> tuple[int, str]:
    """Parse a close frame's payload into ``(code, reason)`` (section 5.5.1).

    An empty payload means no status code: 1005 (section 7.1.5).

    Raises:
        RemoteProtocolError: a 1-byte payload, a code not allowed on the wire, or
            a reason that is not valid UTF-8 (1007).
    """
    n = len(data)
    if n == 0:
        return CloseCode.NO_STATUS_RCVD, ""
    if n == 1:
        raise RemoteProtocolError("close frame with a 1-byte payload")
    code = (data[0] << 8) | data[1]
    if not is_valid_close_code(code):
        raise RemoteProtocolError(f"invalid close code {code}")
    try:
        reason = data[2:].decode()
    except UnicodeDecodeError:
        raise RemoteProtocolError(
            "close reason is not valid UTF-8", CloseCode.INVALID_FRAME_PAYLOAD_DATA
        ) from None
    return code, reason


def serialize_close(code: int | None, reason: str = "") -> bytes:
    """Build a close frame's payload, refusing what section 7.4 forbids.

    Raises:
        LocalProtocolError: an invalid code, a reason without a code, or a
            payload over 125 bytes (section 5.5).
    """
    if code is None:
        if reason:
            raise LocalProtocolError("a close reason requires a close code")
        return b""
    if not is_valid_close_code(code):
        raise LocalProtocolError(f"close code {code} may not be sent")
    try:
        data = code.to_bytes(2, "big") + reason.encode()
    except UnicodeEncodeError:  # a lone surrogate: not a valid Unicode string
        raise LocalProtocolError("close reason cannot be encoded as UTF-8") from None
    if len(data) > 125:
        raise LocalProtocolError("close reason is longer than 123 bytes once encoded")
    return data
