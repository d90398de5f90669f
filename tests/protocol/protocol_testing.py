"""Testing helpers for the sans-I/O core: frames built and parsed by hand.

In the spirit of trio's testing helpers: tests feed bytes that are built here,
independently of :mod:`hubbub.protocol.frames`, and check the bytes the
connection wants to send by parsing them here too. A bug in the library's
encoder therefore cannot hide the same bug in its decoder.

(The module has a unique name instead of ``helpers`` because test directories
are not packages: every one of them lands on ``sys.path``.)
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hypothesis import HealthCheck, settings

from hubbub.protocol import (
    ClientConnection,
    CloseReceived,
    Connection,
    Failure,
    Request,
    Response,
    ServerConnection,
    Side,
    State,
)

MASK_KEY = b"\x37\xfa\x21\x3d"
"""The masking key of hand-built client frames (section 5.3); any key works."""

CLIENT_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
"""The key of the example in RFC 6455 section 1.3."""
CLIENT_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
"""Its ``Sec-WebSocket-Accept``, also from section 1.3."""

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def xor_mask(data: bytes, key: bytes) -> bytes:
    """Mask or unmask ``data``, the slow obvious way (section 5.3)."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: bytes | None = None,
    length_form: int | None = None,
    declared_length: int | None = None,
) -> bytes:
    """Build one frame byte by byte (section 5.2).

    Args:
        mask: the masking key, or ``None`` for an unmasked frame.
        length_form: 7, 16 or 64 to force an encoding of the length (the RFC
            asks for the minimal one, but receivers must parse all three).
        declared_length: the length written in the header, when a test wants it
            to differ from ``len(payload)`` (to send only the header of a huge
            frame, for example).
    """
    length = len(payload) if declared_length is None else declared_length
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
    b0 |= (0x10 if rsv3 else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length_form is None:
        length_form = 7 if length < 126 else 16 if length < 65536 else 64
    if length_form == 7:
        assert length < 126
        head = bytes([b0, mask_bit | length])
    elif length_form == 16:
        assert length < 65536
        head = bytes([b0, mask_bit | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([b0, mask_bit | 127]) + length.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + xor_mask(payload, mask)


def client_frame(opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as a client sends it: masked (section 5.1)."""
    return build_frame(opcode, payload, mask=MASK_KEY, **kwargs)  # type: ignore[arg-type]


def server_frame(opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as a server sends it: unmasked (section 5.1)."""
    return build_frame(opcode, payload, mask=None, **kwargs)  # type: ignore[arg-type]


def close_payload(code: int, reason: str | bytes = b"") -> bytes:
    """A close frame's payload (section 5.5.1)."""
    raw = reason.encode() if isinstance(reason, str) else reason
    return code.to_bytes(2, "big") + raw


@dataclass
class ParsedFrame:
    """A frame parsed from what a connection sent."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False
    masked: bool = False

    @property
    def close(self) -> tuple[int | None, str]:
        """The code and reason of a close frame; ``None`` when it has no code."""
        assert self.opcode == OP_CLOSE, self
        if not self.payload:
            return None, ""
        return int.from_bytes(self.payload[:2], "big"), self.payload[2:].decode()


def parse_frames(data: bytes, *, masked: bool) -> list[ParsedFrame]:
    """Parse every frame in ``data``, which must hold whole frames only.

    Args:
        masked: whether the frames must be masked (sent by a client).
    """
    frames = []
    pos = 0
    while pos < len(data):
        assert len(data) - pos >= 2, "truncated frame header"
        b0, b1 = data[pos], data[pos + 1]
        length = b1 & 0x7F
        pos += 2
        if length == 126:
            length = int.from_bytes(data[pos : pos + 2], "big")
            assert length >= 126, "length not encoded minimally"
            pos += 2
        elif length == 127:
            length = int.from_bytes(data[pos : pos + 8], "big")
            assert length >= 65536, "length not encoded minimally"
            pos += 8
        is_masked = bool(b1 & 0x80)
        assert is_masked is masked, "masking: client frames masked, server frames not"
        key = b""
        if is_masked:
            key = data[pos : pos + 4]
            pos += 4
        payload = data[pos : pos + length]
        assert len(payload) == length, "truncated frame payload"
        pos += length
        if is_masked:
            payload = xor_mask(payload, key)
        frames.append(
            ParsedFrame(
                b0 & 0x0F,
                payload,
                bool(b0 & 0x80),
                bool(b0 & 0x40),
                bool(b0 & 0x20),
                bool(b0 & 0x10),
                is_masked,
            )
        )
    return frames


def sent_frames(conn: Connection) -> list[ParsedFrame]:
    """Parse what ``conn`` wants to send; a client's frames must be masked."""
    return parse_frames(b"".join(conn.data_to_send()), masked=conn.side is Side.CLIENT)


def frame_to(conn: Connection, opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as ``conn``'s peer would send it (masked toward a server)."""
    if conn.side is Side.SERVER:
        return client_frame(opcode, payload, **kwargs)
    return server_frame(opcode, payload, **kwargs)


def fragments(conn: Connection, opcode: int, parts: list[bytes]) -> bytes:
    """A message as frames to ``conn``: the first frame with ``opcode``, then continuations."""
    out = []
    for i, part in enumerate(parts):
        op = opcode if i == 0 else OP_CONT
        out.append(frame_to(conn, op, part, fin=i == len(parts) - 1))
    return b"".join(out)


def feed(conn: Connection, data: bytes, chunk_size: int | None = None) -> list[object]:
    """Feed ``data`` in chunks of ``chunk_size`` bytes and return the events."""
    if chunk_size is None:
        conn.receive_data(data)
    else:
        for i in range(0, len(data), chunk_size):
            conn.receive_data(data[i : i + chunk_size])
    return conn.events_received()


def feed_chunks(conn: Connection, chunks: Iterable[bytes]) -> list[object]:
    """Feed each chunk with its own ``receive_data`` call and return the events."""
    for chunk in chunks:
        conn.receive_data(chunk)
    return conn.events_received()


def assert_failed(conn: Connection, code: int) -> None:
    """Check that ``conn`` failed the connection with ``code`` (section 7.1.7).

    It sent one close frame with that code, asked for the transport to be
    closed, and records the error.
    """
    frames = sent_frames(conn)
    assert frames, "no close frame was sent"
    assert frames[-1].opcode == OP_CLOSE
    assert frames[-1].close[0] == code
    assert [f for f in frames if f.opcode == OP_CLOSE] == frames[-1:]
    assert conn.eof_sent
    assert conn.close_exc is not None
    assert conn.close_exc.code == code
    assert conn.state is State.CLOSING


def assert_failure_event(events: Sequence[object], code: int) -> None:
    """Check that the last event is a deferred :class:`Failure` with ``code``."""
    assert events, "no events"
    last = events[-1]
    assert isinstance(last, Failure), events
    assert last.exc.code == code


def data_events(events: Iterable[object]) -> list[object]:
    """Only the messages (``str`` and ``bytes``) among ``events``."""
    return [e for e in events if isinstance(e, str | bytes)]


def is_close(event: object, code: int, reason: str = "") -> bool:
    return isinstance(event, CloseReceived) and (event.code, event.reason) == (code, reason)


# --- handshake -------------------------------------------------------------------


def request_bytes(
    headers: Sequence[tuple[str, str]] | None = None,
    *,
    method: str = "GET",
    target: str = "/chat",
    version: str = "HTTP/1.1",
    drop: Sequence[str] = (),
    extra: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A client handshake request (section 4.1), as raw bytes.

    Args:
        headers: the header fields; the valid ones of section 1.3 by default.
        drop: names of default fields to leave out.
        extra: fields to add after the defaults.
    """
    if headers is None:
        headers = [
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", CLIENT_KEY),
            ("Sec-WebSocket-Version", "13"),
        ]
    lowered = {d.lower() for d in drop}
    fields = [(n, v) for n, v in headers if n.lower() not in lowered] + list(extra)
    head = f"{method} {target} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
    return (head + "\r\n").encode("latin-1")


def accept_for(key: str) -> str:
    """``Sec-WebSocket-Accept`` computed here, independently (section 4.2.2)."""
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


def response_bytes(
    key: str,
    *,
    status: str = "101 Switching Protocols",
    extra: Sequence[tuple[str, str]] = (),
    drop: Sequence[str] = (),
    body: bytes = b"",
) -> bytes:
    """A server handshake response (section 4.2.2), as raw bytes."""
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_for(key)),
    ]
    lowered = {d.lower() for d in drop}
    fields = [(n, v) for n, v in headers if n.lower() not in lowered] + list(extra)
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
    return (head + "\r\n").encode("latin-1") + body


def server_handshake(
    server: ServerConnection, request: bytes | None = None
) -> tuple[Request, Response]:
    """Feed ``request`` to ``server``, accept it and send the response."""
    server.receive_data(request_bytes() if request is None else request)
    events = server.events_received()
    assert len(events) == 1, events
    req = events[0]
    assert isinstance(req, Request)
    response = server.accept(req)
    server.send_response(response)
    return req, response


def parse_http_response(data: bytes) -> tuple[int, dict[str, list[str]], bytes]:
    """Parse what a server sent as ``(status, {lowercase name: values}, body)``."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "incomplete HTTP response"
    lines = head.decode("latin-1").split("\r\n")
    version, status, _reason = lines[0].split(" ", 2)
    assert version == "HTTP/1.1"
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if "content-length" in headers:
        assert len(body) >= int(headers["content-length"][0])
    return int(status), headers, body


def parse_http_request(data: bytes) -> tuple[str, str, dict[str, list[str]]]:
    """Parse what a client sent as ``(method, target, {lowercase name: values})``."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, "incomplete request head"
    assert not rest, "expected exactly one request head"
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    assert version == "HTTP/1.1"
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return method, target, headers


def transfer(source: Connection, destination: Connection) -> None:
    """Deliver what ``source`` wants to send to ``destination``, and its EOF."""
    for chunk in source.data_to_send():
        destination.receive_data(chunk)


def open_pair(
    client: ClientConnection | None = None, server: ServerConnection | None = None
) -> tuple[ClientConnection, ServerConnection]:
    """Run a real handshake between a client and a server connection."""
    client = client if client is not None else ClientConnection("ws://example.com/")
    server = server if server is not None else ServerConnection()
    client.send_request()
    transfer(client, server)
    (request,) = server.events_received()
    assert isinstance(request, Request)
    server.send_response(server.accept(request))
    transfer(server, client)
    (response,) = client.events_received()
    assert isinstance(response, Response)
    assert client.state is State.OPEN, client.handshake_exc
    assert server.state is State.OPEN, server.handshake_exc
    return client, server


# --- property tests ----------------------------------------------------------------

PROPERTY_EXAMPLES = int(os.environ.get("HUBBUB_PROPERTY_EXAMPLES", "150"))
"""Examples per property test: small by default (shared 2-core machine), more on demand."""

property_settings = settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Settings of the property tests, applied per test so that other suites keep theirs."""
