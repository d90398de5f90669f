"""wss:// with the blocking client and server: TLS, certificates, TLS inside a proxy tunnel."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from client_peers import FAST, tinyproxy, tls_contexts, websockets_server
from hubbub.backoff import is_transient
from hubbub.sync.client import connect
from hubbub.sync.server import ServerConnection, serve


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return tls_contexts(tmp_path_factory.mktemp("tls"))


def test_client_with_websockets_server(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    with (
        websockets_server(ssl=server_ctx) as port,
        connect(f"wss://localhost:{port}/", ssl=client_ctx, **FAST) as ws,
    ):
        assert isinstance(ws.socket, ssl.SSLSocket)
        ws.send("secret")
        assert ws.recv(timeout=5) == "secret"
        ws.send(b"\x00" * 100_000)
        assert ws.recv(timeout=5) == b"\x00" * 100_000
    assert ws.close_code == 1000


def test_client_and_server(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls

    def handler(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    server = serve(handler, "127.0.0.1", 0, ssl=server_ctx, ping_interval=None, close_timeout=1.0)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with connect(f"wss://127.0.0.1:{server.port}/", ssl=client_ctx, **FAST) as ws:
            ws.send("both ends")
            assert ws.recv(timeout=5) == "both ends"
        assert ws.close_code == 1000
    finally:
        server.close()
        thread.join(5)


def test_untrusted_certificate_is_permanent(tls: tuple[ssl.SSLContext, Any]) -> None:
    server_ctx, _ = tls
    # The default context does not trust the self-signed certificate.
    with (
        websockets_server(ssl=server_ctx) as port,
        pytest.raises(ssl.SSLCertVerificationError) as info,
    ):
        connect(f"wss://localhost:{port}/", **FAST)
    assert not is_transient(info.value)


def test_ssl_with_ws_uri_is_refused(tls: tuple[Any, ssl.SSLContext]) -> None:
    with pytest.raises(ValueError, match="wss://"):
        connect("ws://localhost:1/", ssl=tls[1])


def test_tls_inside_a_proxy_tunnel(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], tmp_path: Path
) -> None:
    server_ctx, client_ctx = tls
    options = {k: v for k, v in FAST.items() if k != "proxy"}
    with tinyproxy(tmp_path) as proxy_port, websockets_server(ssl=server_ctx) as port:
        proxy = f"http://127.0.0.1:{proxy_port}"
        with connect(f"wss://localhost:{port}/", ssl=client_ctx, proxy=proxy, **options) as ws:
            ws.send("tunnelled")
            assert ws.recv(timeout=5) == "tunnelled"
