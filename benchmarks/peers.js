// Node's `ws` echo server for benchmarks/run.py (usage: node peers.js PORT).
// Same convention as benchmarks/peers.py: echo every message; a text message
// "broadcast:<payload>" sends <payload> as text to every client. Needs `ws`
// (npm install ws bufferutil, or NODE_PATH pointing at a node_modules).
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const prefix = Buffer.from('broadcast:');
const server = new WebSocketServer({
  host: '127.0.0.1', port, backlog: 1024, maxPayload: 64 * 1024 * 1024, perMessageDeflate: false,
});
server.on('connection', (socket) => {
  socket.on('error', () => {});
  socket.on('message', (data, isBinary) => {
    if (!isBinary && data.length >= prefix.length && data.subarray(0, prefix.length).equals(prefix)) {
      const payload = data.subarray(prefix.length);
      server.clients.forEach((client) => client.send(payload, { binary: false }));
    } else {
      socket.send(data, { binary: isBinary });
    }
  });
});
