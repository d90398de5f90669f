"""Fuzz targets for the sans-I/O core: the frame parser and the HTTP handshake parser.

Each ``fuzz_*`` function takes arbitrary bytes, drives the parser with them,
and raises :class:`InvariantError` (or lets an undocumented exception escape)
when something is wrong. They are shared by the atheris entry points
(``fuzz_frames.py``, ``fuzz_http.py``) and by the bounded Hypothesis run in
``tests/protocol/test_fuzz.py``.

What counts as wrong:

* an exception the API does not document: ``receive_data`` and
  ``receive_eof`` never raise (a protocol violation fails the connection), the
  HTTP parsers raise only :class:`~hubbub.exceptions.HandshakeError`,
  :func:`parse_uri` only ``InvalidURI``, :func:`parse_extension_header` only
  ``InvalidHeader``. An ``IndexError`` or a ``ValueError`` is a bug;
* a broken invariant: a message over ``max_size``, a control frame over 125
  bytes, a ping left unanswered, two close frames, a close frame with a code
  that may not be sent, a frame masked the wrong way, events after a close;
* a difference between feeding the bytes at once and in random pieces: the
  incremental paths (partial frames, UTF-8 validation as bytes arrive, the
  compiled fast path) must agree with the one-shot path;
* a difference between the compiled and the pure-Python message fast path.

The first bytes of an input choose the configuration (side, ``max_size``,
``defer_failure``, extension, how to cut the stream), so the fuzzer explores
those too.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from hubbub import speedups
from hubbub.exceptions import (
    HandshakeError,
    InvalidHeader,
    InvalidURI,
    PayloadTooBig,
    UnexpectedTLS,
)
from hubbub.protocol import (
    ClientConnection,
    CloseReceived,
    Connection,
    Failure,
    Ping,
    Pong,
    Request,
    Response,
    ServerConnection,
    Side,
    State,
)
from hubbub.protocol.extensions import Extension, parse_extension_header
from hubbub.protocol.frames import Frame, Opcode, is_valid_close_code
from hubbub.protocol.handshake import parse_uri
from hubbub.protocol.http11 import parse_request, parse_response
from hubbub.protocol.permessage_deflate import PerMessageDeflate

__all__ = [
    "CLIENT_KEY",
    "HTTP_TARGETS",
    "MAX_SIZES",
    "InvariantError",
    "fuzz_client_handshake",
    "fuzz_extension_header",
    "fuzz_frames",
    "fuzz_request",
    "fuzz_response",
    "fuzz_server_handshake",
    "fuzz_uri",
]

MAX_SIZES = (None, 2**20, 0, 1, 16, 125, 126, 1000, 65536)
"""``max_size`` values the configuration byte chooses from."""

CLIENT_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class InvariantError(AssertionError):
    """The parser did something it must never do."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise InvariantError(message)


# --- a toy extension, so that the extension paths are fuzzed without zlib -------------


class XorExtension(Extension):
    """XORs payloads with 0xAA; messages flagged with RSV1 are transformed."""

    name = "x-xor"

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if max_size is not None and len(frame.data) > max_size:
            raise PayloadTooBig(len(frame.data), max_size)
        data = bytes(b ^ 0xAA for b in frame.data)
        return Frame(frame.opcode, data, frame.fin, False, frame.rsv2, frame.rsv3)

    def encode(self, frame: Frame) -> Frame:
        data = bytes(b ^ 0xAA for b in frame.data)
        return Frame(frame.opcode, data, frame.fin, frame.opcode != Opcode.CONTINUATION)


# --- frames ------------------------------------------------------------------------------


@dataclass
class Config:
    side: Side
    max_size: int | None
    defer_failure: bool
    extension: str  # "none", "xor" or "deflate"
    seed: int

    @classmethod
    def from_bytes(cls, head: bytes) -> Config:
        a, b = head[0], head[1]
        return cls(
            side=Side.CLIENT if a & 1 else Side.SERVER,
            max_size=MAX_SIZES[(a >> 1) % len(MAX_SIZES)],
            defer_failure=bool(b & 1),
            extension=("none", "none", "xor", "deflate")[(b >> 1) & 3],
            seed=b >> 3,
        )

    def to_bytes(self) -> bytes:
        a = (1 if self.side is Side.CLIENT else 0) | (MAX_SIZES.index(self.max_size) << 1)
        ext = {"none": 0, "xor": 2, "deflate": 3}[self.extension]
        b = int(self.defer_failure) | (ext << 1) | ((self.seed & 0x1F) << 3)
        return bytes([a, b])

    def connection(self) -> Connection:
        extensions: list[Extension] = []
        if self.extension == "xor":
            extensions.append(XorExtension())
        elif self.extension == "deflate":
            extensions.append(PerMessageDeflate())
        return Connection(
            self.side,
            max_size=self.max_size,
            extensions=extensions,
            defer_failure=self.defer_failure,
        )


@dataclass
class WireFrame:
    opcode: int
    payload: bytes
    fin: bool
    rsv: int


def parse_wire(data: bytes, *, masked: bool) -> list[WireFrame]:
    """An independent parser for what a connection sends; whole frames only."""
    frames = []
    pos = 0
    while pos < len(data):
        check(len(data) - pos >= 2, "truncated frame header sent")
        b0, b1 = data[pos], data[pos + 1]
        length = b1 & 0x7F
        pos += 2
        if length == 126:
            length = int.from_bytes(data[pos : pos + 2], "big")
            check(length >= 126, "non-minimal 16-bit length sent")
            pos += 2
        elif length == 127:
            length = int.from_bytes(data[pos : pos + 8], "big")
            check(65536 <= length < 2**63, "invalid 64-bit length sent")
            pos += 8
        check(bool(b1 & 0x80) is masked, "frame sent with the wrong masking")
        key = b""
        if masked:
            key = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + length]
        check(len(payload) == length, "truncated frame payload sent")
        pos += length
        if masked:
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        frames.append(WireFrame(b0 & 0x0F, payload, bool(b0 & 0x80), b0 & 0x70))
    return frames


def chunks_of(stream: bytes, seed: int) -> list[bytes]:
    """Cut ``stream`` into pieces chosen by ``seed``: bytes, small or larger ones."""
    rng = random.Random(seed)
    mode = seed % 4
    pieces = []
    pos = 0
    while pos < len(stream):
        if mode == 0:
            size = 1
        elif mode == 1:
            size = rng.randint(1, 8)
        else:
            size = rng.randint(1, 300)
        pieces.append(stream[pos : pos + size])
        pos += size
    return pieces


def run_connection(
    config: Config, pieces: Sequence[bytes], decode_limit: int | None = None
) -> tuple[Connection, list[object], list[WireFrame]]:
    """Feed ``pieces`` to a fresh connection; check the invariants; return what it did.

    With ``decode_limit``, parsing pauses each time extensions decoded that
    many bytes and is resumed until nothing waits, as an adapter does.
    """
    conn = config.connection()
    conn.decode_limit = decode_limit
    events: list[object] = []
    fed = 0
    resumes = 0
    for piece in pieces:
        conn.receive_data(piece)  # never raises: errors fail the connection
        fed += len(piece)
        events.extend(conn.events_received())
        while conn.parsing_paused:
            check(decode_limit is not None, "parsing paused without a decode_limit")
            # Each step parses at least one frame (2 bytes or more).
            resumes += 1
            check(resumes <= fed, "resume_parsing() makes no progress")
            conn.resume_parsing()
            events.extend(conn.events_received())
    out = b"".join(conn.data_to_send())
    frames = parse_wire(out, masked=config.side is Side.CLIENT)
    check_events(config, conn, events, frames)
    return conn, events, frames


def check_events(
    config: Config, conn: Connection, events: list[object], frames: list[WireFrame]
) -> None:
    for i, event in enumerate(events):
        if isinstance(event, str | bytes):
            size = len(event.encode()) if isinstance(event, str) else len(event)
            if config.max_size is not None:
                check(size <= config.max_size, f"message of {size} bytes over max_size")
        elif isinstance(event, Ping | Pong):
            check(len(event.data) <= 125, "control frame payload over 125 bytes")
        elif isinstance(event, CloseReceived):
            check(i == len(events) - 1, "event after a close frame")
            check(is_valid_close_code(event.code) or event.code == 1005, "invalid close code")
        elif isinstance(event, Failure):
            check(config.defer_failure, "Failure event without defer_failure")
            check(i == len(events) - 1, "event after a Failure")
            check(event.exc is conn.close_exc, "Failure is not close_exc")
        else:
            raise InvariantError(f"unexpected event {event!r}")

    for frame in frames:
        check(frame.opcode in (0x1, 0x2, 0x8, 0x9, 0xA), "reserved opcode sent")
        check(frame.rsv == 0, "RSV bits sent on a reply")
        check(frame.fin, "fragmented reply")
        check(len(frame.payload) <= 125, "control frame over 125 bytes sent")
    closes = [f for f in frames if f.opcode == 0x8]
    check(len(closes) <= 1, "more than one close frame sent")
    if closes:
        check(frames[-1] is closes[0], "frame sent after the close frame")
        payload = closes[0].payload
        check(len(payload) != 1, "1-byte close payload sent")
        if payload:
            check(is_valid_close_code(int.from_bytes(payload[:2], "big")), "bad code sent")
            payload[2:].decode()  # a reason that is not UTF-8 raises here

    # Section 5.5.2: every ping read is answered with the same payload.
    pings = [e.data for e in events if isinstance(e, Ping)]
    pongs = [f.payload for f in frames if f.opcode == 0xA]
    check(pings == pongs, "pings and pongs differ")

    received = [e for e in events if isinstance(e, CloseReceived)]
    exc = conn.close_exc
    if received:
        check(exc is None, "error after a close frame")
        check(len(closes) == 1, "close frame not answered")
        code = received[0].code
        expected = b"" if code == 1005 else code.to_bytes(2, "big")
        check(closes[0].payload == expected, "close code not echoed")
        check(conn.state is State.CLOSING, "not CLOSING after the close handshake")
        check(conn.eof_sent is (config.side is Side.SERVER), "wrong side closes TCP first")
    elif exc is not None and not config.defer_failure:
        check(len(closes) == 1, "failed without a close frame")
        check(int.from_bytes(closes[0].payload[:2], "big") == exc.code, "wrong failure code")
        check(conn.eof_sent, "failed without closing TCP")
        check(exc.code in (1002, 1007, 1009), f"unexpected failure code {exc.code}")
    else:
        check(not closes, "close frame sent without a reason")
        check(conn.state is State.OPEN, "not OPEN though nothing closed")
        check(not conn.eof_sent, "EOF sent without a reason")


def summary(events: list[object], frames: list[WireFrame], conn: Connection) -> object:
    """What must not depend on how the bytes were cut."""
    normalized = [
        ("failure", e.exc.code, type(e.exc)) if isinstance(e, Failure) else e for e in events
    ]
    code = conn.close_exc.code if conn.close_exc is not None else None
    return normalized, [(f.opcode, f.payload) for f in frames], code, conn.state


def fuzz_frames(data: bytes) -> None:
    """Fuzz the frame parser: configuration from 2 bytes, the stream after them."""
    if len(data) < 2:
        return
    config = Config.from_bytes(data[:2])
    stream = data[2:]
    whole, events, frames = run_connection(config, [stream])
    # The pieces run also pauses parsing every few decoded bytes (the
    # decompression bomb guard): that must not change the outcome either.
    limit = 1 + config.seed * 37 if config.extension != "none" else None
    pieces, p_events, p_frames = run_connection(config, chunks_of(stream, config.seed), limit)
    check(
        summary(events, frames, whole) == summary(p_events, p_frames, pieces),
        "feeding in pieces changed the outcome",
    )
    # End of stream: the connection is closed, with a code.
    whole.receive_eof()
    check(whole.state is State.CLOSED, "not CLOSED after EOF")
    check(whole.close_code is not None, "no close code after EOF")
    if config.extension == "none":
        check_fast_path(stream, config)


def check_fast_path(stream: bytes, config: Config) -> None:
    """The compiled message fast path agrees with its pure-Python twin."""
    if not speedups.ACCELERATED:
        return
    masked = config.side is Side.SERVER
    max_size = -1 if config.max_size is None else config.max_size
    py_events: list[object] = []
    c_events: list[object] = []
    py_pos = speedups.py_parse_messages(stream, 0, masked, max_size, py_events)
    c_pos = speedups.parse_messages(stream, 0, masked, max_size, c_events)
    check((py_pos, py_events) == (c_pos, c_events), "C and Python fast paths differ")
    check(
        speedups.apply_mask(stream, b"\x01\x02\x03\x04", 3)
        == speedups.py_apply_mask(stream, b"\x01\x02\x03\x04", 3),
        "C and Python masks differ",
    )


# --- HTTP --------------------------------------------------------------------------------


def fuzz_request(data: bytes) -> None:
    """parse_request: None, a request, or HandshakeError; consistent on prefixes."""
    try:
        parsed = parse_request(data)
    except HandshakeError:
        return
    if parsed is None:
        return
    request, consumed = parsed
    check(0 < consumed <= len(data), "consumed out of range")
    check(data[consumed - 4 : consumed] == b"\r\n\r\n", "request does not end the head")
    check(parse_request(data[:consumed]) == parsed, "trailing bytes changed the request")
    # Every prefix is incomplete, and not over a limit: the limits say the
    # same whether the head arrives at once or in pieces.
    for cut in {consumed - 1, consumed - 2, consumed - 3, consumed // 2, 1}:
        if 0 < cut < consumed:
            try:
                prefix = parse_request(data[:cut])
            except HandshakeError as exc:
                raise InvariantError(f"prefix of a valid head refused: {exc}") from None
            check(prefix is None, "incomplete head parsed")
            # Resuming the search where an earlier call stopped changes nothing.
            check(parse_request(data[:consumed], cut) == parsed, "resumed parse differs")
    # What was parsed serializes back to something that parses the same.
    again = parse_request(request.serialize())
    check(again is not None and again[0] == request, "request does not round-trip")


def fuzz_response(data: bytes) -> None:
    """parse_response, with and without EOF: same rules as fuzz_request."""
    for eof in (False, True):
        try:
            parsed = parse_response(data, eof)
        except HandshakeError:
            continue
        if parsed is None:
            check(not eof, "None at EOF")
            continue
        response, consumed = parsed
        check(0 < consumed <= len(data), "consumed out of range")
        check(100 <= response.status <= 599, "status out of range")
        check(len(response.body) <= 65536, "body over MAX_BODY")


def fuzz_server_handshake(data: bytes) -> None:
    """A server fed arbitrary bytes answers with a valid response or nothing."""
    server = ServerConnection(subprotocols=["chat", "v2"], origins=None)
    seed = data[0] if data else 0
    for piece in chunks_of(data, seed):
        server.receive_data(piece)
        for event in server.events_received():
            if isinstance(event, Request):
                server.send_response(server.accept(event))
            else:
                response = server.response
                check(response is not None, f"event {event!r} before the response")
                assert response is not None
                check(response.status == 101, f"event {event!r} after a rejection")
    out = b"".join(server.data_to_send())
    if isinstance(server.handshake_exc, UnexpectedTLS):
        # A TLS ClientHello on a plain port: closed at once, with no HTTP answer
        # (the client speaks TLS and could not read one).
        check(out == b"", "answered a TLS ClientHello")
        check(server.state is State.CLOSED and server.eof_sent, "ClientHello but not closed")
        check(data[:2] == b"\x16\x03", "UnexpectedTLS without a ClientHello")
        return
    if server.response is None and server.handshake_exc is None:
        check(out == b"", "sent something before the request was complete")
        check(server.state is State.CONNECTING, "not CONNECTING while waiting")
        return
    parsed = parse_response(out, eof=True)
    check(parsed is not None, "server sent an incomplete response")
    assert parsed is not None
    response = parsed[0]
    if response.status == 101:
        check(server.state in (State.OPEN, State.CLOSING), "101 but not open")
        check(server.handshake_exc is None, "101 with a handshake error")
    else:
        check(response.status in (400, 403, 405, 411, 413, 426, 500), f"status {response.status}")
        check(server.state is State.CLOSED and server.eof_sent, "rejected but not closed")
        check(server.handshake_exc is not None, "rejected without a handshake error")
        # WebSocket words for an upgrade request, plain HTTP ones otherwise.
        check(
            response.body.decode().startswith(("Failed to open", "Invalid HTTP request")),
            "unreadable rejection",
        )
    server.receive_eof()
    check(server.state is State.CLOSED, "not CLOSED after EOF")


def fuzz_client_handshake(data: bytes) -> None:
    """A client fed arbitrary bytes as the response opens only on a valid 101."""
    client = ClientConnection("ws://example.com/", subprotocols=["chat"])
    client.key = CLIENT_KEY  # so that inputs can carry the right accept key
    client.send_request()
    client.data_to_send()
    seed = data[0] if data else 0
    events: list[object] = []
    for piece in chunks_of(data, seed):
        client.receive_data(piece)
        events.extend(client.events_received())
    responses = [e for e in events if isinstance(e, Response)]
    check(len(responses) <= 1, "more than one response")
    if client.state is State.CONNECTING:
        check(not responses and client.handshake_exc is None, "CONNECTING after a response")
    elif client.handshake_exc is None:
        check(len(responses) == 1 and responses[0].status == 101, "open without a 101")
        check(events[0] is responses[0], "frames before the response")
    else:
        check(client.state is State.CLOSED and client.eof_sent, "failed but not closed")
        check(events == responses, "events after a failed handshake")
    client.receive_eof()
    check(client.state is State.CLOSED, "not CLOSED after EOF")
    if not responses:
        check(client.handshake_exc is not None, "EOF before the response, but no error")


def fuzz_uri(data: bytes) -> None:
    """parse_uri: a URI whose resource name fits in a request line, or InvalidURI."""
    text = data.decode("utf-8", "replace")
    try:
        uri = parse_uri(text)
    except InvalidURI:
        return
    check(uri.resource_name.startswith("/"), "resource name not absolute")
    check(uri.resource_name.isascii() and uri.resource_name.isprintable(), "bad resource")
    check(" " not in uri.resource_name, "space in the resource name")
    check(0 < uri.port < 65536, "port out of range")
    uri.host_header.encode("ascii")


def fuzz_extension_header(data: bytes) -> None:
    """parse_extension_header: a parsed list or InvalidHeader."""
    try:
        parse_extension_header(data.decode("latin-1"))
    except InvalidHeader:
        return


# Raw-deflate helper for seeds and structured inputs: a compressed message as
# RFC 7692 section 7.2.1 sends it (the 00 00 ff ff tail removed).
def deflate_message(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


HTTP_TARGETS = (
    fuzz_request,
    fuzz_response,
    fuzz_server_handshake,
    fuzz_client_handshake,
    fuzz_uri,
    fuzz_extension_header,
)
"""The HTTP-side targets, in the order of fuzz_http.py's first input byte."""
