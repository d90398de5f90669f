"""Real peers for the asyncio adapter tests: raw sockets, hand-made frames, TLS.

The adapter is tested over loopback sockets against peers that do exactly what
a test says and nothing more: :class:`RawPeer` sends frames and HTTP built here
by hand (independently of :mod:`hubbub.protocol`, so that a bug in the library's
encoder cannot hide the same bug in its decoder) and reads raw bytes back. It
can misbehave on purpose: never answer a ping or a close frame, stop reading
so that TCP pushes back, send half a request.

Everything polls with deadlines (:func:`wait_until`, the ``timeout`` arguments)
instead of sleeping for fixed times, so the suite stays fast on a loaded machine
and fails with a clear message instead of hanging.

(The module has a unique name instead of ``helpers`` because test directories
are not packages: every one of them lands on ``sys.path``.)
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubbub.asyncio import Server, ServerConnection, serve

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""RFC 6455 section 1.3: the GUID appended to the key for Sec-WebSocket-Accept."""

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Timeouts for tests: short, so that a test of a timeout takes a fraction of a
# second, yet long enough for a loaded 2-core machine.
FAST: dict[str, Any] = dict(ping_interval=None, open_timeout=2.0, close_timeout=1.0)
"""Options for servers and clients in tests that are not about timeouts."""


def accept_key(key: str) -> str:
    """Section 4.2.2: base64(SHA-1(key + GUID))."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
) -> bytes:
    """Build one frame by hand (section 5.2); ``rsv`` is the 3 RSV bits (0-7)."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if mask is None:
        return bytes(head) + payload
    return bytes(head) + mask + xor_mask(payload, mask)


def xor_mask(data: bytes, mask: bytes) -> bytes:
    """Section 5.3: XOR with the 4-byte key, as one big-integer operation."""
    n = len(data)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def close_payload(code: int | None, reason: str = "") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason.encode()


@dataclass
class RawFrame:
    """A frame as it was seen on the wire."""

    fin: bool
    opcode: int
    payload: bytes
    masked: bool
    rsv: int = 0

    @property
    def close_code(self) -> int | None:
        assert self.opcode == OP_CLOSE, self
        return struct.unpack("!H", self.payload[:2])[0] if self.payload else None

    @property
    def close_reason(self) -> str:
        assert self.opcode == OP_CLOSE, self
        return self.payload[2:].decode()


@dataclass
class RawHTTP:
    """An HTTP message head (and body, by Content-Length) seen on the wire."""

    start_line: str
    headers: dict[str, str]
    """Lowercased names; repeated fields joined with ', '."""
    body: bytes = b""
    raw: bytes = b""

    @property
    def status(self) -> int:
        return int(self.start_line.split()[1])


@dataclass
class RawPeer:
    """One end of a TCP (or Unix) connection, driven by hand.

    ``client=True`` masks what it sends, as a WebSocket client must (section 5.3).
    """

    sock: socket.socket
    client: bool = True
    buf: bytearray = field(default_factory=bytearray)
    eof: bool = False

    @classmethod
    async def open(
        cls,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        unix_path: str | None = None,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
    ) -> RawPeer:
        """Connect; buffer sizes are set before connecting so the window is small."""
        family = socket.AF_UNIX if unix_path is not None else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            sock.setblocking(False)
            address: Any = unix_path if unix_path is not None else (host, port)
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, address), 2.0)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def close(self) -> None:
        self.sock.close()

    async def __aenter__(self) -> RawPeer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # --- bytes ------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        await asyncio.wait_for(self.loop.sock_sendall(self.sock, data), 5.0)

    async def _fill(self, timeout: float) -> None:
        if self.eof:
            raise EOFError(f"peer closed the connection; unread: {bytes(self.buf)!r}")
        try:
            chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, 2**16), timeout)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise EOFError(f"peer closed the connection; unread: {bytes(self.buf)!r}")
        self.buf += chunk

    async def read_exactly(self, n: int, timeout: float = 2.0) -> bytes:
        deadline = self.loop.time() + timeout
        while len(self.buf) < n:
            await self._fill(max(0.0, deadline - self.loop.time()))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def read_until(self, marker: bytes, timeout: float = 2.0) -> bytes:
        deadline = self.loop.time() + timeout
        while (end := self.buf.find(marker)) < 0:
            await self._fill(max(0.0, deadline - self.loop.time()))
        return await self.read_exactly(end + len(marker))

    async def read_to_eof(self, timeout: float = 2.0) -> bytes:
        """Read until the peer closes TCP; return what was left unread."""
        deadline = self.loop.time() + timeout
        while True:
            try:
                await self._fill(max(0.0, deadline - self.loop.time()))
            except EOFError:
                data = bytes(self.buf)
                self.buf.clear()
                return data

    async def drain_available(self) -> int:
        """Read whatever the kernel holds right now; return how many bytes."""
        total = 0
        while True:
            try:
                chunk = self.sock.recv(2**20)
            except (BlockingIOError, InterruptedError):
                return total
            if not chunk:
                self.eof = True
                return total
            total += len(chunk)
            self.buf += chunk

    # --- HTTP ---------------------------------------------------------------------

    async def read_http(self, timeout: float = 2.0) -> RawHTTP:
        head = await self.read_until(b"\r\n\r\n", timeout)
        lines = head.decode("latin-1").split("\r\n")[:-2]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        length = int(headers.get("content-length", "0"))
        body = await self.read_exactly(length, timeout) if length else b""
        return RawHTTP(lines[0], headers, body, head + body)

    async def handshake(
        self,
        path: str = "/",
        headers: Iterable[tuple[str, str]] = (),
        *,
        version: str = "13",
        expect: int | None = 101,
    ) -> RawHTTP:
        """Send a client handshake request (section 4.1) and read the answer."""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            "Host: localhost",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            f"Sec-WebSocket-Version: {version}",
            *(f"{n}: {v}" for n, v in headers),
        ]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = await self.read_http()
        if expect is not None:
            assert response.status == expect, response
        if response.status == 101:
            assert response.headers["sec-websocket-accept"] == accept_key(key)
        return response

    async def accept_handshake(
        self,
        extra: Iterable[tuple[str, str]] = (),
        *,
        accept: str | None = None,
        status: str = "101 Switching Protocols",
    ) -> RawHTTP:
        """Read a client's request and answer it as a server (section 4.2.2)."""
        self.client = False
        request = await self.read_http()
        key = request.headers["sec-websocket-key"]
        lines = [
            f"HTTP/1.1 {status}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept if accept is not None else accept_key(key)}",
            *(f"{n}: {v}" for n, v in extra),
        ]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return request

    # --- frames ---------------------------------------------------------------------

    async def send_frame(
        self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0
    ) -> None:
        await self.send(self.frame(opcode, payload, fin=fin, rsv=rsv))

    def frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
        mask = os.urandom(4) if self.client else None
        return build_frame(opcode, payload, fin=fin, rsv=rsv, mask=mask)

    async def send_text(self, text: str) -> None:
        await self.send_frame(OP_TEXT, text.encode())

    async def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        await self.send_frame(OP_CLOSE, close_payload(code, reason))

    async def close_handshake(self, code: int | None = 1000, reason: str = "") -> RawFrame:
        """Send a close frame, read up to the answer, then close TCP (section 7.1.1)."""
        await self.send_close(code, reason)
        while (frame := await self.read_frame()).opcode != OP_CLOSE:
            pass
        self.close()
        return frame

    async def read_frame(self, timeout: float = 2.0) -> RawFrame:
        head = await self.read_exactly(2, timeout)
        masked = bool(head[1] & 0x80)
        n = head[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.read_exactly(2, timeout))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.read_exactly(8, timeout))[0]
        mask = await self.read_exactly(4, timeout) if masked else b""
        payload = await self.read_exactly(n, timeout)
        if masked:
            payload = xor_mask(payload, mask)
        return RawFrame(bool(head[0] & 0x80), head[0] & 0x0F, payload, masked, (head[0] >> 4) & 7)

    async def read_frame_skipping_pings(self, timeout: float = 2.0) -> RawFrame:
        """Read the next frame that is not a ping (keepalive noise), unanswered."""
        while (frame := await self.read_frame(timeout)).opcode == OP_PING:
            pass
        return frame


class RawServer:
    """A listening socket whose connections are :class:`RawPeer` servers.

    ``rcvbuf`` is set on the listening socket, so that accepted sockets advertise
    a small window from the SYN on.
    """

    def __init__(self, *, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.peers: list[RawPeer] = []

    async def accept(self, timeout: float = 2.0) -> RawPeer:
        loop = asyncio.get_running_loop()
        conn, _ = await asyncio.wait_for(loop.sock_accept(self.sock), timeout)
        conn.setblocking(False)
        peer = RawPeer(conn, client=False)
        self.peers.append(peer)
        return peer

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        self.sock.close()

    async def __aenter__(self) -> RawServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


# --- servers and polling -------------------------------------------------------------


async def echo(ws: ServerConnection) -> None:
    """The echo handler: every message goes back to its sender."""
    async for message in ws:
        await ws.send(message)


@asynccontextmanager
async def running_server(
    handler: Callable[[ServerConnection], Awaitable[Any]] = echo, **options: Any
) -> AsyncIterator[Server]:
    """``serve()`` on a free loopback port with test timeouts unless overridden."""
    merged = {**FAST, **options}
    host = None if "unix_path" in merged or "sock" in merged else "127.0.0.1"
    async with serve(handler, host, 0 if host else None, **merged) as server:
        yield server


def url(server: Server, path: str = "/", scheme: str = "ws", host: str = "127.0.0.1") -> str:
    return f"{scheme}://{host}:{server.port}{path}"


async def wait_until(
    predicate: Callable[[], object], timeout: float = 2.0, message: str = ""
) -> None:
    """Poll ``predicate`` every few milliseconds until it is true, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {message or predicate}")
        await asyncio.sleep(0.005)


async def send_until_stalled(sock: socket.socket, data: bytes, stall: float = 0.3) -> int:
    """Send ``data`` without blocking until no byte goes out for ``stall`` seconds.

    Returns how many bytes went out; fails if all of it did (no backpressure).
    """
    loop = asyncio.get_running_loop()
    view, offset = memoryview(data), 0
    stalled_since = loop.time()
    while loop.time() - stalled_since < stall:
        try:
            n = sock.send(view[offset : offset + 2**16])
        except BlockingIOError:
            await asyncio.sleep(0.01)
            continue
        offset += n
        stalled_since = loop.time()
        assert offset < len(data), "the whole stream went through: no backpressure"
    return offset


def short_unix_path() -> str:
    """A Unix socket path short enough for sun_path (108 bytes), unlike tmp_path."""
    return os.path.join(tempfile.mkdtemp(prefix="hb"), "s")


# --- TLS ---------------------------------------------------------------------------------


def make_tls_contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for localhost and 127.0.0.1; return (server, client) contexts.

    The certificate is its own CA (basicConstraints CA, key identifiers) so that
    strict X.509 verification accepts it as a trust anchor.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert_path))
    return server, client
