// hubbub.js: the browser client of the hubbub hub (wire protocol hubbub.json.v1, or
// hubbub.msgpack.v1 with { encoding: "msgpack" }: docs/protocol.md). An ES module, no
// dependencies, no build step; the MessagePack codec is ./msgpack.js, served beside it:
//
//   import { HubClient } from "/hubbub.js";
//   const hub = new HubClient("ws://127.0.0.1:8765/", { token: () => fetchToken() });
//   hub.addEventListener("pub", (e) => console.log(e.detail.channel, e.detail.data));
//   await hub.start();
//   await hub.subscribe("chat:lobby");
//   await hub.publish("chat:lobby", { text: "hi" });
//
// Theory of operation
// -------------------
// Requests carry increasing ids; each awaits its reply in `pending`. Pushes are
// dispatched as DOM events named after the push ("pub", "message", "join",
// "leave", "tick", ...), with the push object as `event.detail`.
//
// The client keeps, per stream (each channel joined, and "$inbox"), the epoch and
// offset of the last entry it dispatched. When the socket drops it reconnects
// after a delay drawn uniformly from [0, min(maxDelay, initialDelay * factor^n)]
// (exponential backoff with full jitter: a restarted hub is not hit by every
// client at once), sends `connect`, then re-subscribes to every channel with
// `since: {offset, epoch}` (protocol section 2.1). Entries recovered in replies
// are dispatched as ordinary "pub"/"message" events, before any later push, and
// an entry whose offset was already dispatched in the same epoch is dropped, so
// listeners see each entry once and in order. When the hub says recovery is
// impossible, a "recovery" event names the stream and the reason: the
// application must then reload its state (for instance with `history`).
// The hub also says so while connected: its "reset" push (the broker lost the
// stream: new epoch) moves the kept position to the new epoch, so the next
// reconnection asks for no impossible recovery, and fires a "recovery" event
// with reason "epoch", the new epoch and offset, and `live: true`.
//
// Inbox entries are acknowledged (`ack`, section 2.2) once their "message"
// listeners have run, batched; unacknowledged ones come again after a
// reconnection and are dropped as duplicates here.
//
// `state` is "idle", "connecting" (first attempt), "live" (connected and
// re-subscribed), "reconnecting" (waiting or trying again) or "closed"; every
// change fires a "state" event. The hub's clock push (`tick`) and a ping on
// silence detect a dead connection the browser would not notice by itself.

import { decode as unpack, encode as pack } from "./msgpack.js";

export const SUBPROTOCOL = "hubbub.json.v1";
export const MSGPACK_SUBPROTOCOL = "hubbub.msgpack.v1";
export const INBOX = "$inbox";

/** An error reply from the hub (`code` as in docs/protocol.md section 5). */
export class HubError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "HubError";
    this.code = code;
  }
}

/** The connection dropped before the reply came: the request may or may not have run. */
export class ConnectionLost extends Error {
  constructor(message = "connection lost") {
    super(message);
    this.name = "ConnectionLost";
  }
}

// Closes after which reconnecting cannot help (protocol section 9).
const FINAL_CLOSE_CODES = new Set([1008, 4008]);
const CONNECT_TIMEOUT_MS = 10000;
const REPLY_TIMEOUT_MS = 10000;

export class HubClient extends EventTarget {
  /**
   * @param {string} url  ws:// or wss:// URL of the hub; relative URLs resolve
   *   against the page ("/" on the page's own host).
   * @param {object} options
   * @param {string|function():(string|Promise<string>)} [options.token] a JWT, or a
   *   function returning a fresh one (called on every connect and on `expiring`).
   * @param {string} [options.name] development mode only (insecure): the user id.
   * @param {boolean} [options.tick] ask the hub for its clock every second.
   * @param {string} [options.encoding] "json" (hubbub.json.v1, the default) or "msgpack"
   *   (hubbub.msgpack.v1: binary MessagePack frames, smaller; same values either way).
   * @param {boolean} [options.autoAck] acknowledge inbox entries once dispatched (true).
   * @param {number} [options.initialDelay] ms, cap of the first reconnection delay (500).
   * @param {number} [options.maxDelay] ms, largest cap (30000).
   * @param {number} [options.factor] growth of the cap per attempt (2).
   * @param {number} [options.staleAfter] ms of silence before a ping checks the link.
   * @param {number} [options.maxTokenRefusals] tokens of a token function the hub may
   *   refuse in a row before the client gives up (3).
   */
  constructor(url, options = {}) {
    super();
    this.url = HubClient.resolveUrl(url);
    this.options = {
      autoAck: true,
      tick: false,
      initialDelay: 500,
      maxDelay: 30000,
      factor: 2,
      maxTokenRefusals: 3,
      ...options,
    };
    this.options.staleAfter ??= this.options.tick ? 5000 : 30000;
    const encoding = this.options.encoding ?? "json";
    if (encoding !== "json" && encoding !== "msgpack") {
      throw new TypeError(`encoding must be "json" or "msgpack", not ${JSON.stringify(encoding)}`);
    }
    this.msgpack = encoding === "msgpack";
    this.subprotocol = this.msgpack ? MSGPACK_SUBPROTOCOL : SUBPROTOCOL;
    this.state = "idle";
    this.user = null;
    this.connId = null;
    this.expiresAt = null;
    this.attempt = 0;
    this.tokenRefusals = 0;
    this.nextDelay = null;
    this.ws = null;
    this.channels = new Map(); // channel -> {token, epoch, offset, active}
    this.inbox = { epoch: null, offset: 0 };
    this.pending = new Map(); // id -> {resolve, reject, timer, onReply}
    this.nextId = 1;
    this.waiters = []; // resolved when live
    this.ackTimer = null;
    this.ackWanted = 0;
    this.lastMessageAt = 0;
    this.watchdog = null;
    this.retryTimer = null;
    this.startPromise = null;
  }

  /** ws(s):// URL for `url`, which may be relative to the page or an http(s) URL. */
  static resolveUrl(url) {
    const base = typeof location !== "undefined" ? location.href : "http://127.0.0.1:8765/";
    const u = new URL(url, base);
    if (u.protocol === "http:") u.protocol = "ws:";
    if (u.protocol === "https:") u.protocol = "wss:";
    return u.href;
  }

  // --- lifecycle -------------------------------------------------------------

  /** Connect; resolves with the `connect` result once live, rejects on a final failure. */
  start() {
    if (this.startPromise) return this.startPromise;
    this.startPromise = this.waitLive();
    this.setState("connecting");
    this.open();
    return this.startPromise;
  }

  /** Close for good: no reconnection; pending requests fail. */
  close() {
    // A batched ack goes out first: the hub handles it before the close frame.
    if (this.ackTimer !== null) this.sendAck();
    this.finish(null);
    if (this.ws) this.ws.close(1000, "client closed");
  }

  /** A promise resolved with the `connect` result when the client is (again) live. */
  waitLive() {
    if (this.state === "live") return Promise.resolve(this.connectResult);
    if (this.state === "closed") return Promise.reject(this.closeError ?? new ConnectionLost("closed"));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  setState(state, detail = {}) {
    const previous = this.state;
    if (previous === state && !detail.force) return;
    this.state = state;
    this.emit("state", { state, previous, attempt: this.attempt, delay: this.nextDelay, ...detail });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  open() {
    let ws;
    try {
      ws = new WebSocket(this.url, this.subprotocol);
      ws.binaryType = "arraybuffer"; // MessagePack frames, decoded synchronously
    } catch (err) {
      this.finish(err); // an invalid URL will not become valid
      return;
    }
    this.ws = ws;
    this.noReconnect = false;
    const openTimer = setTimeout(() => ws.close(), CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(openTimer);
      if (ws.protocol !== this.subprotocol) {
        // Protocol section 1: a hub always selects it; another server will not
        // become a hub by retrying.
        this.finish(new Error(`${this.url} did not select the ${this.subprotocol} subprotocol: not a hubbub hub`));
        ws.close(1000, "not a hub");
        return;
      }
      this.lastMessageAt = Date.now();
      this.handshake(ws);
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.lastMessageAt = Date.now();
      this.receive(event.data);
    };
    ws.onclose = (event) => {
      clearTimeout(openTimer);
      if (ws === this.ws) this.lost(event.code, event.reason);
    };
  }

  async handshake(ws) {
    try {
      const params = { tick: !!this.options.tick };
      const token = await this.freshToken();
      if (token) params.token = token;
      else params.name = this.options.name;
      // Protocol section 2.2: the hub compares the inbox epoch we knew, since a
      // broker that lost the inbox also lost what the hub stored about it.
      if (this.inbox.epoch !== null) params.inbox_epoch = this.inbox.epoch;
      const result = await this.request("connect", params, { onReply: (r) => this.onConnected(r) });
      this.user = result.user;
      this.connId = result.conn_id;
      this.expiresAt = result.expires_at;
      // Re-join every channel, recovering from the last dispatched offset.
      const joins = [];
      for (const [channel, sub] of this.channels) {
        const join = this.join(channel, sub).catch((err) => {
          if (!(err instanceof HubError)) throw err;
          // Refused now (rules changed, token expired): drop it rather than loop.
          this.channels.delete(channel);
          this.emit("unsubscribed", { channel, code: err.code, message: err.message });
        });
        joins.push(join);
      }
      await Promise.all(joins);
      if (ws !== this.ws) return;
      this.attempt = 0;
      this.tokenRefusals = 0;
      this.nextDelay = null;
      this.connectResult = result;
      this.setState("live");
      this.startWatchdog();
      this.emit("connected", result);
      if (this.options.autoAck && this.inbox.offset > result.inbox.acked) {
        // Entries dispatched before an ack could go out came again and were dropped.
        this.ack(this.inbox.offset);
      }
      for (const waiter of this.waiters.splice(0)) waiter.resolve(result);
    } catch (err) {
      if (ws !== this.ws) return;
      const refused = err instanceof HubError && [200, 201, 102].includes(err.code);
      this.tokenRefusals = refused ? this.tokenRefusals + 1 : 0;
      if (refused && (!this.hasTokenFunction() || this.tokenRefusals >= this.options.maxTokenRefusals)) {
        // A refused identity will be refused again (a static one, or a token
        // function that keeps returning bad tokens): give up and say why.
        this.finish(err);
        ws.close(1000, "connect refused");
        return;
      }
      ws.close(4000, "handshake failed");
    }
  }

  hasTokenFunction() {
    return typeof this.options.token === "function";
  }

  async freshToken() {
    const token = this.options.token;
    return typeof token === "function" ? await token() : token;
  }

  onConnected(result) {
    // Runs when the reply is read, before any later push: the backlog is in order.
    const inbox = result.inbox;
    if (this.inbox.epoch !== null && inbox.epoch !== this.inbox.epoch) {
      this.emit("recovery", { stream: INBOX, reason: "epoch" });
      this.inbox.offset = 0;
      this.ackWanted = 0;
    } else if (!inbox.recovered && !(inbox.reason === "epoch" && this.inbox.epoch !== null)) {
      // ("epoch" in the epoch we hold: a "reset" push told us already.)
      this.emit("recovery", { stream: INBOX, reason: inbox.reason });
    }
    this.inbox.epoch = inbox.epoch;
    for (const entry of inbox.messages) this.dispatchEntry("message", null, { ...entry, epoch: inbox.epoch });
  }

  join(channel, sub) {
    const params = { channel };
    if (sub.token) params.token = sub.token;
    if (sub.epoch !== null) params.since = { offset: sub.offset, epoch: sub.epoch };
    return this.request("subscribe", params, {
      onReply: (result) => {
        if (result.recovered === false) {
          this.emit("recovery", { stream: channel, reason: result.reason, epoch: result.epoch, offset: result.offset });
        }
        sub.active = true;
        if (sub.epoch !== result.epoch) {
          sub.epoch = result.epoch;
          sub.offset = result.offset - result.publications.length;
        }
        for (const entry of result.publications) {
          this.dispatchEntry("pub", channel, { channel, epoch: result.epoch, ...entry });
        }
        if (result.offset > sub.offset) sub.offset = result.offset;
      },
    });
  }

  lost(code, reason) {
    this.ws = null;
    this.stopWatchdog();
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ConnectionLost(`connection closed (${code})`));
    }
    this.pending.clear();
    for (const sub of this.channels.values()) sub.active = false;
    if (this.state === "closed") return;
    if (FINAL_CLOSE_CODES.has(code) || this.noReconnect) {
      this.finish(new ConnectionLost(`closed by the hub: ${code} ${reason}`));
      return;
    }
    const o = this.options;
    const cap = Math.min(o.maxDelay, o.initialDelay * o.factor ** Math.min(this.attempt, 64));
    const delay = Math.random() * cap; // full jitter
    this.attempt += 1;
    this.nextDelay = delay;
    this.setState("reconnecting", { code, reason, force: true });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state !== "closed") this.open();
    }, delay);
  }

  finish(error) {
    if (this.state === "closed") return;
    clearTimeout(this.retryTimer);
    this.stopWatchdog();
    this.closeError = error;
    this.setState("closed", { error });
    for (const waiter of this.waiters.splice(0)) waiter.reject(error ?? new ConnectionLost("closed"));
  }

  startWatchdog() {
    this.stopWatchdog();
    const every = Math.max(1000, this.options.staleAfter / 2);
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastMessageAt < this.options.staleAfter || !this.ws) return;
      const ws = this.ws;
      // Silence: a ping either gets an answer or proves the link dead.
      this.request("ping", {}, { timeout: REPLY_TIMEOUT_MS }).catch(() => {
        if (ws === this.ws) ws.close(4000, "no answer");
      });
    }, every);
  }

  stopWatchdog() {
    clearInterval(this.watchdog);
    this.watchdog = null;
  }

  // --- messages --------------------------------------------------------------

  receive(data) {
    let msg;
    try {
      // A frame of the other type is not a message of this encoding (section 11.2).
      if (this.msgpack) msg = typeof data === "string" ? null : unpack(data);
      else msg = typeof data === "string" ? JSON.parse(data) : null;
    } catch {
      return;
    }
    if (msg === null || typeof msg !== "object") return;
    if (msg.push === undefined) {
      const p = this.pending.get(msg.id);
      if (!p) {
        if (msg.error) this.emit("error", msg.error);
        return;
      }
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) {
        p.reject(new HubError(msg.error.code, msg.error.message));
      } else {
        try {
          p.onReply?.(msg.result);
        } finally {
          p.resolve(msg.result);
        }
      }
      return;
    }
    switch (msg.push) {
      case "pub":
        this.dispatchEntry("pub", msg.channel, msg);
        break;
      case "message":
        this.dispatchEntry("message", null, msg);
        break;
      case "reset":
        this.onReset(msg);
        break;
      case "expiring":
        this.refreshToken();
        this.emit("expiring", msg);
        break;
      case "disconnect":
        this.noReconnect = !msg.reconnect;
        this.emit("disconnect", msg);
        break;
      default:
        this.emit(msg.push, msg); // join, leave, tick, and pushes of later versions
    }
  }

  /** The hub lost a stream while we were connected (protocol section 2.3). */
  onReset(msg) {
    const stream = msg.stream === INBOX ? this.inbox : this.channels.get(msg.stream);
    if (!stream || stream.epoch === msg.epoch) return; // left, or known from a reply
    stream.epoch = msg.epoch;
    stream.offset = msg.offset;
    if (stream === this.inbox) this.ackWanted = 0; // acks of the lost epoch mean nothing
    const reason = msg.reason ?? "epoch";
    this.emit("recovery", { stream: msg.stream, reason, epoch: msg.epoch, offset: msg.offset, live: true });
  }

  dispatchEntry(type, channel, entry) {
    if (channel === null) {
      const inbox = this.inbox;
      if (inbox.epoch === entry.epoch && entry.offset <= inbox.offset) return; // redelivered
      inbox.epoch = entry.epoch;
      inbox.offset = entry.offset;
      this.emit("message", entry);
      if (this.options.autoAck) this.ack(entry.offset);
      return;
    }
    const sub = this.channels.get(channel);
    if (!sub) return;
    if (sub.epoch === entry.epoch && entry.offset <= sub.offset) return; // seen already
    sub.epoch = entry.epoch;
    sub.offset = entry.offset;
    this.emit(type, entry);
  }

  async refreshToken() {
    if (!this.hasTokenFunction()) return;
    try {
      const result = await this.request("refresh", { token: await this.freshToken() });
      this.expiresAt = result.expires_at;
    } catch (err) {
      this.emit("error", { code: err.code ?? 0, message: `token refresh failed: ${err.message}` });
    }
  }

  /**
   * Send a request as soon as the socket is open (connect and ping) or live (the
   * others); resolves with its result, rejects with HubError or ConnectionLost.
   */
  request(method, params = {}, { onReply, timeout } = {}) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ConnectionLost("not connected"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = timeout
        ? setTimeout(() => {
            this.pending.delete(id);
            reject(new ConnectionLost("no reply"));
          }, timeout)
        : null;
      this.pending.set(id, { resolve, reject, timer, onReply });
      const request = { id, method, params };
      ws.send(this.msgpack ? pack(request) : JSON.stringify(request));
    });
  }

  /** `request` once live (waiting through a reconnection). */
  async call(method, params = {}) {
    if (this.state !== "live") await this.waitLive();
    return this.request(method, params);
  }

  // --- the commands (docs/protocol.md section 3) ----------------------------

  /**
   * Join `channel` and stay in it across reconnections. `since` ({offset, epoch})
   * recovers from a known position, for instance the one `history` returned.
   */
  async subscribe(channel, { token, since } = {}) {
    if (this.channels.has(channel)) throw new HubError(106, "already subscribed");
    const sub = { token, epoch: since?.epoch ?? null, offset: since?.offset ?? 0, active: false };
    this.channels.set(channel, sub);
    if (this.state !== "live") await this.waitLive();
    if (sub.active) return { channel, epoch: sub.epoch, offset: sub.offset };
    try {
      return await this.join(channel, sub);
    } catch (err) {
      if (err instanceof HubError) this.channels.delete(channel);
      throw err;
    }
  }

  async unsubscribe(channel) {
    this.channels.delete(channel);
    return this.call("unsubscribe", { channel });
  }

  publish(channel, data) {
    return this.call("publish", { channel, data });
  }

  /** A direct event to users; resolves with `{results: {user: {status, offset, epoch}}}`. */
  send(to, data) {
    return this.call("send", { to, data });
  }

  presence(channel) {
    return this.call("presence", { channel });
  }

  presenceStats(channel) {
    return this.call("presence_stats", { channel });
  }

  online(users) {
    return this.call("online", { users });
  }

  /** Read a channel or "$inbox": `{limit}` newest entries, or those after `since`. */
  history(stream, { since, limit } = {}) {
    const params = { stream };
    if (since) params.since = since;
    if (limit) params.limit = limit;
    return this.call("history", params);
  }

  ping() {
    return this.call("ping");
  }

  /** Acknowledge the inbox up to `offset` (batched; acks never move back). */
  ack(offset) {
    this.ackWanted = Math.max(this.ackWanted, offset);
    if (this.ackTimer !== null) return;
    this.ackTimer = setTimeout(() => this.sendAck(), 50);
  }

  sendAck() {
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    const epoch = this.inbox.epoch;
    if (this.state !== "live" || epoch === null) return; // resent after reconnection
    this.request("ack", { stream: INBOX, offset: this.ackWanted, epoch }).catch(() => {});
  }
}
