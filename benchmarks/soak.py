"""Soak: N minutes of hostile and ordinary churn against a ``hubbub serve`` process.

Theory of operation
-------------------

The hub runs in its own process (``hub_bench.start_hub``: ``hubbub serve
--dev``, loopback, a free port). This process drives, all at once and for
``--minutes`` (10 by default):

* **churn**: ``--churn`` tasks each opening a connection, connecting,
  subscribing, publishing once and closing, again and again;
* **channel traffic**: ``--members`` well-behaved members of ``bench:soak``
  and a publisher publishing there ``--rate`` times a second;
* **direct traffic**: a sender sending to the inboxes of the members (live);
* **slow consumers**: connections that join the channel and never read (the
  hub closes them with 4011), replaced as they go;
* **a ping flooder**: a connection that sends WebSocket pings as fast as the
  hub takes them, never reads and never connects (closed at the connect
  deadline), replaced as it goes;
* **compressed bursts**: a permessage-deflate client publishing bursts of
  highly compressible 60 kB messages;
* the flooder's rate is ``--ping-rate`` (0, the default: as fast as the hub
  reads them).

Every second the hub's RSS (``/proc/PID/status``), what it holds (from
``/healthz``: sessions, connected users, the broker's streams and the entries
kept in them) and the traffic so far are written to a CSV file; at the end a
PNG plot of both over time (matplotlib, a bench-only dependency) next to it.

What the hub keeps, and why RSS levels off
-------------------------------------------

Memory held for ordinary reasons grows until it reaches its bound, then stays:

* **inboxes**: every direct event stays in its recipient's inbox (acknowledged
  or not, live or not) up to ``[inbox] max_len`` entries per user (1,000 by
  default; 7 days). The sender gives each of the 20 members about 1.7 events
  a second, so with the default the members' inboxes fill for about 10
  minutes (20,000 entries, about 7 MiB): RSS creeps up for the whole run. The
  soak therefore runs the hub with ``--inbox-max-len`` (100 by default), which
  the inboxes reach in about a minute; ``--inbox-max-len 1000`` shows the
  default's slower approach to the same kind of plateau.
* **channel history**: ``history_size`` entries (100 in ``bench:``), so
  ``bench:burst`` keeps 100 x 60 kB = 6 MB once its first bursts are in;
* **empty streams**: each distinct user who connected leaves an empty inbox
  stream (about 1 KB) in the memory broker until it has been idle for an hour
  (``MemoryBroker(idle_ttl=3600)``); the slow consumers are distinct users,
  one every 2 s, so the broker's stream count grows by about 30 a minute
  (0.03 MiB/min) through a 10-minute run.

The report gives the broker's entries and streams after warm-up and at the end.

Nothing acknowledged may be lost: every publication the hub acknowledged must
reach every member, and every direct event answered ``live`` must reach its
recipient; the report counts what is missing (0 expected), and the exit status
is 1 if anything is.

Usage::

    python benchmarks/soak.py --minutes 10 --out soak-results/soak
    python benchmarks/soak.py --minutes 2 --out /tmp/soak   # a short check

Not part of CI; run it on an otherwise idle machine for figures to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_bench import HUB_TOML, free_port, rss_mib, start_hub, stop_hub

from hubbub.asyncio import connect
from hubbub.exceptions import ConnectionClosed, HubbubError
from hubbub.hub import SUBPROTOCOL

CHANNEL = "bench:soak"


class Stats:
    """What the load did, and what must have arrived."""

    def __init__(self) -> None:
        self.churned = 0
        self.published: set[int] = set()  # offsets acknowledged to the publisher
        self.sent: dict[str, set[int]] = {}  # user -> inbox offsets answered "live"
        self.slow_opened = 0
        self.flooders = 0
        self.pings = 0
        self.bursts = 0
        self.errors: dict[str, int] = {}

    def error(self, where: str) -> None:
        self.errors[where] = self.errors.get(where, 0) + 1


class Client:
    """A hubbub.asyncio connection speaking hubbub.json.v1, replies matched by id."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = 0
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.pubs: set[int] = set()
        self.messages: set[int] = set()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, port: int, user: str, **options: Any) -> Client:
        ws = await connect(f"ws://127.0.0.1:{port}/", subprotocols=[SUBPROTOCOL], **options)
        client = cls(ws)
        await client.call("connect", name=user)
        return client

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in self.ws:
                message = json.loads(text)
                waiter = self.waiting.pop(message.get("id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
                elif message.get("push") == "pub" and message.get("channel") == CHANNEL:
                    self.pubs.add(message["offset"])
                elif message.get("push") == "message":
                    self.messages.add(message["offset"])

    async def call(self, method: str, **params: Any) -> Any:
        self.ids += 1
        waiter = self.waiting[self.ids] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"id": self.ids, "method": method, "params": params}))
        reply = await asyncio.wait_for(waiter, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


async def churn(port: int, stats: Stats, index: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            client = await Client.open(port, f"churn-{index}")
            await client.call("subscribe", channel=f"bench:churn-{index}")
            await client.call("publish", channel=f"bench:churn-{index}", data="x" * 200)
            await client.close()
            stats.churned += 1
        except (OSError, HubbubError, RuntimeError, TimeoutError):
            stats.error("churn")
            await asyncio.sleep(0.1)


async def publisher(port: int, stats: Stats, rate: float, stop: asyncio.Event) -> None:
    client = await Client.open(port, "publisher")
    await client.call("subscribe", channel=CHANNEL)
    seq = 0
    while not stop.is_set():
        seq += 1
        result = await client.call("publish", channel=CHANNEL, data={"seq": seq})
        stats.published.add(result["offset"])
        await asyncio.sleep(1 / rate)
    await client.close()


async def sender(port: int, stats: Stats, members: list[str], stop: asyncio.Event) -> None:
    client = await Client.open(port, "sender")
    n = 0
    while not stop.is_set():
        user = members[n % len(members)]
        n += 1
        result = await client.call("send", to=[user], data={"n": n})
        status = result["results"][user]
        if status["status"] == "live":
            stats.sent.setdefault(user, set()).add(status["offset"])
        await asyncio.sleep(0.02)
    await client.close()


async def slow_consumers(port: int, stats: Stats, stop: asyncio.Event) -> None:
    """Join the channel and never read; a new one every 2 s (the hub closes them: 4011)."""
    held: list[Client] = []
    while not stop.is_set():
        try:
            client = await Client.open(port, f"slow-{stats.slow_opened}")
            await client.call("subscribe", channel=CHANNEL)
            # From now on nobody reads: the connection's queue fills, then it
            # stops reading the socket, then the hub's buffers and outbox fill.
            client.reader.cancel()
            held.append(client)
            stats.slow_opened += 1
        except (OSError, HubbubError, RuntimeError, TimeoutError):
            stats.error("slow")
        await asyncio.sleep(2)
    for client in held:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.ws.close(), 5)


async def ping_flooder(port: int, stats: Stats, rate: float, stop: asyncio.Event) -> None:
    """Pings (``rate`` a second, 0: as fast as the hub takes them), never read, never connect.

    The hub closes it at its connect deadline (4002); another one starts.
    """
    ping = bytes([0x89, 0x80 | 4]) + b"\x00\x00\x00\x00" + b"ping"
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "
                + SUBPROTOCOL.encode()
                + b"\r\n\r\n"
            )
            await reader.readuntil(b"\r\n\r\n")
            stats.flooders += 1
            while not stop.is_set() and not writer.is_closing():
                writer.write(ping * 256)
                stats.pings += 256
                await asyncio.wait_for(writer.drain(), 30)
                if rate:
                    await asyncio.sleep(256 / rate)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # closed by the hub: start another
        await asyncio.sleep(0.5)


async def bursts(port: int, stats: Stats, stop: asyncio.Event) -> None:
    """Bursts of 15 compressible 60 kB publications over permessage-deflate, every 3 s.

    15 x 60 kB stays within the hub's byte bucket (1 MiB, refilled 512 KiB/s).
    """
    data = "0" * 60_000
    while not stop.is_set():
        try:
            client = await Client.open(port, "burst", compression="deflate")
            await client.call("subscribe", channel="bench:burst")
            for _ in range(15):
                await client.call("publish", channel="bench:burst", data=data)
            stats.bursts += 1
            await client.close()
        except (OSError, HubbubError, RuntimeError, TimeoutError):
            stats.error("burst")
        await asyncio.sleep(3)


HELD = ("sessions", "users", "streams", "entries")  # what /healthz says the hub holds


def held(port: int) -> list[int]:
    """The hub's sessions, users, broker streams and entries (-1 each if unknown)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            health = json.load(r)
        broker = health["broker"]
        return [
            int(health["sessions"]),
            int(health["users"]),
            int(broker["streams"]),
            int(broker["entries"]),
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return [-1] * len(HELD)


async def sample(pid: int, port: int, stats: Stats, out: Path, stop: asyncio.Event) -> None:
    start = time.monotonic()
    with out.with_suffix(".csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["seconds", "rss_mib", *HELD, "churned", "published", "pings"])
        while not stop.is_set():
            counts = await asyncio.to_thread(held, port)
            row = [round(time.monotonic() - start, 1), round(rss_mib(pid), 1), *counts]
            writer.writerow([*row, stats.churned, len(stats.published), stats.pings])
            file.flush()
            await asyncio.sleep(1)


def plot(out: Path, minutes: float) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return None
    with out.with_suffix(".csv").open() as file:
        rows = list(csv.DictReader(file))
    seconds = [float(r["seconds"]) for r in rows]
    fig, (rss_axis, held_axis) = plt.subplots(
        2, 1, sharex=True, figsize=(9, 6), height_ratios=(3, 2)
    )
    rss_axis.plot(seconds, [float(r["rss_mib"]) for r in rows], color="tab:red", label="RSS")
    rss_axis.set_ylabel("hub RSS (MiB)")
    rss_axis.set_ylim(bottom=0)
    rss_axis.legend(loc="lower right")
    rss_axis.set_title(f"hubbub hub under {minutes:g} min of churn and hostile clients")
    colors = {"sessions": "tab:blue", "streams": "tab:green", "entries": "tab:purple"}
    for name, color in colors.items():
        values = [int(r[name]) for r in rows]
        held_axis.plot(
            seconds, values, color=color, label=f"{name} (broker)" if name != "sessions" else name
        )
    held_axis.set_yscale("log")
    held_axis.set_ylabel("held by the hub")
    held_axis.set_xlabel("seconds")
    # Inside the axes, clear of the tick labels (a figure legend covered them).
    held_axis.legend(loc="center right", fontsize="small")
    fig.tight_layout()
    path = out.with_suffix(".png")
    fig.savefig(path, dpi=100)
    return path


async def soak(args: argparse.Namespace) -> int:
    port = free_port()
    hub = start_hub(port, toml=f"{HUB_TOML}\n[inbox]\nmax_len = {args.inbox_max_len}\n")
    stats = Stats()
    stop = asyncio.Event()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        names = [f"member-{i}" for i in range(args.members)]
        members = [await Client.open(port, name) for name in names]
        for member in members:
            await member.call("subscribe", channel=CHANNEL)
        tasks = [
            asyncio.create_task(sample(hub.pid, port, stats, out, stop)),
            asyncio.create_task(publisher(port, stats, args.rate, stop)),
            asyncio.create_task(sender(port, stats, names, stop)),
            asyncio.create_task(slow_consumers(port, stats, stop)),
            asyncio.create_task(ping_flooder(port, stats, args.ping_rate, stop)),
            asyncio.create_task(bursts(port, stats, stop)),
            *(asyncio.create_task(churn(port, stats, i, stop)) for i in range(args.churn)),
        ]
        await asyncio.sleep(args.minutes * 60)
        stop.set()
        await asyncio.wait(tasks, timeout=60)
        await asyncio.sleep(2)  # the last pushes in flight
        lost_pubs = sum(len(stats.published - m.pubs) for m in members)
        lost_direct = sum(
            len(stats.sent.get(name, set()) - m.messages)
            for name, m in zip(names, members, strict=True)
        )
        for member in members:
            await member.close()
    finally:
        stop.set()
        stop_hub(hub)
    png = plot(out, args.minutes)
    with out.with_suffix(".csv").open() as file:
        rows = list(csv.DictReader(file))
    rss = [float(r["rss_mib"]) for r in rows]
    warm_rows = rows[len(rows) // 5 :] or rows
    warm = [float(r["rss_mib"]) for r in warm_rows]
    sizes = {
        name: {
            "after_warmup_min": min(int(r[name]) for r in warm_rows),
            "after_warmup_max": max(int(r[name]) for r in warm_rows),
            "end": int(rows[-1][name]),
        }
        for name in HELD
    }
    report = {
        "minutes": args.minutes,
        "ping_rate": args.ping_rate or "unthrottled",
        "inbox_max_len": args.inbox_max_len,
        "rss_mib_start": rss[0],
        "rss_mib_after_warmup_min": min(warm),
        "rss_mib_after_warmup_max": max(warm),
        "rss_mib_end": rss[-1],
        "connections_churned": stats.churned,
        "publications_acked": len(stats.published),
        "publications_lost": lost_pubs,
        "direct_live_acked": sum(len(s) for s in stats.sent.values()),
        "direct_lost": lost_direct,
        "slow_consumers": stats.slow_opened,
        "ping_flooders": stats.flooders,
        "pings_sent": stats.pings,
        "compressed_bursts": stats.bursts,
        "hub_holds": sizes,
        "client_errors": stats.errors,
        "csv": str(out.with_suffix(".csv")),
        "png": None if png is None else str(png),
    }
    print(json.dumps(report, indent=2))
    return 1 if lost_pubs or lost_direct else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="duration (10)")
    parser.add_argument("--out", default="soak-results/soak", help="CSV/PNG path, no suffix")
    parser.add_argument("--members", type=int, default=20, help="well-behaved members (20)")
    parser.add_argument("--churn", type=int, default=8, help="churning tasks (8)")
    parser.add_argument("--rate", type=float, default=20.0, help="publications/s (20)")
    parser.add_argument(
        "--ping-rate", type=float, default=0.0, help="flooder pings/s (0: unthrottled)"
    )
    parser.add_argument(
        "--inbox-max-len",
        type=int,
        default=100,
        help="the hub's [inbox] max_len (100; the hub's default is 1000: see above)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
