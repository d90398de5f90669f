"""``hubbub serve`` without a browser: static files over HTTP, settings, ``hubbub token``."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hubbub.hub import Authenticator
from hubbub.hub.server import Hub, start_hub
from hubbub.hub.server.static import FILES
from hubbub.hub.settings import hub_config, settings

SECRET = "static-tests-secret-of-at-least-32-bytes"


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with start_hub("127.0.0.1", 0, secret=SECRET) as running:
        yield running


def fetch(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


async def get(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(fetch, port, path, method, headers)


@pytest.mark.parametrize(
    ("path", "media_type", "marker"),
    [
        ("/", "text/html; charset=utf-8", b"<title>hubbub chat</title>"),
        ("/hubbub.js", "text/javascript; charset=utf-8", b"export class HubClient"),
        ("/chat.js", "text/javascript; charset=utf-8", b'from "./hubbub.js"'),
        ("/chat.css", "text/css; charset=utf-8", b"--accent"),
    ],
)
async def test_static_files(hub: Hub, path: str, media_type: str, marker: bytes) -> None:
    status, headers, body = await get(hub.port, path)
    assert status == 200
    assert headers["Content-Type"] == media_type
    assert marker in body
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Content-Type-Options"] == "nosniff"
    etag = headers["ETag"]
    assert etag.startswith('"')
    # Revalidation: same ETag, no body.
    status, again, body = await get(hub.port, path, headers={"If-None-Match": etag})
    assert (status, body, again["ETag"]) == (304, b"", etag)
    status, _, body = await get(hub.port, path, headers={"If-None-Match": '"other"'})
    assert status == 200
    assert body
    # HEAD: the headers of a GET, no body.
    status, head, body = await get(hub.port, path, "HEAD")
    assert (status, body) == (200, b"")
    assert head["Content-Length"] == headers["Content-Length"]


async def test_page_policy_and_errors(hub: Hub) -> None:
    _, headers, _ = await get(hub.port, "/")
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe" not in csp
    status, headers, _ = await get(hub.port, "/hubbub.js", "POST")
    assert (status, headers["Allow"]) == (405, "GET, HEAD")
    status, _, _ = await get(hub.port, "/nope.js")
    assert status == 404
    status, _, body = await get(hub.port, "/healthz")  # still served by the hub itself
    assert status == 200
    assert b'"ok"' in body


def test_every_static_file_ships_in_the_package() -> None:
    static = Path(__file__).resolve().parents[2] / "src" / "hubbub" / "hub" / "server" / "static"
    for name, _ in FILES.values():
        assert (static / name).is_file(), name
    pyproject = (static.parents[4] / "pyproject.toml").read_text()
    assert '"hubbub.hub.server.static" = ["*.html", "*.js", "*.css"]' in pyproject


def test_settings_precedence(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        'host = "0.0.0.0"\nport = 9000\nsecret = "from-toml"\napi_key = "k"\n'
        "[limits]\nmax_channels = 7\n[inbox]\nmax_len = 5\nmax_age = 60\n"
        '[namespaces.chat]\nhistory_size = 3\npublish = "all"\n'
    )
    args = argparse.Namespace(config=str(config), port=9001, host=None, dev=None, secret=None)
    resolved, toml = settings(args, {"HUBBUB_PORT": "9002", "HUBBUB_SECRET": "from-env"})
    assert resolved["port"] == 9001  # flag beats environment
    assert resolved["secret"] == "from-env"  # environment beats the file
    assert resolved["host"] == "0.0.0.0"  # the file beats the default
    assert resolved["api_key"] == "k"
    assert resolved["dev"] is False
    resolved, _ = settings(argparse.Namespace(config=None), {"HUBBUB_DEV": "yes"})
    assert resolved["dev"] is True
    with pytest.raises(ValueError, match="port"):
        settings(argparse.Namespace(config=None), {"HUBBUB_PORT": "eighty"})
    cfg = hub_config(toml)
    assert cfg.max_channels == 7
    assert (cfg.inbox.max_len, cfg.inbox.max_age) == (5, 60)
    assert set(cfg.namespaces) == {"chat"}
    assert cfg.namespaces["chat"].history.max_len == 3
    assert cfg.namespaces["chat"].publish == "all"
    default = hub_config({})
    assert set(default.namespaces) == {"", "chat"}
    with pytest.raises(ValueError, match="unknown"):
        hub_config({"limits": {"max_chanels": 1}})


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    command = [sys.executable, "-m", "hubbub", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=30, env=env)


def test_serve_refuses_to_run_without_identity() -> None:
    result = run_cli("serve", "--port", "0")
    assert result.returncode == 2
    assert "--dev" in result.stderr
    assert "HUBBUB_SECRET" in result.stderr


def test_serve_help_documents_every_setting() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for word in ("--dev", "HUBBUB_DEV", "HUBBUB_SECRET", "--config", "HUBBUB_CONFIG", "TOML"):
        assert word in result.stdout


def test_token_command_mints_a_verifiable_token() -> None:
    result = run_cli("token", "alice", "--secret", SECRET, "--ttl", "60", "--channel", "priv:x")
    assert result.returncode == 0, result.stderr
    identity = Authenticator(secret=SECRET).verify(result.stdout.strip())
    assert identity.user == "alice"
    assert identity.channels == frozenset({"priv:x"})
    assert run_cli("token", "alice").returncode == 2  # no secret anywhere
