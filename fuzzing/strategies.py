"""Hypothesis strategies that build fuzz inputs with structure.

Random bytes rarely get past a frame header or a request line; these
strategies build streams of mostly well-formed frames and requests with
mistakes sprinkled in, so that the deeper states (fragmented messages,
partial frames, compressed messages, the close handshake, header checks) are
reached. They feed the same targets as the coverage-guided fuzzer.
"""

from __future__ import annotations

import base64

from hypothesis import strategies as st
from targets import MAX_SIZES, Config, deflate_message

from hubbub.protocol import Side

OPCODES = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA]
RESERVED_OPCODES = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]
INVALID_UTF8 = [b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"\xce"]
CLOSE_CODES = [1000, 1001, 1002, 1005, 1006, 1007, 1011, 1015, 999, 2000, 3000, 4999, 5000]


def xor(data: bytes) -> bytes:
    return bytes(b ^ 0xAA for b in data)


configs = st.builds(
    Config,
    side=st.sampled_from([Side.SERVER, Side.CLIENT]),
    max_size=st.sampled_from(MAX_SIZES),
    defer_failure=st.booleans(),
    extension=st.sampled_from(["none", "xor", "deflate"]),
    seed=st.integers(0, 31),
)


@st.composite
def payloads(draw: st.DrawFn, opcode: int, config: Config) -> tuple[bytes, bool]:
    """A payload for ``opcode`` and whether it should carry RSV1."""
    if opcode == 0x8:
        kind = draw(st.sampled_from(["valid", "empty", "one byte", "bad reason", "any code"]))
        if kind == "empty":
            return b"", False
        if kind == "one byte":
            return b"\x03", False
        code = 1000 if kind == "valid" else draw(st.sampled_from(CLOSE_CODES))
        reason = draw(st.text(max_size=20)).encode()
        if kind == "bad reason":
            reason += draw(st.sampled_from(INVALID_UTF8))
        return code.to_bytes(2, "big") + reason, False
    if opcode in (0x9, 0xA):
        return draw(st.binary(max_size=draw(st.sampled_from([0, 10, 125, 126])))), False
    kind = draw(st.sampled_from(["text", "binary", "invalid", "big"]))
    if kind == "text":
        data = draw(st.text(max_size=60)).encode()
    elif kind == "binary":
        data = draw(st.binary(max_size=60))
    elif kind == "big":
        data = b"x" * draw(st.sampled_from([125, 126, 1000, 65536, 70000]))
    else:
        data = draw(st.text(max_size=10)).encode() + draw(st.sampled_from(INVALID_UTF8))
    rsv1 = config.extension != "none" and opcode != 0x0 and draw(st.booleans())
    if rsv1 and config.extension == "xor":
        data = xor(data)
    elif rsv1 and config.extension == "deflate":
        data = deflate_message(data)
    return data, rsv1


@st.composite
def frames(draw: st.DrawFn, config: Config) -> bytes:
    """One frame, usually valid, to the side ``config`` describes."""
    if draw(st.integers(0, 19)) == 0:
        opcode = draw(st.sampled_from(RESERVED_OPCODES))
    else:
        opcode = draw(st.sampled_from(OPCODES))
    data, rsv1 = draw(payloads(opcode, config))
    fin = draw(st.booleans()) if opcode < 8 else draw(st.integers(0, 19)) != 0
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if draw(st.integers(0, 29)) == 0:
        b0 |= draw(st.sampled_from([0x40, 0x20, 0x10]))
    masked = config.side is Side.SERVER
    if draw(st.integers(0, 29)) == 0:
        masked = not masked  # the wrong way
    length = len(data)
    form = draw(st.sampled_from(["minimal"] * 8 + ["16", "64"]))
    if form == "16" and length < 65536:
        head = bytes([b0, (0x80 if masked else 0) | 126]) + length.to_bytes(2, "big")
    elif form == "64" or length >= 65536:
        head = bytes([b0, (0x80 if masked else 0) | 127]) + length.to_bytes(8, "big")
    elif length < 126:
        head = bytes([b0, (0x80 if masked else 0) | length])
    else:
        head = bytes([b0, (0x80 if masked else 0) | 126]) + length.to_bytes(2, "big")
    if not masked:
        return head + data
    key = draw(st.binary(min_size=4, max_size=4))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


@st.composite
def message_frames(draw: st.DrawFn, config: Config) -> bytes:
    """A fragmented message, valid more often than not, maybe with pings inside."""
    count = draw(st.integers(1, 6))
    text = draw(st.booleans())
    raw = draw(st.text(max_size=40)).encode() if text else draw(st.binary(max_size=40))
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), min_size=count - 1, max_size=count - 1)))
    parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    masked = config.side is Side.SERVER
    out = b""
    for i, part in enumerate(parts):
        opcode = (0x1 if text else 0x2) if i == 0 else 0x0
        b0 = (0x80 if i == len(parts) - 1 else 0) | opcode
        out += bytes([b0, (0x80 if masked else 0) | len(part)])
        out += b"\x00\x00\x00\x00" + part if masked else part
        if draw(st.integers(0, 3)) == 0:
            out += draw(frames(config))
    return out


@st.composite
def frame_inputs(draw: st.DrawFn) -> bytes:
    """Input for :func:`targets.fuzz_frames`: 2 configuration bytes, then a stream."""
    config = draw(configs)
    pieces = draw(st.lists(st.one_of(frames(config), message_frames(config)), max_size=8))
    stream = b"".join(pieces)
    tail = draw(st.sampled_from(["none", "none", "cut", "garbage"]))
    if tail == "cut" and stream:
        stream = stream[: draw(st.integers(0, len(stream) - 1))]
    elif tail == "garbage":
        stream += draw(st.binary(max_size=20))
    return config.to_bytes() + stream


HEADER_NAMES = [
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Origin",
    "Content-Length",
    "Sec-WebSocket-Accept",
    "X-Other",
]
HEADER_VALUES = [
    "websocket",
    "Upgrade",
    "keep-alive, Upgrade",
    "13",
    "8",
    "chat, v2",
    "dGhlIHNhbXBsZSBub25jZQ==",
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    "x",
    "",
    "permessage-deflate; client_max_window_bits",
    'a; b="c',
    "5",
    "\xb2",
    "-1",
    base64.b64encode(b"short").decode(),
]


@st.composite
def http_heads(draw: st.DrawFn, response: bool) -> bytes:
    """A request or response head built from plausible and broken pieces."""
    if response:
        start = draw(
            st.sampled_from(
                [
                    "HTTP/1.1 101 Switching Protocols",
                    "HTTP/1.1 403 No",
                    "HTTP/1.1 200 OK",
                    "HTTP/1.0 101 x",
                    "HTTP/1.1 1O1 x",
                    "HTTP/1.1 100 Continue",
                    "HTTP/1.1 +101 x",
                ]
            )
        )
    else:
        start = draw(
            st.sampled_from(
                [
                    "GET / HTTP/1.1",
                    "GET /chat?x=1 HTTP/1.1",
                    "POST / HTTP/1.1",
                    "GET / HTTP/1.0",
                    "GET http://h/ HTTP/1.1",
                    "GET /a b HTTP/1.1",
                ]
            )
        )
    names = st.one_of(st.sampled_from(HEADER_NAMES), st.text(max_size=8))
    values = st.one_of(st.sampled_from(HEADER_VALUES), st.text(max_size=12))
    headers = draw(st.lists(st.tuples(names, values), max_size=10))
    sep = draw(st.sampled_from(["\r\n"] * 6 + ["\n", "\r"]))
    text = start + sep + "".join(f"{n}: {v}{sep}" for n, v in headers) + "\r\n"
    data = text.encode("utf-8")
    return data + draw(st.binary(max_size=20))


def request_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(http_heads(response=False), st.binary(max_size=200))


def response_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(http_heads(response=True), st.binary(max_size=200))
