#!/usr/bin/env node
// A WebSocket peer built on Node's `ws` library, scripted by the interop tests.
//
//   node peer.js client URL [SUBPROTOCOL...]   connect to URL offering those subprotocols
//   node peer.js server [SUBPROTOCOL...]       listen on 127.0.0.1, a free port; accept the
//                                              first connection, choosing the first of OUR
//                                              subprotocols that the client offers
//   --deflate (anywhere after the mode)        enable permessage-deflate (ws's
//                                              perMessageDeflate: true; a client offers it
//                                              by default, a server accepts it only with this)
//
// It speaks JSON, one object per line. Commands arrive on stdin; events go to stdout.
// Payloads travel as {"text": "..."} for text and {"b64": "..."} for binary.
//
// Events:  {"event": "listening", "port": N}                     (server mode)
//          {"event": "open", "protocol": "...", "path": "..."}   (path: server mode)
//                 also "extensions": the negotiated extensions' names (ws.extensions)
//          {"event": "message", "text"|"b64": ...}
//          {"event": "ping", "b64": ...}    {"event": "pong", "b64": ...}
//          {"event": "close", "code": N, "reason": "..."}        (what the other side sent)
//          {"event": "error", "message": "..."}
// Commands: {"cmd": "send", "text"|"b64": ...}
//           {"cmd": "send_fragments", "binary": bool, "fragments": [{"text"|"b64": ...}, ...]}
//                 one message in several frames (ws: send(data, {fin: false}) then fin: true);
//                 b64 fragments with "binary": false make a text message split anywhere,
//                 even inside a UTF-8 sequence
//           {"cmd": "ping", "b64": ...}
//           {"cmd": "close", "code": N, "reason": "..."}
//           {"cmd": "terminate"}                                 (drop TCP, no close frame)
// The process exits once the connection is closed and stdin ends (or is closed).
"use strict";

const readline = require("node:readline");
const { WebSocket, WebSocketServer } = require("ws");

// ws's default maxPayload is 100 MiB; keep it: our tests send at most a few MiB.
const [mode, ...args] = process.argv.slice(2);
const rest = args.filter((arg) => !arg.startsWith("--"));
const deflate = args.includes("--deflate");

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function payload(obj) {
  return obj.text !== undefined ? obj.text : Buffer.from(obj.b64 || "", "base64");
}

function attach(ws, extra) {
  ws.on("open", () =>
    emit({ event: "open", protocol: ws.protocol, extensions: ws.extensions, ...extra }),
  );
  ws.on("message", (data, isBinary) => {
    if (isBinary) emit({ event: "message", b64: Buffer.from(data).toString("base64") });
    else emit({ event: "message", text: data.toString("utf8") });
  });
  ws.on("ping", (data) => emit({ event: "ping", b64: data.toString("base64") }));
  ws.on("pong", (data) => emit({ event: "pong", b64: data.toString("base64") }));
  ws.on("close", (code, reason) => {
    emit({ event: "close", code, reason: reason.toString("utf8") });
    closed = true;
    maybeExit();
  });
  ws.on("error", (err) => emit({ event: "error", message: String(err && err.message) }));
}

let ws = null;
let closed = false;
let stdinEnded = false;
let server = null;
const pending = [];

function maybeExit() {
  if (closed && stdinEnded) {
    if (server) server.close();
    process.exitCode = 0;
    // Let stdout drain, then leave even if a socket lingers.
    setImmediate(() => process.exit(0));
  }
}

function run(cmd) {
  if (!ws) {
    pending.push(cmd);
    return;
  }
  switch (cmd.cmd) {
    case "send":
      ws.send(payload(cmd));
      break;
    case "send_fragments": {
      const last = cmd.fragments.length - 1;
      cmd.fragments.forEach((fragment, i) => {
        ws.send(payload(fragment), { binary: Boolean(cmd.binary), fin: i === last });
      });
      break;
    }
    case "ping":
      ws.ping(payload(cmd));
      break;
    case "close":
      ws.close(cmd.code, cmd.reason);
      break;
    case "terminate":
      ws.terminate();
      break;
    default:
      emit({ event: "error", message: `unknown command ${JSON.stringify(cmd)}` });
  }
}

if (mode === "client") {
  const [url, ...protocols] = rest;
  ws = new WebSocket(url, protocols, deflate ? { perMessageDeflate: true } : {});
  attach(ws, {});
} else if (mode === "server") {
  const ours = rest;
  server = new WebSocketServer({
    host: "127.0.0.1",
    port: 0,
    perMessageDeflate: deflate,
    // Server's preference: the first of OUR subprotocols the client offers.
    handleProtocols: (offered) => ours.find((p) => offered.has(p)) || false,
  });
  server.on("listening", () => emit({ event: "listening", port: server.address().port }));
  server.on("connection", (socket, request) => {
    if (ws) {
      socket.close(1013, "one connection only");
      return;
    }
    ws = socket;
    attach(ws, {});
    emit({ event: "open", protocol: ws.protocol, extensions: ws.extensions, path: request.url });
    pending.splice(0).forEach(run);
  });
  server.on("error", (err) => emit({ event: "error", message: String(err && err.message) }));
} else {
  process.stderr.write("usage: peer.js client URL [SUBPROTOCOL...] | peer.js server [SUBPROTOCOL...]\n");
  process.exit(2);
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  if (!line.trim()) return;
  try {
    run(JSON.parse(line));
  } catch (err) {
    emit({ event: "error", message: `bad command: ${err.message}` });
  }
});
lines.on("close", () => {
  stdinEnded = true;
  if (!closed && ws && ws.readyState === WebSocket.OPEN) ws.close(1001, "stdin closed");
  else if (!closed && ws && ws.readyState === WebSocket.CONNECTING) ws.terminate();
  if (!ws) process.exit(0);
  maybeExit();
});
