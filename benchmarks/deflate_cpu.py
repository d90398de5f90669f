"""CPU cost of permessage-deflate per message, at the protocol level.

A server connection sends, and another one receives, a stream of ~200-byte
JSON messages (the real-time case) and one ~350 KB JSON document; the time
per message is the CPU time of ``send_text`` + ``data_to_send`` on one side and
``receive_data`` + ``events_received`` on the other (``time.process_time``,
so that other processes on a shared machine count less). Also reports the
bytes on the wire relative to the uncompressed payload.

Usage::

    python benchmarks/deflate_cpu.py [-n 3000]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from hubbub.protocol import ClientConnection, Connection, ServerConnection, Side
from hubbub.protocol.permessage_deflate import deflate_factories

CONFIGS: dict[str, dict[str, Any] | None] = {
    "no compression": None,
    "defaults (12-bit, rebuilt per message)": {},
    "12-bit, keep_zlib_objects": {"keep_zlib_objects": True},
    "15-bit, rebuilt per message": {"server_max_window_bits": None},
    "15-bit, keep_zlib_objects": {"server_max_window_bits": None, "keep_zlib_objects": True},
    "level 1": {"level": 1},
    "level 9": {"level": 9},
}


def small_messages(n: int) -> list[str]:
    rng = random.Random(1)
    words = ["the", "quick", "brown", "fox", "price", "update", "user", "joined", "room"]
    return [
        json.dumps(
            {
                "type": "chat",
                "room": rng.choice(["general", "random", "dev"]),
                "user": f"user{rng.randint(1, 500)}",
                "text": " ".join(rng.choices(words, k=rng.randint(3, 25))),
                "ts": 1700000000 + rng.random() * 1e5,
                "id": rng.randint(1, 10**9),
            }
        )
        for _ in range(n)
    ]


def big_message() -> str:
    rng = random.Random(2)
    return json.dumps(
        [{"id": i, "name": f"item {i}", "price": rng.random() * 100} for i in range(6000)]
    )


def pair(options: dict[str, Any] | None) -> tuple[Connection, Connection]:
    compression = None if options is None else "deflate"
    client = ClientConnection(
        "ws://example.com/", extensions=deflate_factories(Side.CLIENT, compression)
    )
    server = ServerConnection(
        extensions=deflate_factories(Side.SERVER, compression, **(options or {})), max_size=None
    )
    client.send_request()
    for chunk in client.data_to_send():
        server.receive_data(chunk)
    (request,) = server.events_received()
    server.send_response(server.accept(request))  # type: ignore[arg-type]
    for chunk in server.data_to_send():
        client.receive_data(chunk)
    client.events_received()
    client.max_size = None
    return server, client


def run(options: dict[str, Any] | None, messages: list[str]) -> tuple[float, float, float]:
    """Send ``messages`` from a server to a client: µs to send, to receive, wire ratio."""
    sender, receiver = pair(options)
    send = receive = 0.0
    wire = 0
    for m in messages:
        t0 = time.process_time()
        sender.send_text(m)
        chunks = sender.data_to_send()
        t1 = time.process_time()
        for chunk in chunks:
            receiver.receive_data(chunk)
        events = receiver.events_received()
        t2 = time.process_time()
        assert events == [m]
        send += t1 - t0
        receive += t2 - t1
        wire += sum(map(len, chunks))
    n = len(messages)
    return send / n * 1e6, receive / n * 1e6, wire / sum(len(m.encode()) for m in messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="small messages per configuration")
    parser.add_argument("-r", type=int, default=3, help="repetitions; the best one is shown")
    args = parser.parse_args()
    small = small_messages(args.n)
    big = [big_message()] * 5
    print(f"{args.n} small messages (~{sum(map(len, small)) // args.n} B) and 5 of {len(big[0])} B")
    print(f"\n{'configuration':40} {'small: send':>12} {'receive':>9} {'wire':>6}", end="")
    print(f" {'big: send':>10} {'receive':>9} {'wire':>6}")
    for name, options in CONFIGS.items():
        s = min((run(options, small) for _ in range(args.r)), key=lambda r: r[0] + r[1])
        b = min((run(options, big) for _ in range(args.r)), key=lambda r: r[0] + r[1])
        print(
            f"{name:40} {s[0]:9.1f} µs {s[1]:6.1f} µs {s[2]:6.3f}"
            f" {b[0] / 1000:7.2f} ms {b[1] / 1000:6.2f} ms {b[2]:6.3f}"
        )


if __name__ == "__main__":
    main()
