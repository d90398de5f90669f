"""Memory of an idle server connection with permessage-deflate, at the protocol level.

For each configuration, N client/server pairs of sans-I/O connections do the
opening handshake and exchange M messages each way (~200-byte JSON texts,
compressed when compression is on), then the client is dropped and the
server connection kept. With M=1 hubbub's windows hold one message; with
M=50 they are full (a 4 KiB window holds ~20 such messages). The cost per
connection is measured two ways:

* tracemalloc: Python and zlib allocations still alive (CPython's zlib
  allocates through PyMem, which tracemalloc sees);
* RSS: growth of the resident set, in a fresh process without tracemalloc.

The same is done with the ``websockets`` library's sans-I/O protocol and its
own defaults, for comparison (if it is installed).

Usage::

    python benchmarks/deflate_memory.py [-n 2000] [-m 1]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

MESSAGES = 1
"""Messages exchanged each way before measuring (``-m``)."""


def message(i: int) -> str:
    return json.dumps(
        {
            "type": "chat",
            "room": "general",
            "user": f"user{i % 7}",
            "text": f"hello everyone, deploy #{i} is done and the dashboards look fine",
            "ts": 1700000000.123 + i,
            "id": 123456789 + i * 7919,
        }
    )


def hubbub_pair(options: dict[str, Any] | None) -> Any:
    """Open a hubbub pair, exchange a message each way, return the server."""
    from hubbub.protocol import ClientConnection, ServerConnection, Side
    from hubbub.protocol.permessage_deflate import deflate_factories

    compression = None if options is None else "deflate"
    client = ClientConnection(
        "ws://example.com/", extensions=deflate_factories(Side.CLIENT, compression)
    )
    server = ServerConnection(
        extensions=deflate_factories(Side.SERVER, compression, **(options or {}))
    )
    client.send_request()
    for chunk in client.data_to_send():
        server.receive_data(chunk)
    (request,) = server.events_received()
    server.send_response(server.accept(request))  # type: ignore[arg-type]
    for chunk in server.data_to_send():
        client.receive_data(chunk)
    client.events_received()
    for i in range(MESSAGES):
        client.send_text(message(i))
        for chunk in client.data_to_send():
            server.receive_data(chunk)
        server.send_text(message(i))
        for chunk in server.data_to_send():
            client.receive_data(chunk)
        assert server.events_received() == [message(i)]
        assert client.events_received() == [message(i)]
    assert bool(server.extensions) is (options is not None)
    return server


def websockets_pair(compression: bool) -> Any:
    """The same with websockets' sans-I/O protocol and its defaults."""
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import (
        enable_client_permessage_deflate,
        enable_server_permessage_deflate,
    )
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri

    client = ClientProtocol(
        parse_uri("ws://example.com/"),
        extensions=enable_client_permessage_deflate(None) if compression else None,
    )
    server = ServerProtocol(
        extensions=enable_server_permessage_deflate(None) if compression else None
    )
    client.send_request(client.connect())
    for chunk in client.data_to_send():
        server.receive_data(chunk)
    (request,) = server.events_received()
    server.send_response(server.accept(request))  # type: ignore[arg-type]
    for chunk in server.data_to_send():
        client.receive_data(chunk)
    client.events_received()
    for i in range(MESSAGES):
        client.send_text(message(i).encode())
        for chunk in client.data_to_send():
            server.receive_data(chunk)
        server.send_text(message(i).encode())
        for chunk in server.data_to_send():
            client.receive_data(chunk)
        assert server.events_received()[0].data == message(i).encode()  # type: ignore[union-attr]
        assert client.events_received()[0].data == message(i).encode()  # type: ignore[union-attr]
    assert bool(server.extensions) is compression
    return server


CONFIGS: dict[str, Callable[[], Any]] = {
    "hubbub, no compression": lambda: hubbub_pair(None),
    "hubbub, deflate defaults": lambda: hubbub_pair({}),
    "hubbub, deflate, keep_zlib_objects": lambda: hubbub_pair({"keep_zlib_objects": True}),
    "hubbub, deflate, 15-bit windows": lambda: hubbub_pair(
        {"server_max_window_bits": None, "client_max_window_bits": None}
    ),
    "websockets, no compression": lambda: websockets_pair(False),
    "websockets, deflate defaults": lambda: websockets_pair(True),
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def measure(name: str, n: int, use_tracemalloc: bool) -> float:
    """Bytes per idle server connection for configuration ``name``."""
    make = CONFIGS[name]
    make()  # warm up: imports, caches, interned strings
    gc.collect()
    if use_tracemalloc:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    else:
        before = rss_bytes()
    servers = [make() for _ in range(n)]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if use_tracemalloc else rss_bytes()
    if use_tracemalloc:
        tracemalloc.stop()
    assert len(servers) == n
    return (after - before) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="connections per configuration")
    parser.add_argument("-m", type=int, default=1, help="messages exchanged each way")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single RSS measure, in a child
    args = parser.parse_args()
    global MESSAGES
    MESSAGES = args.m
    if args.one:
        print(measure(args.one, args.n, use_tracemalloc=False))
        return
    try:
        import websockets
    except ImportError:
        names = [n for n in CONFIGS if not n.startswith("websockets")]
    else:
        print(f"websockets {websockets.__version__}")
        names = list(CONFIGS)
    print(f"{args.n} idle server connections per configuration, {args.m} message(s) each way\n")
    print(f"{'configuration':40} {'tracemalloc':>12} {'overhead':>10} {'RSS':>10}")
    baseline: dict[str, float] = {}
    for name in names:
        traced = measure(name, args.n, use_tracemalloc=True)
        child = subprocess.run(
            [sys.executable, __file__, "-n", str(args.n), "-m", str(args.m), "--one", name],
            capture_output=True,
            text=True,
            check=True,
        )
        rss = float(child.stdout)
        impl = name.split(",")[0]
        if name.endswith("no compression"):
            baseline[impl] = traced
        overhead = traced - baseline.get(impl, traced)
        print(
            f"{name:40} {traced / 1024:9.1f} KiB {overhead / 1024:7.1f} KiB {rss / 1024:7.1f} KiB"
        )


if __name__ == "__main__":
    main()
