"""The pages of examples/ in Debian's Chromium: their JavaScript works against their servers.

tests/examples drives the same programs with hubbub clients; here a real browser loads
each page from the program (started as ``python examples/NAME.py --port 0``) and what the
page shows is checked.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.peer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextmanager
def example(name: str, *args: str) -> Iterator[str]:
    """Run ``examples/NAME.py --port 0``; yield its URL; stop it with SIGTERM."""
    with subprocess.Popen(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:  # closes the pipe when done
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            found = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+/)\n", line)
            assert found is not None, f"{name}.py printed {line!r}"
            yield found.group(1)
        finally:
            process.terminate()
            process.wait(30)


def test_clock_page_shows_the_time(browser: Any) -> None:
    with example("clock") as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function(
            "document.getElementById('time').textContent.match(/\\d+:\\d+:\\d+/)"
        )


def test_chat_pages_talk_by_id(browser: Any) -> None:
    with example("chat") as url:
        alice, bob = browser.new_page(), browser.new_page()
        alice.goto(url)
        bob.goto(url)
        bob.wait_for_function("document.getElementById('me').textContent.match(/^\\d+$/)")
        bob_id = bob.text_content("#me")
        alice.wait_for_function(
            f"document.getElementById('peers').textContent.includes('{bob_id}')"
        )
        alice.fill("#to", bob_id)
        alice.fill("#text", "hello from alice")
        alice.click("button")
        bob.wait_for_function(
            "document.getElementById('log').textContent.includes('-> you: hello from alice')"
        )


def test_collab_pages_share_the_text(browser: Any) -> None:
    with example("collab") as url:
        first, second = browser.new_page(), browser.new_page()
        first.goto(url)
        second.goto(url)
        first.wait_for_selector("#text:not([disabled])")
        second.wait_for_selector("#text:not([disabled])")
        first.type("#text", "typed in the first page")
        second.wait_for_function(
            "document.getElementById('text').value === 'typed in the first page'"
        )


@pytest.mark.parametrize(
    ("name", "args", "marker"),
    [
        ("ticker", ("--interval", "0.05"), "HUBB"),
        ("dashboard", ("--interval", "0.2"), "connections"),
    ],
)
def test_table_pages_fill_in(browser: Any, name: str, args: tuple[str, ...], marker: str) -> None:
    with example(name, *args) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function(f"document.querySelector('table').textContent.includes('{marker}')")
