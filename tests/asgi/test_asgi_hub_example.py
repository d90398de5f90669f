"""examples/asgi_hub.py as users run it: FastAPI with the hub at /hub, in a subprocess.

The chat page at /hub/ in headless Chromium (Debian's, driven by Playwright): two
users sign in (development mode), chat, and see what a FastAPI handler publishes
through the in-process Python API.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from asgi_helpers import chromium, example


@pytest.fixture(scope="module")
def hub_base() -> Iterator[str]:
    with example("asgi_hub.py") as (port, log):
        yield f"http://127.0.0.1:{port}"
    assert "INSECURE development mode" in log[0]  # clearly marked, as `hubbub serve --dev`


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
def test_chat_page_at_hub(hub_base: str) -> None:
    with chromium() as browser:
        context = browser.new_context()
        context.set_default_timeout(10_000)
        alice = sign_in(context, hub_base + "/hub/", "alice")
        bob = sign_in(context, hub_base + "/hub/", "bob")
        alice.wait_for_selector("#online li[data-user=bob]")
        alice.fill("#text", "hello from alice")
        alice.click("#compose button[type=submit]")
        bob.wait_for_selector("#messages li.channel:has-text('hello from alice')")
        request = urllib.request.Request(hub_base + "/announce?text=from+fastapi", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        for page in (alice, bob):
            page.wait_for_selector("#messages li.channel:has-text('from fastapi')")
