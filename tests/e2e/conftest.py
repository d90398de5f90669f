"""Fixtures for the browser tests: ``hubbub serve`` in a subprocess, Debian's Chromium.

Chromium is Debian's package (``/usr/bin/chromium``, ``apt-get install chromium``)
driven by Playwright through ``executable_path``: Playwright's own browser
download is never used. A missing browser or Playwright makes the tests skip,
which fails the run in CI (``HUBBUB_REQUIRE_PEERS=1``; the tests are ``peer``).
Screenshots land in ``artifacts/e2e/`` (ignored by git).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, SECRET, HubProcess


def _make_hub(tmp_path: Path, *args: str) -> Iterator[HubProcess]:
    hub = HubProcess(tmp_path, *args)
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def dev_hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub in the (insecure) development mode the chat page's name sign-in needs."""
    yield from _make_hub(tmp_path, "--dev")


@pytest.fixture
def secure_hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub that accepts tokens only."""
    yield from _make_hub(tmp_path, "--secret", SECRET)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A Chromium context with a fresh profile (pages share it; sessionStorage is per page)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1100, "height": 640},
        )
        context.set_default_timeout(10_000)
        errors: list[str] = []
        context.on("weberror", lambda error: errors.append(str(error.error)))
        try:
            yield context
        finally:
            context.close()
        assert errors == [], f"uncaught errors in the page: {errors}"
