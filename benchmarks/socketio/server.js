// The socket.io v4 peer of benchmarks/hub_bench.py (--peer socketio): the same two
// scenarios as the hub, written the way a socket.io application usually is.
//
// * WebSocket transport only (no HTTP long-polling), acknowledgements on.
// * Each connection names its user in the handshake's auth payload
//   ({"user": "u7"}) and joins the room named after that user ID: a direct
//   event is `io.to(userId).emit(...)`, so every connection of the user gets it.
// * "send" {to: [ids], data} emits "message" {from, data} to each recipient's
//   room and acknowledges {status: "live"} (or "offline": no connection in the
//   room), as the hub answers a send.
// * "subscribe" {channel} joins the channel's room (acknowledged); POST
//   /api/publish {channel, data} emits "pub" {channel, data} to that room: the
//   fan-out scenario's publisher is the same HTTP client as for the hub;
//   /api/publish_batch {publications: [{channel, data}, ...]} emits each in order.
// * GET /healthz answers 200 once listening.
//
// Usage: node server.js --port P [--host 127.0.0.1]
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");
const { Server } = require("socket.io");

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const port = Number(option("--port", "8766"));
const host = option("--host", "127.0.0.1");

const httpServer = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end('{"ok":true}');
    return;
  }
  if (req.method === "POST" && (req.url === "/api/publish" || req.url === "/api/publish_batch")) {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString());
      // publish_batch: {publications: [{channel, data}, ...]}, emitted in order.
      for (const { channel, data } of body.publications || [body]) {
        io.to(channel).emit("pub", { channel, data });
      }
      // A length, not chunked: the benchmark's publisher reads Content-Length.
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": 2 });
      res.end("{}");
    });
    return;
  }
  // socket.io answers its own path (/socket.io/) before this handler runs.
  res.writeHead(404);
  res.end();
});
httpServer.keepAliveTimeout = 120000;

const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  const user = String((socket.handshake.auth && socket.handshake.auth.user) || socket.id);
  socket.data.user = user;
  socket.join(user);
  socket.on("send", (request, ack) => {
    const rooms = io.sockets.adapter.rooms;
    const results = {};
    for (const to of request.to) {
      results[to] = rooms.has(to) ? "live" : "offline";
    }
    io.to(request.to).emit("message", { from: user, data: request.data });
    if (typeof ack === "function") {
      // One status for the single recipient the benchmark names.
      ack({ status: results[request.to[0]] });
    }
  });
  socket.on("subscribe", (request, ack) => {
    socket.join(request.channel);
    if (typeof ack === "function") ack({ ok: true });
  });
});

httpServer.listen(port, host, () => {
  const { version } = JSON.parse(
    fs.readFileSync(path.join(__dirname, "node_modules", "socket.io", "package.json"), "utf8")
  );
  process.stderr.write(`socket.io ${version} on ${host}:${port}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}
