"""Seed inputs for the coverage-guided fuzzers: a few valid inputs of each kind.

The fuzz entry points write them into an empty corpus directory, so that the
fuzzer starts from inputs that get past the first checks.
"""

from __future__ import annotations

from pathlib import Path

from targets import CLIENT_KEY, Config, deflate_message

from hubbub.protocol import Side


def _frame(
    opcode: int, data: bytes, *, fin: bool = True, rsv1: bool = False, masked: bool = True
) -> bytes:
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    m = 0x80 if masked else 0
    if len(data) < 126:
        head = bytes([b0, m | len(data)])
    elif len(data) < 65536:
        head = bytes([b0, m | 126]) + len(data).to_bytes(2, "big")
    else:
        head = bytes([b0, m | 127]) + len(data).to_bytes(8, "big")
    if not masked:
        return head + data
    key = b"\x12\x34\x56\x78"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def frame_seeds() -> list[bytes]:
    seeds = []
    for side in (Side.SERVER, Side.CLIENT):
        masked = side is Side.SERVER
        for extension in ("none", "xor", "deflate"):
            config = Config(side, 2**20, False, extension, 5).to_bytes()
            stream = _frame(0x1, "héllo".encode(), masked=masked)
            stream += _frame(0x2, b"\x00\xff", masked=masked)
            stream += _frame(0x1, b"frag", fin=False, masked=masked)
            stream += _frame(0x9, b"ping", masked=masked)
            stream += _frame(0x0, "ment€".encode(), masked=masked)
            stream += _frame(0x2, b"x" * 300, masked=masked)
            if extension == "deflate":
                stream += _frame(0x1, deflate_message(b"compressed " * 5), rsv1=True, masked=masked)
            elif extension == "xor":
                stream += _frame(0x1, bytes(b ^ 0xAA for b in b"xored"), rsv1=True, masked=masked)
            stream += _frame(0x8, b"\x03\xe8bye", masked=masked)
            seeds.append(config + stream)
    return seeds


REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: " + CLIENT_KEY.encode() + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
    b"Origin: http://example.com\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
)


def http_seeds() -> list[bytes]:
    """Seeds for fuzz_http.py: the first byte picks the target (see there)."""
    rejection = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope"
    return [
        b"\x00" + REQUEST,
        b"\x01" + RESPONSE,
        b"\x01" + rejection,
        b"\x02" + REQUEST + _frame(0x1, b"hi"),
        b"\x03" + RESPONSE + _frame(0x1, b"hi", masked=False),
        b"\x04ws://user:pw@example.com:8080/path?q=1",
        b'\x05permessage-deflate; client_max_window_bits, x; a="b"',
    ]


def write_seeds(corpus: Path, seeds: list[bytes]) -> None:
    """Fill ``corpus`` with ``seeds`` if it is empty."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
