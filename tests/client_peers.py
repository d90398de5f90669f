"""Real servers and proxies for the client tests (blocking, asyncio, browser-style).

Every helper is a context manager that starts a real peer on a free loopback port and
stops it on exit:

* :func:`websockets_server` - the ``websockets`` library's server, in a thread with its
  own event loop;
* :func:`hubbub_server` - our own asyncio server, likewise (with ``process_request`` to
  answer 403s and redirects);
* :func:`node_server` - Node's ``ws`` (``tests/interop/node/node_modules``), a child process;
* :func:`tinyproxy` - Debian's tinyproxy (HTTP CONNECT, optional BasicAuth);
* :func:`microsocks` - microsocks (SOCKS5, optional username/password).

All servers speak the same tiny protocol so that a test runs unchanged against each: every
message is echoed, except a text message ``"close CODE REASON"``, on which the server
closes the connection with that code and reason.

(The module name is unique because test folders are not packages: all share ``sys.path``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hubbub.asyncio import ServerConnection
from hubbub.asyncio import serve as hubbub_serve
from hubbub.protocol.http11 import Request, Response

T = TypeVar("T")

TESTS = Path(__file__).resolve().parent
NODE_DIR = TESTS / "interop" / "node"

#: Options for our clients in tests that are not about timeouts.
FAST: dict[str, Any] = dict(ping_interval=None, open_timeout=5.0, close_timeout=2.0, proxy=None)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for programs told a port on their command line)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.01)


class LoopThread:
    """An asyncio event loop running in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 20.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _command(message: str | bytes) -> tuple[int, str] | None:
    if isinstance(message, str) and message.startswith("close "):
        _, code, *reason = message.split(" ", 2)
        return int(code), reason[0] if reason else ""
    return None


# --- websockets ----------------------------------------------------------------------


@contextlib.contextmanager
def websockets_server(**options: Any) -> Iterator[int]:
    """The ``websockets`` echo server (see the module docstring); yields its port."""
    from websockets.asyncio.server import serve as ws_serve

    async def handler(ws: Any) -> None:
        async for message in ws:
            command = _command(message)
            if command is not None:
                await ws.close(*command)
                return
            await ws.send(message)

    runner = LoopThread()

    async def start() -> Any:
        return await ws_serve(handler, "127.0.0.1", 0, **options)

    server = runner.run(start())
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        runner.run(stop())
        runner.stop()


# --- hubbub's own asyncio server -------------------------------------------------------


ProcessRequest = Callable[[ServerConnection, Request], Response | None]


class HubbubServer:
    """Our asyncio server in a thread; can be stopped and started again on the same port."""

    def __init__(self, process_request: ProcessRequest | None = None, **options: Any) -> None:
        self.process_request = process_request
        self.options = options
        self.runner = LoopThread()
        self.server: Any = None
        self.port = 0
        self.connections = 0
        self.remote_addresses: list[Any] = []

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.remote_addresses.append(ws.remote_address)
        async for message in ws:
            command = _command(message)
            if command is not None:
                await ws.close(*command)
                return
            await ws.send(message)

    def start(self) -> int:
        async def start() -> Any:
            return await hubbub_serve(
                self._handler,
                "127.0.0.1",
                self.port,
                process_request=self.process_request,
                ping_interval=None,
                close_timeout=1.0,
                **self.options,
            )

        self.server = self.runner.run(start())
        self.port = self.server.port
        return self.port

    def stop(self) -> None:
        server = self.server
        if server is None:
            return
        self.server = None

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        self.runner.run(stop())

    def close(self) -> None:
        self.stop()
        self.runner.stop()


@contextlib.contextmanager
def hubbub_server(
    process_request: ProcessRequest | None = None, **options: Any
) -> Iterator[HubbubServer]:
    """Our asyncio echo server (see the module docstring), started."""
    server = HubbubServer(process_request, **options)
    server.start()
    try:
        yield server
    finally:
        server.close()


def respond(status: int, location: str | None = None) -> ProcessRequest:
    """A ``process_request`` hook that answers every handshake with ``status``."""

    def process_request(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(status, f"status {status}")
        if location is not None:
            response.headers["Location"] = location
        return response

    return process_request


# --- Node's ws ---------------------------------------------------------------------------

_NODE_ECHO = r"""
const { WebSocketServer } = require("ws");
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
wss.on("listening", () => console.log(JSON.stringify({ port: wss.address().port })));
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? null : data.toString("utf8");
    if (text !== null && text.startsWith("close ")) {
      const [, code, ...reason] = text.split(" ");
      ws.close(Number(code), reason.join(" "));
      return;
    }
    ws.send(data, { binary: isBinary });
  });
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
"""


def node_missing() -> str | None:
    """Why Node's ws cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").is_file():
        return f"Node's ws is not installed: run `npm ci` in {NODE_DIR}"
    return None


@contextlib.contextmanager
def node_server() -> Iterator[int]:
    """Node's ``ws`` echo server (see the module docstring); yields its port."""
    reason = node_missing()
    if reason is not None:
        pytest.skip(reason)
    env = dict(os.environ, NODE_PATH=str(NODE_DIR / "node_modules"))
    process = subprocess.Popen(
        ["node", "-e", _NODE_ECHO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        port = int(json.loads(line)["port"])
        yield port
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# --- proxies -------------------------------------------------------------------------------


@contextlib.contextmanager
def _daemon(argv: list[str], port: int) -> Iterator[None]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def tinyproxy(tmp_path: Path, auth: tuple[str, str] | None = None) -> Iterator[int]:
    """Debian's tinyproxy on a free loopback port (HTTP CONNECT); yields the port."""
    if shutil.which("tinyproxy") is None:
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy)")
    port = free_port()
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        "MaxClients 50",
        "LogLevel Critical",
        "Allow 127.0.0.1",
    ]
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    config = tmp_path / f"tinyproxy-{port}.conf"
    config.write_text("\n".join(lines) + "\n")
    with _daemon(["tinyproxy", "-d", "-c", str(config)], port):
        yield port


@contextlib.contextmanager
def microsocks(auth: tuple[str, str] | None = None) -> Iterator[int]:
    """microsocks on a free loopback port (SOCKS5); yields the port."""
    if shutil.which("microsocks") is None:
        pytest.skip("microsocks is not installed (apt-get install microsocks)")
    port = free_port()
    argv = ["microsocks", "-i", "127.0.0.1", "-p", str(port)]
    if auth is not None:
        argv += ["-u", auth[0], "-P", auth[1]]
    with _daemon(argv, port):
        yield port


# --- a raw server that misbehaves on purpose ------------------------------------------------


@contextlib.contextmanager
def raw_server(after_handshake: bytes = b"") -> Iterator[int]:
    """Accept one client, answer its handshake by hand, send ``after_handshake`` raw, then
    read (and ignore) everything until the client goes away. Yields the port."""
    import base64
    import hashlib

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        with sock:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                data += chunk
            key = next(
                line.split(b":", 1)[1].strip()
                for line in data.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            sock.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept
                + b"\r\n\r\n"
                + after_handshake
            )
            sock.settimeout(10)
            with contextlib.suppress(OSError):
                while sock.recv(4096):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()
        thread.join(10)


# --- TLS ---------------------------------------------------------------------------------------


def tls_contexts(directory: Path) -> tuple[Any, Any]:
    """(server, client) SSL contexts for a self-signed localhost / 127.0.0.1 certificate.

    Reuses ``make_tls_contexts`` of the asyncio tests' helpers, loaded by path (test
    folders are not packages and tests/asyncio may not be on sys.path).
    """
    import importlib.util
    import sys

    name = "client_peers_asyncio_helpers"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            name, TESTS / "asyncio" / "asyncio_helpers.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    contexts: tuple[Any, Any] = module.make_tls_contexts(directory)
    return contexts


ECHO_SERVERS = ["websockets", "hubbub", pytest.param("node", marks=pytest.mark.peer)]
"""Parameters for tests that run against each echo server; Node's is a real peer."""


@contextlib.contextmanager
def echo_server(kind: str) -> Iterator[int]:
    """Run the echo server of ``kind`` (see :data:`ECHO_SERVERS`); yield its port."""
    if kind == "websockets":
        with websockets_server() as port:
            yield port
    elif kind == "hubbub":
        with hubbub_server() as server:
            yield server.port
    else:
        with node_server() as port:
            yield port
