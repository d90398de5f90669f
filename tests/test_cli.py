"""The ``hubbub`` command, run as a real subprocess against real servers.

``hubbub echo`` runs as a subprocess; ``hubbub connect`` runs as a subprocess
with piped stdin, against that echo server or against an in-process server
that reports what it received (headers, subprotocol).
"""

from __future__ import annotations

import asyncio
import contextlib
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


# --- TLS, versions, logging, secrets, bench (issue 15) -------------------------------------


def run_hubbub(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUBBUB, *args], check=False, capture_output=True, text=True, timeout=timeout, env=ENV
    )


def _tls_files(directory: Path) -> tuple[str, str]:
    """A self-signed certificate for localhost/127.0.0.1 (its own CA) and its key."""
    sys.path.insert(0, str(Path(__file__).parent / "asyncio"))
    from asyncio_helpers import make_tls_contexts

    make_tls_contexts(directory)
    return str(directory / "cert.pem"), str(directory / "key.pem")


@contextlib.contextmanager
def _running(*args: str, pattern: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run ``hubbub ARGS``; yield the group ``pattern`` finds on stderr, and the process."""
    proc = subprocess.Popen([*HUBBUB, *args], stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stderr is not None
    with proc:
        try:
            seen = ""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                seen += line
                match = re.search(pattern, line)
                if match:
                    yield match.group(1), proc
                    break
            else:
                raise AssertionError(f"hubbub {args[0]} did not start: {seen}")
            if not match:
                raise AssertionError(f"hubbub {args[0]} did not start: {seen}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            finally:
                if proc.poll() is None:
                    proc.kill()


def test_echo_serves_tls_and_connect_trusts_a_cafile(tmp_path: Path) -> None:
    cert, key = _tls_files(tmp_path)
    with _running(
        "echo", "--port", "0", "--certfile", cert, "--keyfile", key, pattern=r"on (wss://\S+)"
    ) as (address, _):
        port = address.rsplit(":", 1)[1]
        url = f"wss://localhost:{port}/"
        result = run_connect(url, "--cafile", cert, "--wait", "2", stdin="over TLS\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "over TLS\n"
        # The same certificate is not trusted without --cafile: a clear error.
        refused = run_connect(url, stdin="x\n")
        assert refused.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_echo_refuses_a_bad_certificate_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    result = run_hubbub("echo", "--port", "0", "--certfile", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith("hubbub: ")
    assert "Traceback" not in result.stderr


def test_serve_over_tls_with_a_metrics_token(tmp_path: Path) -> None:
    import json
    import ssl
    import urllib.error
    import urllib.request

    cert, key = _tls_files(tmp_path)
    token = "metrics-token-for-the-test"
    with _running(
        "serve", "--dev", "--port", "0", "--certfile", cert, "--keyfile", key,
        "--metrics-token", token, pattern=r"chat page (https://\S+)/,",
    ) as (address, _):  # fmt: skip
        context = ssl.create_default_context(cafile=cert)
        base = address.replace("127.0.0.1", "localhost")
        with urllib.request.urlopen(f"{base}/healthz", context=context, timeout=5) as response:
            health = json.load(response)
        assert health["versions"]["accelerator"] in ("C", *_PURE)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/metrics", context=context, timeout=5)
        info.value.close()  # a client that hangs on would delay the hub's shutdown
        assert info.value.code == 401
        assert info.value.headers["WWW-Authenticate"].startswith("Bearer")
        request = urllib.request.Request(
            f"{base}/metrics", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            assert b"hubbub_connections " in response.read()
        wrong = urllib.request.Request(f"{base}/metrics", headers={"Authorization": "Bearer x"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(wrong, context=context, timeout=5)
        info.value.close()
        assert info.value.code == 401


_PURE = (
    "pure Python (HUBBUB_NO_EXTENSIONS is set)",
    "pure Python (the C extension is not built)",
)


def test_version_names_the_accelerator() -> None:
    from hubbub import speedups

    result = run_hubbub("--version")
    assert result.returncode == 0
    expected = "accelerator: C" if speedups.ACCELERATED else "accelerator: pure Python"
    assert expected in result.stdout
    assert "Python 3." in result.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_before_or_after_the_subcommand_logs_start_up_and_connections(
    where: str, echo_url: str
) -> None:
    flags = ["-v"]
    args = [*flags, "echo"] if where == "before" else ["echo", *flags]
    with _running(*args, "--port", "0", pattern=r"listening on (ws://\S+)") as (url, proc):
        result = run_connect(url, "--wait", "1", stdin="hi\n")
        assert result.returncode == 0, result.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        rest = proc.stderr.read()
    assert re.search(r"hubbub\.server INFO connection \S+ open: remote 127\.0\.0\.1:\d+, /", rest)
    assert "received 1000" in rest


def test_start_up_line_names_accelerator_and_event_loop() -> None:
    proc = subprocess.Popen(
        [*HUBBUB, "echo", "-v", "--port", "0"], stderr=subprocess.PIPE, text=True, env=ENV
    )
    assert proc.stderr is not None
    with proc:
        try:
            first = proc.stderr.readline()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    assert "hubbub.server INFO hubbub " in first
    assert "accelerator: " in first
    assert re.search(r"event loop (asyncio|uvloop)", first)


@pytest.mark.parametrize("secret", ["short", "x" * 31])
def test_serve_refuses_a_short_secret(secret: str) -> None:
    result = run_hubbub("serve", "--port", "0", "--secret", secret)
    assert result.returncode == 2
    assert f"secret is {len(secret)} bytes long; use 32 or more" in result.stderr
    assert "Traceback" not in result.stderr


def test_connect_prompt_is_redrawn_under_a_reply(echo_url: str) -> None:
    """On a terminal a reply gets its own line and the prompt comes back below it."""
    import pty
    import select

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*HUBBUB, "connect", echo_url, "--no-compression"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**ENV, "TERM": "dumb"},
        close_fds=True,
    )
    os.close(follower)
    seen = b""

    def read_until(needle: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 10
        while needle not in seen:
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                seen += os.read(leader, 4096)

    try:
        read_until(b"> ")
        os.write(leader, b"hello\n")
        read_until(b"< hello")
        read_until(b"< hello\r\n> ")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        os.close(leader)
    # Before: the reply was written after the redrawn prompt ("> < hello").
    assert b"> < hello" not in seen
    assert b"\r\x1b[K< hello\r\n> " in seen


def test_bench_with_every_server_missing_fails_clearly() -> None:
    listing = run_hubbub("bench", "--list", timeout=120)
    assert listing.returncode == 0, listing.stderr
    missing = re.findall(r"^server (\S+)\s+unavailable", listing.stdout, re.MULTILINE)
    if not missing:
        pytest.skip("every benchmark peer is installed here")
    result = run_hubbub(
        "bench", "--servers", ",".join(missing), "--reps", "1", "--scenarios", "rr1", timeout=120
    )
    assert result.returncode == 1
    assert "nothing to measure" in result.stderr


def test_an_installed_package_does_not_offer_bench(tmp_path: Path) -> None:
    """Without the source tree's benchmarks/ (as from a wheel), 'bench' is not listed."""
    import shutil

    import hubbub

    shutil.copytree(Path(hubbub.__file__).parent, tmp_path / "hubbub")
    env = {**ENV, "PYTHONPATH": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hubbub", *args]
        return subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path
        )

    shown = run("--help")
    assert shown.returncode == 0
    assert "echo" in shown.stdout
    assert "bench" not in shown.stdout
    result = run("bench")
    assert result.returncode == 2
    assert "runs from a source checkout only" in result.stderr
