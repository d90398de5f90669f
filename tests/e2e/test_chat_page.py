"""The chat page in headless Chromium against ``hubbub serve`` (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from e2e_helpers import SECRET, HubProcess, shoot

pytestmark = pytest.mark.peer


def sign_in(context: Any, hub: HubProcess, name: str) -> Any:
    page = context.new_page()
    page.goto(hub.url)
    page.fill("#name", name)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#state[data-state=live]")
    page.wait_for_selector(f"#online li[data-user={name}]")
    return page


def say(page: Any, to: str, text: str) -> None:
    page.select_option("#to", to)
    page.fill("#text", text)
    page.click("#compose button[type=submit]")


def messages(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#messages li").all_inner_texts()]


def test_two_users_chat_directly_and_in_the_channel(browser: Any, dev_hub: HubProcess) -> None:
    alice = sign_in(browser, dev_hub, "alice")
    bob = sign_in(browser, dev_hub, "bob")
    # Presence: each sees both (alice learns of bob by a join push).
    for page in (alice, bob):
        page.wait_for_selector("#online li[data-user=alice]")
        page.wait_for_selector("#online li[data-user=bob]")
        assert page.inner_text("#online-count") == "(2)"
        assert page.inner_text("#state") == "live"
    say(alice, "#lobby", "hello everyone")
    bob.wait_for_selector("#messages li.channel:has-text('hello everyone')")
    assert "alice" in bob.inner_text("#messages li.channel")
    # A direct message: bob picks alice in the online list.
    bob.click("#online li[data-user=alice] button")
    assert bob.input_value("#to") == "alice"
    bob.fill("#text", "just for you")
    bob.click("#compose button[type=submit]")
    alice.wait_for_selector("#messages li.direct:has-text('just for you')")
    assert "bob → alice" in alice.inner_text("#messages li.direct")
    bob.wait_for_selector("#messages li.direct:has-text('just for you')")  # bob's own copy
    assert bob.inner_text("#compose-status") == "Delivered to alice."
    # Nobody else got the direct message: carol joins later and sees only the channel.
    carol = sign_in(browser, dev_hub, "carol")
    carol.wait_for_selector("#messages li.channel:has-text('hello everyone')")
    assert carol.locator("#messages li.direct").count() == 0
    alice.wait_for_selector("#online li[data-user=carol]")
    # An offline user's message is queued.
    say(alice, "#lobby", "bye")
    carol.close()
    alice.wait_for_selector("#online li[data-user=carol]", state="detached")
    say(alice, "carol", "read this later")
    alice.wait_for_selector("#compose-status:has-text('carol is offline: queued for later.')")
    shoot(alice, "chat-alice")
    shoot(bob, "chat-bob")


def test_reload_restores_history(browser: Any, dev_hub: HubProcess) -> None:
    ann = sign_in(browser, dev_hub, "ann")
    ben = sign_in(browser, dev_hub, "ben")
    say(ann, "#lobby", "first in channel")
    ann.wait_for_selector("#online li[data-user=ben]")
    say(ann, "ben", "first direct")
    ben.wait_for_selector("#messages li.direct:has-text('first direct')")
    before = messages(ben)
    ben.reload()
    ben.wait_for_selector("#state[data-state=live]")
    ben.wait_for_selector("#messages li.direct:has-text('first direct')")
    ben.wait_for_selector("#messages li.channel:has-text('first in channel')")
    assert messages(ben) == before  # same entries, same order, no duplicates
    assert ben.inner_text("#me") == "ben"  # signed in again without the form
    # The sender's own direct messages come back too (the copy in its inbox).
    ann.reload()
    ann.wait_for_selector("#messages li.direct:has-text('first direct')")
    assert "ann → ben" in ann.inner_text("#messages li.direct")
    shoot(ben, "reload-ben")


def test_server_clock_ticks(browser: Any, dev_hub: HubProcess) -> None:
    page = sign_in(browser, dev_hub, "timekeeper")
    # Functions, not expression strings: the page's CSP forbids eval().
    page.wait_for_function("() => document.getElementById('clock').dataset.time !== ''")
    first = int(page.get_attribute("#clock", "data-time") or 0)
    page.wait_for_function(
        "(t) => Number(document.getElementById('clock').dataset.time) >= t",
        arg=first + 2000,
        timeout=5000,
    )
    second = int(page.get_attribute("#clock", "data-time") or 0)
    assert second - first >= 2000
    assert page.inner_text("#clock").endswith("UTC")
    assert page.inner_text("#clock") != "--:--:--"


def test_restart_shows_reconnecting_then_live(browser: Any, dev_hub: HubProcess) -> None:
    page = sign_in(browser, dev_hub, "rita")
    say(page, "#lobby", "before the restart")
    page.wait_for_selector("#messages li.channel:has-text('before the restart')")
    dev_hub.stop()
    page.wait_for_selector("#state[data-state=reconnecting]")
    assert page.inner_text("#state").startswith("reconnecting")
    shoot(page, "restart-reconnecting")
    dev_hub.start()
    page.wait_for_selector("#state[data-state=live]", timeout=20_000)
    assert page.inner_text("#state") == "live"
    # The in-memory hub lost its history, and the page says so instead of hiding it.
    page.wait_for_selector("#messages li.notice:has-text('could not be recovered')")
    say(page, "#lobby", "after the restart")
    page.wait_for_selector("#messages li.channel:has-text('after the restart')")
    page.wait_for_selector("#online li[data-user=rita]")
    shoot(page, "restart-live")


def test_name_sign_in_needs_dev_mode_and_tokens_work(browser: Any, secure_hub: HubProcess) -> None:
    page = browser.new_page()
    page.goto(secure_hub.url)
    page.fill("#name", "intruder")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('Sign-in refused')")
    assert page.is_visible("#signin")
    assert page.get_attribute("#state", "data-state") == "closed"
    shoot(page, "sign-in-refused")
    token = subprocess.run(
        [sys.executable, "-m", "hubbub", "token", "tess", "--secret", SECRET],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    page.reload()
    page.click("summary")
    page.fill("#token", token)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#state[data-state=live]")
    assert page.inner_text("#me") == "tess"
    shoot(page, "token-sign-in")
