"""Proxies: the sans-I/O exchanges, proxy selection, and both clients through real proxies.

The real proxies are Debian's tinyproxy (HTTP CONNECT, with BasicAuth) and microsocks
(SOCKS5, with RFC 1929 username/password), started by the tests on loopback ports.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from pathlib import Path

import pytest

from client_peers import FAST, hubbub_server, microsocks, tinyproxy
from hubbub.asyncio import connect as async_connect
from hubbub.protocol.handshake import parse_uri
from hubbub.proxy import (
    HttpConnect,
    Proxy,
    ProxyError,
    Socks5Connect,
    parse_proxy,
    select_proxy,
)
from hubbub.sync.client import connect

OPTIONS = {k: v for k, v in FAST.items() if k != "proxy"}

# --- parsing and selection --------------------------------------------------------------


def test_parse_proxy() -> None:
    assert parse_proxy("http://u%40x:p%3A@proxy.example:3128") == Proxy(
        "http", "proxy.example", 3128, "u@x", "p:"
    )
    assert parse_proxy("proxy.example") == Proxy("http", "proxy.example", 8080)
    assert parse_proxy("socks5h://[::1]") == Proxy("socks5h", "::1", 1080)
    assert "secret" not in str(parse_proxy("http://user:secret@p:1"))
    with pytest.raises(ValueError, match="unsupported proxy scheme"):
        parse_proxy("https://p:1")
    with pytest.raises(ValueError, match="without a host"):
        parse_proxy("http://:8080")


def test_select_proxy_from_environment() -> None:
    ws = parse_uri("ws://example.com/chat")
    wss = parse_uri("wss://example.com/chat")
    env = {
        "http_proxy": "http://plain:1",
        "HTTPS_PROXY": "http://tls:2",
        "all_proxy": "socks5://all:3",
    }
    assert select_proxy(ws, True, env) == Proxy("http", "plain", 1)
    assert select_proxy(wss, True, env) == Proxy("http", "tls", 2)
    assert select_proxy(ws, True, {"ALL_PROXY": "socks5h://s:9"}) == Proxy("socks5h", "s", 9)
    # Lowercase wins over uppercase, like curl.
    assert select_proxy(ws, True, {"http_proxy": "a:1", "HTTP_PROXY": "b:2"}) == Proxy(
        "http", "a", 1
    )
    assert select_proxy(ws, True, {}) is None
    # Explicit options.
    assert select_proxy(ws, None, env) is None
    assert select_proxy(ws, False, env) is None
    assert select_proxy(ws, "socks5://x:5", {}) == Proxy("socks5", "x", 5)


@pytest.mark.parametrize(
    ("no_proxy", "bypassed"),
    [
        ("*", True),
        ("example.com", True),
        (".example.com", True),  # curl: the domain itself and its subdomains
        ("other.org, example.com", True),
        ("example.com:80", True),
        ("example.com:81", False),
        ("ample.com", False),
        ("", False),
    ],
)
def test_no_proxy(no_proxy: str, bypassed: bool) -> None:
    env = {"http_proxy": "http://p:1", "no_proxy": no_proxy}
    selected = select_proxy(parse_uri("ws://example.com/"), True, env)
    assert (selected is None) is bypassed
    sub = select_proxy(parse_uri("ws://a.example.com/"), True, {**env, "no_proxy": ".example.com"})
    assert sub is None


def test_no_proxy_ip_networks_and_loopback() -> None:
    env = {"http_proxy": "http://p:1", "no_proxy": "10.0.0.0/8"}
    assert select_proxy(parse_uri("ws://10.1.2.3/"), True, env) is None
    assert select_proxy(parse_uri("ws://11.1.2.3/"), True, env) is not None
    # Like Go: loopback never goes through a proxy from the environment...
    env = {"http_proxy": "http://p:1"}
    for host in ("127.0.0.1", "localhost", "[::1]"):
        assert select_proxy(parse_uri(f"ws://{host}:8000/"), True, env) is None
    # ... but an explicit proxy applies.
    assert select_proxy(parse_uri("ws://127.0.0.1/"), "http://p:1", env) is not None


# --- the exchanges, byte by byte -----------------------------------------------------------


def test_http_connect_exchange() -> None:
    handshake = HttpConnect("example.com", 443, "alice", "pw")
    request = handshake.data_to_send().decode()
    token = base64.b64encode(b"alice:pw").decode()
    assert request == (
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
        f"Proxy-Authorization: Basic {token}\r\n\r\n"
    )
    for byte in b"HTTP/1.0 200 Connection established\r\nX: y\r\n\r":
        handshake.receive_data(bytes([byte]))
        assert not handshake.done
    handshake.receive_data(b"\nextra")
    assert handshake.done
    assert handshake.extra == b"extra"
    assert HttpConnect("::1", 80).data_to_send().startswith(b"CONNECT [::1]:80 ")


@pytest.mark.parametrize(("status", "transient"), [(407, False), (403, False), (502, True)])
def test_http_connect_refused(status: int, transient: bool) -> None:
    handshake = HttpConnect("example.com", 80)
    with pytest.raises(ProxyError) as info:
        handshake.receive_data(f"HTTP/1.1 {status} No\r\n\r\n".encode())
    assert info.value.status_code == status
    assert info.value.transient is transient


def test_socks5_exchange_with_auth() -> None:
    handshake = Socks5Connect("example.com", 8080, "bob", "pw")
    assert handshake.data_to_send() == b"\x05\x02\x00\x02"
    handshake.receive_data(b"\x05\x02")
    assert handshake.data_to_send() == b"\x01\x03bob\x02pw"
    handshake.receive_data(b"\x01\x00")
    assert handshake.data_to_send() == b"\x05\x01\x00\x03\x0bexample.com\x1f\x90"
    handshake.receive_data(b"\x05\x00\x00\x01\x7f\x00")
    assert not handshake.done
    handshake.receive_data(b"\x00\x01\x04\xd2")
    assert handshake.done


def test_socks5_ip_addresses_and_failures() -> None:
    handshake = Socks5Connect("10.0.0.1", 80)
    assert handshake.data_to_send() == b"\x05\x01\x00"
    handshake.receive_data(b"\x05\x00")
    assert handshake.data_to_send() == b"\x05\x01\x00\x01\x0a\x00\x00\x01\x00\x50"
    with pytest.raises(ProxyError, match="connection refused") as info:
        handshake.receive_data(b"\x05\x05\x00\x01" + bytes(6))
    assert info.value.transient
    refused = Socks5Connect("::1", 80)
    refused.data_to_send()
    with pytest.raises(ProxyError, match="none of the offered methods"):
        refused.receive_data(b"\x05\xff")
    auth = Socks5Connect("h", 1, "u", "bad")
    auth.receive_data(b"\x05\x02")
    with pytest.raises(ProxyError, match="authentication failed"):
        auth.receive_data(b"\x01\x01")


# --- through real proxies ----------------------------------------------------------------

AUTH = ("alice", "s3cret")


def proxy_url(kind: str, port: int, auth: tuple[str, str] | None) -> str:
    scheme = "http" if kind == "tinyproxy" else "socks5h"
    user = f"{auth[0]}:{auth[1]}@" if auth else ""
    return f"{scheme}://{user}127.0.0.1:{port}"


def start_proxy(kind: str, tmp_path: Path, auth: tuple[str, str] | None):  # type: ignore[no-untyped-def]
    return tinyproxy(tmp_path, auth) if kind == "tinyproxy" else microsocks(auth)


@pytest.mark.parametrize("kind", ["tinyproxy", "microsocks"])
@pytest.mark.parametrize("auth", [None, AUTH], ids=["no-auth", "auth"])
def test_sync_client_through_proxy(kind: str, auth: tuple[str, str] | None, tmp_path: Path) -> None:
    with start_proxy(kind, tmp_path, auth) as proxy_port, hubbub_server() as server:
        url = f"ws://127.0.0.1:{server.port}/through"
        with connect(url, proxy=proxy_url(kind, proxy_port, auth), **OPTIONS) as ws:
            ws.send("via proxy")
            assert ws.recv(timeout=5) == "via proxy"
            assert ws.request is not None
            assert ws.request.path == "/through"
            # The server saw the proxy's connection, not ours.
            assert len(server.remote_addresses) == 1
            assert server.remote_addresses[0][1] != ws.local_address[1]


@pytest.mark.parametrize("kind", ["tinyproxy", "microsocks"])
def test_async_client_through_proxy(kind: str, tmp_path: Path) -> None:
    async def talk(url: str, proxy: str) -> str:
        async with async_connect(url, proxy=proxy, **OPTIONS) as ws:
            await ws.send(b"binary via proxy")
            return repr(await ws.recv())

    with start_proxy(kind, tmp_path, AUTH) as proxy_port, hubbub_server() as server:
        url = f"ws://127.0.0.1:{server.port}/"
        answer = asyncio.run(talk(url, proxy_url(kind, proxy_port, AUTH)))
    assert answer == repr(b"binary via proxy")


@pytest.mark.parametrize("kind", ["tinyproxy", "microsocks"])
def test_wrong_credentials(kind: str, tmp_path: Path) -> None:
    with start_proxy(kind, tmp_path, AUTH) as proxy_port, hubbub_server() as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with pytest.raises(ProxyError) as info:
            connect(url, proxy=proxy_url(kind, proxy_port, ("alice", "wrong")), **OPTIONS)
        assert not info.value.transient
        if kind == "tinyproxy":
            # RFC 9110 says 407; tinyproxy 1.11 answers CONNECT with 401.
            assert info.value.status_code in (401, 407)


def test_environment_proxy_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``proxy=True`` (the default) reads all_proxy; loopback names are exempt.

    The target is this machine's host name, which /etc/hosts maps to loopback here: not a
    loopback *name*, so the environment's proxy applies, and the proxy can reach it.
    """
    hostname = socket.gethostname()
    try:
        address = socket.gethostbyname(hostname)
    except OSError:
        pytest.skip(f"host name {hostname} does not resolve")
    if not address.startswith("127."):
        pytest.skip(f"host name {hostname} is not loopback ({address})")
    with microsocks() as proxy_port, hubbub_server() as server:
        monkeypatch.setenv("all_proxy", f"socks5h://127.0.0.1:{proxy_port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        target = parse_uri(f"ws://{hostname}:{server.port}/")
        assert select_proxy(target) == Proxy("socks5h", "127.0.0.1", proxy_port)
        with connect(f"ws://{hostname}:{server.port}/", **OPTIONS) as ws:
            ws.send("env")
            assert ws.recv(timeout=5) == "env"
            # The server saw the proxy's connection, not ours.
            assert server.remote_addresses
            assert ws.local_address[1] not in [a[1] for a in server.remote_addresses]
        monkeypatch.setenv("no_proxy", hostname)
        assert select_proxy(target) is None
