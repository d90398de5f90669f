"""hubbub.js in Chromium: recovery across dropped connections, exactly once and in order."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_helpers import HubProcess

pytestmark = pytest.mark.peer

# Runs in the page (same origin as the hub, under its Content-Security-Policy).
# The subscriber's socket is closed every 40 entries while a second client keeps
# publishing to a channel and sending to the subscriber's inbox.
SCRIPT = """
async ({ total }) => {
  const { HubClient, HubError } = await import("/hubbub.js");
  const sub = new HubClient("/", { name: "js-sub", initialDelay: 20, maxDelay: 100 });
  const pub = new HubClient("/", { name: "js-pub" });
  const got = [], direct = [], states = [];
  sub.addEventListener("pub", (e) => got.push([e.detail.offset, e.detail.data]));
  sub.addEventListener("message", (e) => direct.push([e.detail.offset, e.detail.data]));
  sub.addEventListener("state", (e) => states.push(e.detail.state));
  await sub.start();
  await pub.start();
  await sub.subscribe("chat:feed");
  await pub.subscribe("chat:feed");  // the namespace lets members publish
  let cuts = 0;
  for (let i = 0; i < total; i++) {
    await pub.publish("chat:feed", i);
    await pub.send(["js-sub"], i);
    if (i % 40 === 20 && sub.ws) {
      sub.ws.close();
      cuts += 1;
    }
    // Two requests per 30 ms stays within the hub's default rate (50/s, burst 100).
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  const deadline = Date.now() + 15000;
  while ((got.length < total || direct.length < total) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  let code = null;
  try {
    await sub.subscribe("nope:x");
  } catch (err) {
    code = err instanceof HubError ? err.code : String(err);
  }
  await new Promise((resolve) => setTimeout(resolve, 200));  // let the last ack go out
  const backlog = await pub.call("online", { users: ["js-sub"] });
  sub.close();
  pub.close();
  return { got, direct, states, cuts, code, online: backlog.online["js-sub"] };
}
"""


def test_js_client_recovers_without_gaps_or_duplicates(browser: Any, dev_hub: HubProcess) -> None:
    page = browser.new_page()
    page.goto(dev_hub.url)
    total = 150
    result = page.evaluate(SCRIPT, {"total": total})
    assert result["cuts"] == 4
    assert [data for _, data in result["got"]] == list(range(total))
    assert [data for _, data in result["direct"]] == list(range(total))
    for key in ("got", "direct"):
        offsets = [offset for offset, _ in result[key]]
        assert offsets == sorted(set(offsets)), key  # increasing: no duplicate, no reorder
    states = result["states"]
    assert states[:2] == ["connecting", "live"]
    assert states.count("reconnecting") >= result["cuts"]
    assert states[-1] == "closed"
    assert result["code"] == 107  # errors come back as HubError with the wire code
    assert result["online"] is True


ACK_SCRIPT = """
async () => {
  const { HubClient } = await import("/hubbub.js");
  const sender = new HubClient("/", { name: "acker-sender" });
  await sender.start();
  for (let i = 0; i < 3; i++) await sender.send(["acker"], i);
  const first = new HubClient("/", { name: "acker" });
  const seen = [];
  first.addEventListener("message", (e) => seen.push(e.detail.data));
  const before = await first.start();
  await new Promise((resolve) => setTimeout(resolve, 300));  // the batched ack goes out
  first.close();
  const second = new HubClient("/", { name: "acker" });
  const after = await second.start();
  second.close();
  sender.close();
  return { backlog: before.inbox.messages.length, seen, acked: after.inbox.acked,
           again: after.inbox.messages.length };
}
"""


def test_js_client_acknowledges_the_inbox(browser: Any, dev_hub: HubProcess) -> None:
    page = browser.new_page()
    page.goto(dev_hub.url)
    result = page.evaluate(ACK_SCRIPT)
    assert result["backlog"] == 3  # queued while offline, delivered by connect
    assert result["seen"] == [0, 1, 2]
    assert result["acked"] == 3  # acknowledged once the listeners ran
    assert result["again"] == 0  # so nothing comes again


EPOCH_SCRIPT = """
async () => {
  const { HubClient, INBOX } = await import("/hubbub.js");
  // A client that knew an inbox epoch the hub no longer has (its broker lost
  // the inbox, and with it the stored ack the hub could have compared).
  const hub = new HubClient("/", { name: "epoch-user" });
  hub.inbox = { epoch: "an-epoch-the-hub-lost", offset: 5 };
  const recovery = [];
  hub.addEventListener("recovery", (e) => recovery.push([e.detail.stream, e.detail.reason]));
  const result = await hub.start();
  hub.close();
  return { recovered: result.inbox.recovered, reason: result.inbox.reason ?? null, recovery,
           epoch: hub.inbox.epoch };
}
"""


def test_js_client_tells_the_hub_its_inbox_epoch(browser: Any, dev_hub: HubProcess) -> None:
    page = browser.new_page()
    page.goto(dev_hub.url)
    result = page.evaluate(EPOCH_SCRIPT)
    # The hub learns of the loss from the epoch the client sends (issue 18, finding 1).
    assert (result["recovered"], result["reason"]) == (False, "epoch")
    assert result["recovery"] == [["$inbox", "epoch"]]  # told once
    assert result["epoch"] != "an-epoch-the-hub-lost"


CLOSE_ACK_SCRIPT = """
async () => {
  const { HubClient } = await import("/hubbub.js");
  const sender = new HubClient("/", { name: "closer-sender" });
  await sender.start();
  for (let i = 0; i < 2; i++) await sender.send(["closer"], i);
  sender.close();
  const first = new HubClient("/", { name: "closer", autoAck: false });
  const before = await first.start();
  first.ack(before.inbox.messages[1].offset);
  first.close();  // at once: the batched ack must not be lost
  await new Promise((resolve) => setTimeout(resolve, 200));
  const second = new HubClient("/", { name: "closer" });
  const after = await second.start();
  second.close();
  return { acked: after.inbox.acked, again: after.inbox.messages.length };
}
"""


def test_js_client_close_sends_the_pending_ack(browser: Any, dev_hub: HubProcess) -> None:
    page = browser.new_page()
    page.goto(dev_hub.url)
    result = page.evaluate(CLOSE_ACK_SCRIPT)
    assert result == {"acked": 2, "again": 0}


REFUSED_SCRIPT = """
async () => {
  const { HubClient, HubError } = await import("/hubbub.js");
  let calls = 0;
  const hub = new HubClient("/", { token: () => { calls += 1; return "not-a-jwt"; },
                                   initialDelay: 10, maxDelay: 20 });
  const states = [];
  hub.addEventListener("state", (e) => states.push(e.detail.state));
  let code = null;
  try {
    await hub.start();
  } catch (err) {
    code = err instanceof HubError ? err.code : String(err);
  }
  return { calls, code, last: states[states.length - 1] };
}
"""


def test_js_client_gives_up_on_a_token_function_refused_again(
    browser: Any, dev_hub: HubProcess
) -> None:
    page = browser.new_page()
    page.goto(dev_hub.url)
    result = page.evaluate(REFUSED_SCRIPT)
    assert result == {"calls": 3, "code": 200, "last": "closed"}
