"""A TLS client on a plain ws:// port (issue 18, finding 3).

The servers (asyncio and blocking, through the shared sans-I/O handshake)
recognise the ClientHello, close at once and log why; real TLS clients
(``ssl`` sockets, ``hubbub.asyncio.connect``, ``hubbub.sync.connect`` with
``wss://``, and the hub SDK against a plain hub) fail at once with a hint
instead of waiting for their open timeout.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from hubbub.asyncio import ServerConnection, serve
from hubbub.asyncio import connect as aconnect
from hubbub.backoff import Backoff
from hubbub.hub.client import HubClient, State
from hubbub.hub.server import start_hub
from hubbub.protocol.server import ServerConnection as ServerCore
from hubbub.sync.client import connect
from hubbub.sync.server import serve as sync_serve


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def tls_client_hello(port: int) -> BaseException:
    """Open TLS like any wss:// client; return how it failed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost"):
                pass
        except (ssl.SSLError, OSError) as exc:
            return exc
    raise AssertionError("the TLS handshake succeeded on a plain port")


def test_the_core_closes_at_once_on_a_client_hello() -> None:
    core = ServerCore()
    core.receive_data(b"\x16\x03")  # split record header: not decided yet
    assert not core.eof_sent
    core.receive_data(b"\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert core.eof_sent
    assert core.data_to_send() == []  # no HTTP answer a TLS client cannot read
    assert "TLS" in str(core.handshake_exc)
    # Plain HTTP (and a byte 0x16 that is not a TLS record) is parsed as before.
    other = ServerCore()
    other.receive_data(b"\x16\x01 garbage\r\n\r\n")
    assert b"400" in b"".join(other.data_to_send())


@pytest.fixture
def sync_port() -> Iterator[int]:
    server = sync_serve(lambda ws: None, "127.0.0.1", 0, open_timeout=30, close_timeout=1)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.port
    finally:
        server.close()
        thread.join(5)


def test_sync_server_closes_and_logs(sync_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "hubbub.server")
    error = tls_client_hello(sync_port)  # with open_timeout=30, closing is what ends it
    assert isinstance(error, (ssl.SSLError, ConnectionResetError)), error
    with pytest.raises((ssl.SSLError, ConnectionResetError)) as info:
        connect(f"wss://127.0.0.1:{sync_port}/", open_timeout=30, proxy=None)
    assert any("use ws://" in note for note in getattr(info.value, "__notes__", []))
    _wait_for_log(caplog, "TLS handshake (ClientHello) arrived on a plain ws:// port")


async def test_asyncio_server_closes_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "hubbub.server")
    async with serve(echo, "127.0.0.1", 0, open_timeout=30) as server:
        error = await asyncio.to_thread(tls_client_hello, server.port)
        assert isinstance(error, (ssl.SSLError, ConnectionResetError)), error
        with pytest.raises((ssl.SSLError, ConnectionResetError)) as info:
            await asyncio.wait_for(aconnect(f"wss://127.0.0.1:{server.port}/", proxy=None), 10)
        assert any("use ws://" in note for note in getattr(info.value, "__notes__", []))
        await asyncio.sleep(0.05)  # connection_lost runs on the next loop turns
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("plain ws:// port" in r.getMessage() for r in warnings)


async def test_hub_sdk_with_wss_to_a_plain_hub_says_why() -> None:
    errors: list[BaseException | None] = []
    async with start_hub("127.0.0.1", 0, insecure_dev_mode=True) as hub:
        client = HubClient(
            f"wss://127.0.0.1:{hub.port}/",
            name="ann",
            backoff=Backoff(0.01, 2.0, 0.05),
            on_state=lambda state, error: errors.append(error),
            open_timeout=30,
        )
        start = asyncio.create_task(client.start())
        try:
            # Before the first open_timeout could pass: the hub closed at once.
            await asyncio.wait_for(client.wait_state(State.RECONNECTING), 10)
            assert isinstance(client.last_error, (ssl.SSLError, ConnectionResetError))
            assert isinstance(errors[-1], (ssl.SSLError, ConnectionResetError))
        finally:
            await client.close()
            start.cancel()
            with pytest.raises((asyncio.CancelledError, Exception)):
                await start


def _wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    # The server thread logs right after closing; the client may be faster.
    done = threading.Event()
    for _ in range(200):
        if any(text in r.getMessage() for r in caplog.records):
            done.set()
            break
        done.wait(0.01)
    assert done.is_set(), [r.getMessage() for r in caplog.records]
