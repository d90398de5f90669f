"""The chat page on a phone-sized screen (390 x 844 CSS pixels) in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import HubProcess

pytestmark = pytest.mark.peer

PHONE = {"width": 390, "height": 844}

# Every visible element whose box reaches past the viewport's right edge (or
# starts left of 0), and every element whose content is wider than its box
# without a scroll bar of its own: what makes a phone user scroll sideways.
_OVERFLOWS = """(width) => {
  const out = [];
  for (const el of document.querySelectorAll("body *")) {
    const style = getComputedStyle(el);
    if (style.display === "none" || el.closest(".visually-hidden")) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "");
    if (box.right > width + 0.5 || box.left < -0.5) {
      out.push(`${name} spans ${box.left.toFixed(0)}..${box.right.toFixed(0)}`);
    }
    const scrolls = ["auto", "scroll"].includes(style.overflowX);
    if (!scrolls && style.overflowX !== "hidden" && el.scrollWidth > el.clientWidth + 1
        && el.clientWidth > 0) {
      out.push(`${name} content ${el.scrollWidth} wider than ${el.clientWidth}`);
    }
  }
  return out;
}"""


def _check_fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide"
    assert page.evaluate(_OVERFLOWS, PHONE["width"]) == []


def test_chat_page_fits_a_390_px_screen(browser: Any, dev_hub: HubProcess, tmp_path: Path) -> None:
    page = browser.new_page()
    page.set_viewport_size(PHONE)
    page.goto(dev_hub.url)
    page.wait_for_selector("#signin-form")
    _check_fits(page)  # the sign-in form
    page.fill("#name", "a-rather-long-user-name-for-a-phone")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#state[data-state=live]")
    # A long word and a long line must wrap, not widen the page.
    page.fill("#text", "https://example.com/" + "a-long-unbroken-path-segment-" * 6)
    page.click("#compose button[type=submit]")
    page.wait_for_selector("#messages li.channel:has-text('example.com')")
    page.fill("#text", "A sentence long enough to wrap over several lines on a phone. " * 3)
    page.click("#compose button[type=submit]")
    page.wait_for_selector("#messages li.channel:has-text('several lines')")
    screenshot = tmp_path / "chat-390.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0
    _check_fits(page)
