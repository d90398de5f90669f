"""Smoke test of an installed hubbub, run by scripts/package_check.sh inside a fresh venv.

    python package_smoke.py core    the library without extras: import, accelerator, echo
                                    round trips, and the one-line message of a missing extra
    python package_smoke.py hub     after ``pip install 'hubbub[hub]'``: ``hubbub serve``
                                    serves its chat page and /healthz

It must test the installed package, never the source tree: it checks where ``hubbub``
was imported from. It uses only hubbub and the standard library.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import hubbub

TIMEOUT = 30.0


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"package smoke test FAILED: {what}")
    print(f"ok: {what}")


def installed_here() -> None:
    location = Path(hubbub.__file__).resolve()
    check(Path(sys.prefix).resolve() in location.parents, f"hubbub imported from {location}")


async def asyncio_echo() -> str | bytes:
    from hubbub.asyncio import ServerConnection, connect, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with (
        serve(echo, "127.0.0.1", 0) as server,
        connect(f"ws://127.0.0.1:{server.port}/") as ws,
    ):
        await ws.send("x" * 100_000)  # large enough for the accelerator's large-frame path
        return await asyncio.wait_for(ws.recv(), TIMEOUT)


def sync_echo() -> str | bytes:
    from hubbub.sync import connect, serve
    from hubbub.sync.server import ServerConnection

    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            ws.send(b"\x00binary")
            answer = ws.recv(timeout=TIMEOUT)
        server.shutdown()
    return answer


def command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("hubbub")), *args]


def core() -> None:
    installed_here()
    import hubbub.speedups

    check(hubbub.speedups.ACCELERATED, "the C accelerator is present and in use")
    check(asyncio.run(asyncio_echo()) == "x" * 100_000, "asyncio echo round trip")
    check(sync_echo() == b"\x00binary", "sync echo round trip")
    missing = [m for m in ("jwt", "prometheus_client", "redis") if m in sys.modules]
    check(missing == [], "no hub dependency was imported")
    result = subprocess.run(
        command("serve", "--dev", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    expected = "hubbub serve needs the hub extra: pip install 'hubbub[hub]'"
    check(
        result.returncode == 1 and result.stderr.strip() == expected,
        f"'hubbub serve' without the extra says: {result.stderr.strip()!r}",
    )


def fetch(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def hub() -> None:
    installed_here()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    process = subprocess.Popen(
        command("serve", "--dev", "--port", "0"),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        # Log lines (the development mode warning) may come first, then
        # "hubbub hub: chat page http://127.0.0.1:PORT/, ...".
        found = None
        for _ in range(20):
            line = process.stderr.readline()
            found = re.search(r"chat page http://127\.0\.0\.1:(\d+)/", line)
            if found is not None or not line:
                break
        check(found is not None, f"'hubbub serve --dev' started: {line.strip()!r}")
        assert found is not None
        port = int(found.group(1))
        status, body = fetch(port, "/")
        check(status == 200 and b"<title>hubbub chat</title>" in body, "the chat page is served")
        status, body = fetch(port, "/hubbub.js")
        check(status == 200 and b"export class HubClient" in body, "the browser client is served")
        status, _ = fetch(port, "/healthz")
        check(status == 200, "/healthz answers 200")
    finally:
        process.terminate()
        process.wait(TIMEOUT)


if __name__ == "__main__":
    {"core": core, "hub": hub}[sys.argv[1]]()
