// The chat page: sign in, who is online, channel and direct messages, history
// after a reload, the server clock, and the connection state as it really is.
// Everything goes through the hubbub.js client; the DOM is written with
// textContent only (no HTML from messages ever reaches the page).

import { HubClient, INBOX } from "./hubbub.js";

const $ = (id) => document.getElementById(id);
// "chat:lobby" lives in the namespace `hubbub serve` configures for long history;
// a hub without it falls back to "lobby" in the default namespace.
const CHANNELS = ["chat:lobby", "lobby"];
const STORAGE = "hubbub.chat.credentials";
const LOBBY = "#lobby";

let hub = null;
let me = null;
let channel = null;
const seen = new Set();
const members = new Map(); // conn_id -> user
const known = new Set(); // every user seen, online or not: direct messages can queue

// --- connection state and clock -------------------------------------------

function showState({ state, attempt, delay, error }) {
  const el = $("state");
  el.dataset.state = state;
  document.body.dataset.state = state; // dims what may be stale (chat.css)
  if (state === "connecting") el.textContent = "connecting…";
  else if (state === "live") el.textContent = "live";
  else if (state === "reconnecting") {
    const wait = delay ? ` in ${(delay / 1000).toFixed(1)} s` : "";
    el.textContent = `reconnecting (attempt ${attempt}${wait})`;
  } else if (state === "closed") el.textContent = error ? `closed: ${error.message}` : "closed";
  else el.textContent = "not connected";
}

function showClock(time) {
  const el = $("clock");
  el.dataset.time = String(time);
  const d = new Date(time);
  el.dateTime = d.toISOString();
  el.textContent = `${d.toISOString().slice(11, 19)} UTC`;
}

// --- messages ---------------------------------------------------------------

function timeLabel(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

function insertSorted(li, time) {
  li.dataset.time = String(time);
  const list = $("messages");
  let before = null;
  for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
    if (Number(node.dataset.time) <= time) break;
    before = node;
  }
  list.insertBefore(li, before);
  if (!before) list.scrollTop = list.scrollHeight;
}

function text(data) {
  if (data && typeof data === "object" && typeof data.text === "string") return data.text;
  return JSON.stringify(data);
}

function addChannelEntry(entry) {
  const key = `c:${entry.epoch}:${entry.offset}`;
  if (seen.has(key)) return;
  seen.add(key);
  const li = document.createElement("li");
  li.className = "channel";
  li.append(span("meta", timeLabel(entry.time)), span("tag", LOBBY));
  li.append(span("who", entry.from ?? "server"), span("body", text(entry.data)));
  insertSorted(li, entry.time);
  learn(entry.from);
}

// Inbox entries redelivered at connect time arrive before the connect reply
// tells who we are: they wait here until then.
const earlyDirect = [];

function addDirect(entry) {
  if (me === null) {
    earlyDirect.push(entry);
    return;
  }
  const key = `i:${entry.epoch}:${entry.offset}`;
  if (seen.has(key)) return;
  seen.add(key);
  const li = document.createElement("li");
  li.className = "direct";
  const to = entry.data && typeof entry.data === "object" ? entry.data.to : undefined;
  const route = entry.from === me ? `${me} → ${to ?? "?"}` : `${entry.from ?? "server"} → ${me}`;
  li.append(span("meta", timeLabel(entry.time)), span("tag", "direct"));
  li.append(span("who", route), span("body", text(entry.data)));
  insertSorted(li, entry.time);
  learn(entry.from, to);
}

function addNotice(message) {
  const li = document.createElement("li");
  li.className = "notice";
  li.textContent = message;
  insertSorted(li, Date.now());
}

// --- presence ----------------------------------------------------------------

function renderOnline() {
  const users = [...new Set(members.values())].sort();
  $("online-count").textContent = `(${users.length})`;
  const list = $("online");
  list.replaceChildren();
  for (const user of users) {
    const li = document.createElement("li");
    li.dataset.user = user;
    if (user === me) {
      li.className = "me";
      li.append(span("who", user), span("self", "(you)"));
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = user;
      button.title = `Send a direct message to ${user}`;
      button.addEventListener("click", () => {
        $("to").value = user;
        $("text").focus();
      });
      li.append(button);
    }
    list.append(li);
  }
  renderTargets();
}

function renderTargets() {
  const online = new Set(members.values());
  const select = $("to");
  const chosen = select.value;
  for (const user of online) known.add(user);
  select.replaceChildren(new Option(`${LOBBY} (everyone)`, LOBBY));
  for (const user of [...known].sort()) {
    if (user === me) continue;
    const where = online.has(user) ? "online" : "offline";
    select.append(new Option(`${user} (direct, ${where})`, user));
  }
  select.value = known.has(chosen) ? chosen : LOBBY;
}

function learn(...users) {
  const before = known.size;
  for (const user of users) if (typeof user === "string" && user) known.add(user);
  if (known.size !== before) renderTargets();
}

async function refreshPresence() {
  if (!channel) return;
  try {
    const presence = await hub.presence(channel);
    members.clear();
    for (const [connId, info] of Object.entries(presence.clients)) members.set(connId, info.user);
    renderOnline();
  } catch (err) {
    console.warn("presence failed", err);
  }
}

// --- history -----------------------------------------------------------------

async function loadInbox() {
  const inbox = await hub.history(INBOX, { limit: 100 });
  for (const entry of inbox.publications) addDirect({ ...entry, epoch: inbox.epoch });
}

async function loadChannel(name) {
  const history = await hub.history(name, { limit: 100 });
  for (const entry of history.publications) addChannelEntry({ ...entry, epoch: history.epoch });
  return history;
}

async function joinLobby() {
  for (const name of CHANNELS) {
    let history;
    try {
      history = await loadChannel(name);
    } catch (err) {
      if (err.code === 107) continue; // namespace not configured on this hub
      throw err;
    }
    channel = name;
    // Subscribing from the position history returned: nothing between is lost.
    await hub.subscribe(name, { since: { offset: history.offset, epoch: history.epoch } });
    return;
  }
  throw new Error("the hub has neither a chat namespace nor a default one");
}

// --- sign in, compose ----------------------------------------------------------

async function signIn(credentials) {
  if (hub) return; // already signing in
  $("signin-error").textContent = "";
  // Relative: the hub may be mounted under a prefix (hubbub.hub.server.asgi, e.g. /hub/).
  hub = new HubClient("./", { ...credentials, tick: true });
  hub.addEventListener("state", (e) => showState(e.detail));
  hub.addEventListener("tick", (e) => showClock(e.detail.time));
  hub.addEventListener("pub", (e) => addChannelEntry(e.detail));
  hub.addEventListener("message", (e) => addDirect(e.detail));
  hub.addEventListener("join", (e) => {
    members.set(e.detail.conn_id, e.detail.user);
    renderOnline();
  });
  hub.addEventListener("leave", (e) => {
    members.delete(e.detail.conn_id);
    renderOnline();
  });
  hub.addEventListener("connected", (e) => {
    showClock(e.detail.time);
    refreshPresence(); // presence may have changed while we were away
  });
  hub.addEventListener("recovery", (e) => {
    const { stream, reason, live } = e.detail;
    const what = stream === INBOX ? "Direct messages" : `Messages of ${LOBBY}`;
    if (live) {
      // The hub lost the stream while we were connected: new messages keep coming.
      addNotice(`History was lost on the server: earlier ${what.toLowerCase()} cannot be recovered.`);
      return;
    }
    const why = reason === "epoch" ? "the hub lost its history (restarted?)" : `(${reason})`;
    addNotice(`${what} could not be recovered: ${why}.`);
    if (stream !== INBOX) loadChannel(stream).catch(() => {});
  });
  try {
    const result = await hub.start();
    me = result.user;
    for (const entry of earlyDirect.splice(0)) addDirect(entry);
  } catch (err) {
    earlyDirect.length = 0;
    hub = null;
    sessionStorage.removeItem(STORAGE);
    const hint =
      credentials.name && err.code === 200
        ? " (this hub is not in development mode: sign in with a token)"
        : "";
    $("signin-error").textContent = `Sign-in refused: ${err.message}${hint}`;
    return;
  }
  sessionStorage.setItem(STORAGE, JSON.stringify(credentials));
  $("me").textContent = me;
  $("whoami").hidden = false;
  $("signin").hidden = true;
  $("chat").hidden = false;
  try {
    await loadInbox();
    await joinLobby();
    await refreshPresence();
  } catch (err) {
    $("compose-status").textContent = `Could not load the chat: ${err.message}`;
    return;
  }
  $("text").focus();
}

async function sendMessage(event) {
  event.preventDefault();
  const input = $("text");
  const status = $("compose-status");
  const body = input.value.trim();
  const to = $("to").value;
  if (!body || !hub) return;
  // Cleared now, not after the reply: clearing later would wipe what the person
  // typed in the meantime (and a quick second message would be lost).
  input.value = "";
  try {
    if (to === LOBBY) {
      await hub.publish(channel, { text: body });
      status.textContent = "";
    } else {
      // A copy goes to our own inbox, so our other windows and a reload see it too.
      const reply = await hub.send([to, me], { text: body, to });
      const result = reply.results[to];
      status.textContent =
        result.status === "live" ? `Delivered to ${to}.` : `${to} is offline: queued for later.`;
    }
  } catch (err) {
    status.textContent = `Not sent: ${err.message}`;
    if (!input.value) input.value = body; // give the text back to retry
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    const name = $("name").value.trim();
    if (!token && !name) {
      $("signin-error").textContent = "Enter a name (or a token).";
      $("name").focus();
      return;
    }
    signIn(token ? { token } : { name });
  });
  $("compose").addEventListener("submit", sendMessage);
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(STORAGE);
    hub?.close();
    location.reload();
  });
  const saved = sessionStorage.getItem(STORAGE);
  if (saved) signIn(JSON.parse(saved)); // a reload signs in again and restores history
});
