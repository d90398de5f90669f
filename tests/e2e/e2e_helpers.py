"""Helpers for the browser tests: ``hubbub serve`` in a subprocess, screenshots."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

SECRET = "e2e-secret-that-is-at-least-32-bytes-long"
CHROMIUM = os.environ.get("HUBBUB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A free port below the ephemeral range (32768 and up on Linux).

    The hub is restarted on the same port; a port the kernel hands out to
    outgoing connections could be taken by another test's client meanwhile.
    """
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


class HubProcess:
    """``python -m hubbub serve`` on a fixed port, which the tests may stop and start."""

    def __init__(self, log_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.args = args
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"hub-{self.starts}.log").open("wb")
        command = [sys.executable, "-m", "hubbub", "serve", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30  # generous: the machine may be busy
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = (self.log_dir / f"hub-{self.starts}.log").read_text()
                raise RuntimeError(f"hubbub serve exited with {self.proc.returncode}: {output}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "healthz", timeout=1) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError("hubbub serve did not come up")

    def stop(self) -> None:
        """SIGTERM: the hub tells its clients (4000, reconnect) and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def shoot(page: Any, name: str) -> Path:
    """Save a screenshot of ``page`` as ``artifacts/e2e/<name>.png``."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
