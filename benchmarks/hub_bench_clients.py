"""The client side of benchmarks/hub_bench.py: minimal hubbub.json.v1 connections.

Theory of operation
-------------------

A client process (:func:`worker_main`, forked by ``hub_bench.py``) holds its
share of the connections on one asyncio loop (uvloop when installed). Python
clients cost far more per message than a C load generator, so each connection
is an ``asyncio.Protocol`` speaking just enough RFC 6455 and hubbub.json.v1:

* the opening handshake is written by hand; frames from the hub are unmasked
  (RFC 6455 section 5.1) and parsed in place; pings are answered (section 5.5.2);
* client frames use the all-zero masking key, which RFC 6455 section 5.3
  allows (the key must be unpredictable to defeat proxy cache poisoning, which
  does not apply on loopback), so masking costs nothing;
* a push is never JSON-decoded: the payload ``data`` is ``"S<seq>T<ns>xxx..."``
  and a ``find`` plus two ``int`` calls read the sequence number and the send
  time (``time.time_ns()``; every process shares the machine's clock).

The processes coordinate through shared memory (``multiprocessing`` raw
values, no locks): the main process sets the phase; workers count connections
opened, the lowest sequence number all their connections reached (the fan-out
window), and, when draining, what they sent and received.

With several hub nodes (``args.ports``, one per node) user ``u<i>`` connects
to node ``i % nodes``; the main process publishes through node 0, so the
latencies of connections on the other nodes are also kept apart (cross-node).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import json
import os
import random
import resource
import struct
import time
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from multiprocessing.sharedctypes import Synchronized
from typing import Any

CHANNEL = "bench:fanout"
SUBPROTOCOL = "hubbub.json.v1"

# Phases shared by the main process and the workers.
CONNECTING, READY, RUNNING, MEASURING, DRAINING = 0, 1, 2, 3, 4


def raise_nofile() -> None:
    """Raise RLIMIT_NOFILE to the hard limit (10,000 sockets need it)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def install_uvloop() -> str:
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def text_frame(payload: bytes) -> bytes:
    """A masked text frame with the zero key (RFC 6455 sections 5.2, 5.3)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


def request(rid: int, method: str, params: dict[str, Any]) -> bytes:
    body = {"id": rid, "method": method, "params": params}
    return text_frame(json.dumps(body, separators=(",", ":")).encode())


def make_data(seq: int, size: int) -> str:
    """The payload: sequence number and send time, padded to ``size`` bytes."""
    head = f"S{seq:010d}T{time.time_ns():019d}"
    return head + "x" * max(0, size - len(head))


class WsConn(asyncio.Protocol):
    """One minimal hubbub.json.v1 client connection."""

    def __init__(self, worker: Worker, index: int, user: str, node: int = 0) -> None:
        self.worker = worker
        self.index = index
        self.user = user
        self.node = node  # index of the hub node this connection is on
        # uvloop's transports do not subclass asyncio.Transport: typed loosely.
        self.transport: Any = None
        self.buf = b""
        self.open = False
        self.closed = False
        self.frag = b""
        self.opened: asyncio.Future[None] = worker.loop.create_future()
        self.replies: dict[int, asyncio.Future[bytes]] = {}
        self.last_seq = 0
        self.count = 0
        self.sample = False  # record latencies of this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"{self.user}: closed in handshake"))
        for fut in self.replies.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"{self.user}: connection lost"))
        self.worker.closed += 1

    def send(self, frame: bytes) -> None:
        assert self.transport is not None
        self.transport.write(frame)

    async def call(self, rid: int, method: str, params: dict[str, Any]) -> bytes:
        fut: asyncio.Future[bytes] = self.worker.loop.create_future()
        self.replies[rid] = fut
        self.send(request(rid, method, params))
        return await fut

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if b" 101 " not in buf[: buf.find(b"\r\n")]:
                self.opened.set_exception(ConnectionError(buf[:200].decode("latin-1")))
                assert self.transport is not None
                self.transport.close()
                return
            self.open = True
            self.opened.set_result(None)
            buf = buf[end + 4 :]
        now = time.time_ns()
        pos, size = 0, len(buf)
        on_text = self.worker.on_text
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + n
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode == 1 and b0 & 0x80:
                on_text(self, buf[start:end], now)
            elif opcode in (0, 1):  # a fragmented message (RFC 6455 section 5.4)
                self.frag += buf[start:end]
                if b0 & 0x80:
                    on_text(self, self.frag, now)
                    self.frag = b""
            elif opcode == 9:  # ping: answer with a pong (RFC 6455 section 5.5.2)
                body = buf[start:end]
                self.send(bytes((0x8A, 0x80 | len(body))) + b"\0\0\0\0" + body)
            elif opcode == 8:
                self.worker.close_codes.append(
                    int.from_bytes(buf[start : start + 2], "big") if n >= 2 else 1005
                )
            pos = end
        self.buf = buf[pos:]

    def reply(self, payload: bytes) -> None:
        # '{"id":123,...': the id ends at the first comma.
        rid = int(payload[6 : payload.index(b",", 6)])
        fut = self.replies.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_result(payload)


class Worker:
    """A client process: its connections, counters and latency samples."""

    def __init__(self, args: argparse.Namespace, wid: int, shared: dict[str, Any]) -> None:
        self.args = args
        self.wid = wid
        self.phase: Synchronized[int] = shared["phase"]
        self.opened: Any = shared["opened"]  # Array of per-worker counters
        self.progress: Any = shared["progress"]  # lowest seq reached, per worker
        self.loop = asyncio.get_running_loop()
        self.conns: list[WsConn] = []
        self.closed = 0
        self.close_codes: list[int] = []
        self.lat = array.array("q")
        self.lat_cross = array.array("q")  # connections not on node 0 (the publisher's)
        self.deliveries = 0  # in the measured window
        self.total = 0  # since the start
        self.sent_live = 0
        self.sent_other = 0
        self.errors: list[str] = []
        self.on_text: Callable[[WsConn, bytes, int], None] = self.on_text_generic
        self.on_reply: Callable[[WsConn, bytes], None] | None = None
        self.next_rid = 10
        self.inflight = 0
        self.reached: dict[int, int] = {}  # sequence number -> connections that got it

    def on_text_generic(self, conn: WsConn, payload: bytes, now: int) -> None:
        if payload.startswith(b'{"id":'):
            if self.on_reply is not None and not payload.startswith((b'{"id":1,', b'{"id":2,')):
                self.on_reply(conn, payload)
            else:
                conn.reply(payload)
            return
        if payload.startswith((b'{"push":"pub"', b'{"push":"message"')):
            i = payload.find(b'"data":"S')
            if i < 0:
                return
            seq = int(payload[i + 9 : i + 19])
            conn.last_seq = seq
            reached = self.reached
            reached[seq] = reached.get(seq, 0) + 1
            conn.count += 1
            self.total += 1
            if self.phase.value == MEASURING:
                self.deliveries += 1
                if conn.sample:
                    latency = now - int(payload[i + 20 : i + 39])
                    self.lat.append(latency)
                    if conn.node:
                        self.lat_cross.append(latency)

    async def open_all(self, users: list[str]) -> None:
        sem = asyncio.Semaphore(100)  # handshakes in flight per process
        ports: list[int] = getattr(self.args, "ports", None) or [self.args.port]

        async def one(index: int, user: str) -> None:
            async with sem:
                node = int(user[1:]) % len(ports)
                conn = WsConn(self, index, user, node)
                await self.loop.create_connection(lambda: conn, "127.0.0.1", ports[node])
                await conn.opened
                reply = await conn.call(1, "connect", {"name": user})
                if b'"result"' not in reply:
                    raise RuntimeError(f"connect {user}: {reply[:200]!r}")
                if self.args.scenario == "fanout":
                    reply = await conn.call(2, "subscribe", {"channel": CHANNEL})
                    if b'"result"' not in reply:
                        raise RuntimeError(f"subscribe {user}: {reply[:200]!r}")
                self.conns.append(conn)
                self.opened[self.wid] += 1

        await asyncio.wait_for(
            asyncio.gather(*(one(i, u) for i, u in enumerate(users))), self.args.connect_timeout
        )
        stride = max(1, len(users) * self.args.processes // self.args.sample_conns)
        if self.args.scenario == "direct":
            stride = 1  # one delivery per send: every latency is cheap to keep
        for conn in self.conns:
            conn.sample = conn.index % stride == 0

    async def report_progress(self) -> None:
        """Publish the lowest sequence number every connection reached (fan-out window).

        Each connection receives the publications in order, so that number is
        the highest ``s`` whose count of receptions equals the number of
        connections: counting costs one dict update per delivery, where a
        ``min`` over thousands of connections every few milliseconds would
        take CPU from the hub.
        """
        low, reached = 0, self.reached
        while True:
            n = len(self.conns)
            while n and reached.get(low + 1, 0) >= n:
                low += 1
                reached.pop(low, None)
            self.progress[self.wid] = low
            await asyncio.sleep(0.002)

    async def direct(self, all_users: int) -> None:
        """Send direct events until the phase leaves RUNNING/MEASURING.

        Callback-driven, no task or future per request (they would cost the
        client more than the hub): with ``--rate max`` each reply sends the
        next request, keeping ``--window`` in flight; otherwise a timer sends
        this process's share of ``--rate``.
        """
        args, rng = self.args, random.Random(self.wid)
        conns, payload = self.conns, args.payload
        self.next_rid = 10
        self.inflight = 0

        def send_one() -> None:
            conn = conns[rng.randrange(len(conns))]
            target = rng.randrange(all_users - 1)
            me = int(conn.user[1:])
            to = f"u{target if target < me else target + 1}"
            self.next_rid += 1
            self.inflight += 1
            conn.send(request(self.next_rid, "send", {"to": [to], "data": make_data(0, payload)}))

        def on_reply(conn: WsConn, reply: bytes) -> None:
            self.inflight -= 1
            if b'"status":"live"' in reply:
                self.sent_live += 1
            else:
                self.sent_other += 1
                if len(self.errors) < 5:
                    self.errors.append(reply[:200].decode(errors="replace"))
            if args.rate == "max" and self.phase.value in (RUNNING, MEASURING):
                send_one()

        self.on_reply = on_reply
        if args.rate == "max":
            for _ in range(args.window):
                send_one()
            while self.phase.value in (RUNNING, MEASURING):
                await asyncio.sleep(0.01)
        else:
            # Batches every 10 ms keep timer overhead low at high rates.
            per_tick = float(args.rate) / args.processes / 100
            owed, next_at = 0.0, time.monotonic()
            while self.phase.value in (RUNNING, MEASURING):
                next_at += 0.01
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                owed += per_tick
                while owed >= 1:
                    owed -= 1
                    send_one()
        deadline = time.monotonic() + 10
        while self.inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


def worker_main(
    args: argparse.Namespace, wid: int, users: list[str], shared: dict[str, Any], pipe: Pipe
) -> None:
    raise_nofile()
    install_uvloop()
    asyncio.run(worker_run(args, wid, users, shared, pipe))


async def worker_run(
    args: argparse.Namespace, wid: int, users: list[str], shared: dict[str, Any], pipe: Pipe
) -> None:
    w = Worker(args, wid, shared)
    result: dict[str, Any] = {"wid": wid}
    try:
        await w.open_all(users)
        progress = asyncio.create_task(w.report_progress())
        while w.phase.value < RUNNING:
            await asyncio.sleep(0.005)
        if args.scenario == "direct":
            await w.direct(args.users)
        while w.phase.value < DRAINING:
            await asyncio.sleep(0.01)
        # Drain: wait for what is still in flight (bounded by --drain).
        final: Synchronized[int] = shared["final_seq"]
        shared["sent_live"][wid] = w.sent_live
        shared["done"][wid] = 1
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            shared["received"][wid] = w.total
            if args.scenario == "fanout":
                if all(c.last_seq >= final.value for c in w.conns):
                    break
            elif all(shared["done"][:]) and sum(shared["received"][:]) >= sum(
                shared["sent_live"][:]
            ):
                break
            await asyncio.sleep(0.02)
        progress.cancel()
        result.update(
            deliveries=w.deliveries,
            total=w.total,
            counts=[c.count for c in w.conns],
            nodes=[c.node for c in w.conns],
            sent_live=w.sent_live,
            sent_other=w.sent_other,
            closed=w.closed,
            close_codes=w.close_codes[:20],
            errors=w.errors[:5],
            lat=w.lat.tobytes(),
            lat_cross=w.lat_cross.tobytes(),
        )
    except Exception as exc:  # reported to the main process, which fails the run
        result["error"] = f"{type(exc).__name__}: {exc}"
    pipe.send(result)
    for conn in w.conns:
        if conn.transport is not None:
            conn.transport.close()
