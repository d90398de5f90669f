"""examples/asgi_hub.py as users run it: FastAPI with the hub at /hub, in a subprocess.

The chat page at /hub/ in headless Chromium (Debian's, driven by Playwright): two
users sign in (development mode), chat, and see what a FastAPI handler publishes
through the in-process Python API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client_peers import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HUBBUB_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def hub_base() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "asgi_hub.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_port(port, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    log = stderr.decode(errors="replace")
    assert "INSECURE development mode" in log  # clearly marked, as `hubbub serve --dev`
    assert "Traceback" not in log, log[-3000:]


def test_healthz_under_the_mount(hub_base: str) -> None:
    with urllib.request.urlopen(hub_base + "/hub/healthz", timeout=10) as answer:
        assert answer.status == 200
        assert b'"ok": true' in answer.read()


def sign_in(context: Any, url: str, name: str) -> Any:
    page = context.new_page()
    page.goto(url)
    page.fill("#name", name)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#state[data-state=live]")
    page.wait_for_selector(f"#online li[data-user={name}]")
    return page


@pytest.mark.peer
def test_chat_page_at_hub(hub_base: str, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            context = browser.new_context()
            context.set_default_timeout(10_000)
            alice = sign_in(context, hub_base + "/hub/", "alice")
            bob = sign_in(context, hub_base + "/hub/", "bob")
            alice.wait_for_selector("#online li[data-user=bob]")
            alice.fill("#text", "hello from alice")
            alice.click("#compose button[type=submit]")
            bob.wait_for_selector("#messages li.channel:has-text('hello from alice')")
            request = urllib.request.Request(
                hub_base + "/announce?text=from+fastapi", method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            for page in (alice, bob):
                page.wait_for_selector("#messages li.channel:has-text('from fastapi')")
        finally:
            browser.close()
