"""A fixed per-message workload of hubbub's uvicorn protocol class, for instruction counts.

Like ``benchmarks/instructions.py`` but through the ASGI path: the FastAPI echo
endpoint of ``benchmarks/asgi_bench.py`` runs on :class:`hubbub.asgi.uvicorn.HubbubProtocol`
over a transport that discards what it is given. After the handshake, ``N``
messages of 64 B text arrive ``BATCH`` frames per read (the shape of the
``stream`` scenario: 100 messages in flight) and the loop runs until the app has
echoed them all. ``valgrind --tool=callgrind`` counts instructions, the same for
the same code and input whatever else runs on the machine; run it twice and
subtract to remove start-up::

    for n in 0 20000; do
        PYTHONHASHSEED=0 N=$n valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
            python benchmarks/asgi_instructions.py
    done
    # (refs at N=20000 - refs at N=0) / 20000 = instructions per message

``BATCH=1`` gives the request/response shape (one frame per read). ``WS=`` names
another uvicorn ``ws`` class to count it the same way (``websockets-sansio``,
uvicorn's default), which gives a ratio independent of the machine's load; the
transport's ``write`` costs nothing here, so the system calls that fewer writes
save in a real server are not in the count (the script prints writes per message).
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgi_bench import make_app
from uvicorn.config import Config
from uvicorn.server import ServerState

from hubbub.asgi.uvicorn import HubbubProtocol

N = int(os.environ.get("N", "20000"))
BATCH = int(os.environ.get("BATCH", "10"))
WS = os.environ.get("WS", "hubbub")
KEY = b"\x01\x02\x03\x04"
PAYLOAD = b"x" * 64
FRAME = (
    bytes([0x81, 0x80 | len(PAYLOAD)]) + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(PAYLOAD))
)
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + base64.b64encode(b"0123456789abcdef") + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


class DiscardingTransport(asyncio.Transport):
    """What the protocol class uses of a transport; counts the bytes written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.writes = 0
        self.paused = False

    def write(self, data: Any) -> None:
        self.written += len(data)
        self.writes += 1

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )


async def main() -> None:
    config = Config(
        make_app(),
        ws=HubbubProtocol if WS == "hubbub" else WS,
        ws_ping_interval=None,
        ws_max_size=64 * 2**20,
        ws_per_message_deflate=False,
        lifespan="off",
        log_level="warning",
    )
    config.load()
    state = ServerState()
    protocol = config.ws_protocol_class(config, state, {})  # type: ignore[misc]
    transport = DiscardingTransport()
    protocol.connection_made(transport)
    protocol.data_received(REQUEST)
    while not transport.written:
        await asyncio.sleep(0)
    handshake_writes = transport.writes
    expected = transport.written + N * (2 + len(PAYLOAD))
    chunk = FRAME * BATCH
    for _ in range(N // BATCH):
        while transport.paused:
            await asyncio.sleep(0)
        protocol.data_received(chunk)
        await asyncio.sleep(0)
    while transport.written < expected:
        await asyncio.sleep(0)
    assert transport.written == expected, (transport.written, expected)
    if N:
        print(f"{WS}: {(transport.writes - handshake_writes) / N:.3f} writes per message")


if __name__ == "__main__":
    try:
        import uvloop  # uvicorn's default loop when installed, as in asgi_bench.py
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
