"""The ``hubbub`` command, run as a real subprocess against real servers.

``hubbub echo`` runs as a subprocess; ``hubbub connect`` runs as a subprocess
with piped stdin, against that echo server or against an in-process server
that reports what it received (headers, subprotocol).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubbub.asyncio import ServerConnection, serve

HUBBUB = [sys.executable, "-m", "hubbub"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_connect(
    *args: str, stdin: str = "", timeout: float = 15
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUBBUB, "connect", *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """A ``hubbub echo`` subprocess on a free port; yields its ws:// URL."""
    proc = subprocess.Popen(
        [*HUBBUB, "echo", "--port", "0", "--subprotocol", "chat", "--ping-interval", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stderr is not None
    with proc:
        line = proc.stderr.readline()  # the first line says where it listens
        match = re.search(r"listening on (ws://\S+)", line)
        if not match:
            proc.kill()
            raise AssertionError(f"hubbub echo did not start: {line}{proc.stderr.read()}")
        try:
            yield match.group(1)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(timeout=10) == 0, "hubbub echo must exit 0 on SIGTERM"
            finally:
                if proc.poll() is None:
                    proc.kill()


def test_connect_prints_echoes_and_close_code(echo_url: str) -> None:
    result = run_connect(echo_url, "--wait", "1", stdin="hello\nwörld\n\n")
    assert result.returncode == 0, result.stderr
    # Piped stdin: no prompts, one received message per line.
    assert result.stdout == "hello\nwörld\n\n"
    assert f"connected to {echo_url}" in result.stderr
    assert "disconnected: 1000" in result.stderr


def test_connect_binary_lines(echo_url: str) -> None:
    result = run_connect(echo_url, "--binary", "--wait", "1", stdin="AB\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "<binary 2 bytes: 41 42>\n"


def test_connect_offers_a_subprotocol_the_echo_server_accepts(echo_url: str) -> None:
    result = run_connect(echo_url, "--subprotocol", "chat", "--wait", "0.1")
    assert result.returncode == 0, result.stderr
    assert "(subprotocol: chat)" in result.stderr
    result = run_connect(echo_url, "--subprotocol", "other", "--wait", "0.1")
    assert result.returncode == 0, result.stderr
    assert "subprotocol" not in result.stderr


def test_console_script_is_installed(echo_url: str) -> None:
    script = Path(sys.executable).with_name("hubbub")
    assert script.exists()
    result = subprocess.run(
        [str(script), "connect", echo_url, "--wait", "1"],
        check=False,
        input="via the script\n",
        capture_output=True,
        text=True,
        timeout=15,
        env=ENV,
    )
    assert (result.returncode, result.stdout) == (0, "via the script\n"), result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost/", "not a valid WebSocket URI"),
        ("ws://", "not a valid WebSocket URI"),
        ("localhost:8765", "not a valid WebSocket URI"),
    ],
)
def test_bad_url_is_a_clear_error(url: str, message: str) -> None:
    result = run_connect(url)
    assert result.returncode == 1
    assert result.stderr.startswith("hubbub: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_refused_connection_is_a_clear_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_connect(f"ws://127.0.0.1:{port}/")
    assert result.returncode == 1
    assert result.stderr.startswith("hubbub: ")
    assert "Traceback" not in result.stderr


def test_bad_header_argument_is_a_usage_error() -> None:
    result = run_connect("ws://localhost/", "--header", "no colon here")
    assert result.returncode == 2
    assert "NAME:VALUE" in result.stderr


def test_version() -> None:
    result = subprocess.run(
        [*HUBBUB, "--version"], check=False, capture_output=True, text=True, timeout=15
    )
    assert result.returncode == 0
    assert result.stdout.startswith("hubbub ")


# --- against an in-process server --------------------------------------------------------


async def _connect_subprocess(
    *args: str, stdin: bytes | None = b"", timeout: float = 10
) -> tuple[int, str, str]:
    """Run ``hubbub connect`` without blocking the loop that runs the server."""
    proc = await asyncio.create_subprocess_exec(
        *HUBBUB,
        "connect",
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    try:
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        # stdin=None: stdin stays open, like a user who types nothing.
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_headers_and_subprotocols_reach_the_server() -> None:
    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        headers = ws.request.headers
        await ws.send(f"x-one={headers.get('X-One')}")
        await ws.send(f"x-two={headers.get('X-Two')}")
        await ws.send(f"origin={headers.get('Origin')}")
        await ws.send(f"subprotocol={ws.subprotocol}")
        await ws.close(1001, "see you")

    async with serve(
        handler, "127.0.0.1", 0, subprotocols=["v2", "v1"], ping_interval=None
    ) as server:
        code, out, err = await _connect_subprocess(
            f"ws://127.0.0.1:{server.port}/",
            "--header",
            "X-One: first",
            "-H",
            "X-Two:second:with:colons",
            "--subprotocol",
            "v1",
            "-s",
            "v2",
            "--origin",
            "https://cli.example",
            "--wait",
            "5",
        )
    assert code == 0, err
    assert out.splitlines() == [
        "x-one=first",
        "x-two=second:with:colons",
        "origin=https://cli.example",
        "subprotocol=v2",
    ]
    assert "(subprotocol: v2)" in err
    assert "disconnected: 1001 see you" in err


async def test_server_close_ends_the_client_even_with_stdin_open() -> None:
    """The server closes first while stdin stays open: the client must not hang on stdin."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send("bye now")
        await ws.close(1000, "done")

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        start = time.monotonic()
        code, out, err = await _connect_subprocess(
            f"ws://127.0.0.1:{server.port}/", stdin=None, timeout=8
        )
    assert code == 0, err
    assert out == "bye now\n"
    assert "disconnected: 1000 done" in err
    assert time.monotonic() - start < 5


async def test_error_close_gives_exit_code_1() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        raise RuntimeError("server bug")

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        code, _, err = await _connect_subprocess(
            f"ws://127.0.0.1:{server.port}/", "--wait", "5", stdin=b"trigger\n"
        )
    assert code == 1
    assert "disconnected: 1011" in err


async def test_rejected_handshake_is_a_clear_error() -> None:
    async with serve(
        lambda ws: ws.close(), "127.0.0.1", 0, origins=["https://x.example"]
    ) as server:
        code, _, err = await _connect_subprocess(f"ws://127.0.0.1:{server.port}/")
    assert code == 1
    assert err.startswith("hubbub: ")
    assert "403" in err
    assert "Traceback" not in err


async def test_insecure_wss(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "asyncio"))
    from asyncio_helpers import make_tls_contexts

    server_ctx, _ = make_tls_contexts(tmp_path)

    async def handler(ws: ServerConnection) -> None:
        await ws.send("over TLS")
        await ws.close()

    async with serve(handler, "127.0.0.1", 0, ssl=server_ctx, ping_interval=None) as server:
        address = f"wss://localhost:{server.port}/"
        code, out, err = await _connect_subprocess(address, "--insecure", "--wait", "5")
        assert (code, out) == (0, "over TLS\n"), err
        # Without --insecure the self-signed certificate is refused, clearly.
        code, out, err = await _connect_subprocess(address)
    assert code == 1
    assert err.startswith("hubbub: ")
    assert "CERTIFICATE_VERIFY_FAILED" in err
    assert "Traceback" not in err


def test_serve_refuses_a_bad_broker_url() -> None:
    result = subprocess.run(
        [*HUBBUB, "serve", "--dev", "--port", "0", "--broker", "memcached://x"],
        check=False,
        capture_output=True,
        text=True,
        timeout=15,
        env=ENV,
    )
    assert result.returncode == 2
    assert "redis://" in result.stderr
    assert "Traceback" not in result.stderr
