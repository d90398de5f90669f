"""A fixed per-message workload for instruction counts (callgrind), not for seconds.

Theory of operation
-------------------

On a shared machine wall-clock benchmarks of small changes are noise, but
``valgrind --tool=callgrind`` counts instructions, the same for the same
code and input whatever else runs. This script feeds ``N`` reads of one
64-byte masked text frame each (the shape of request/response traffic) to an
asyncio server connection in callback mode over a transport that discards
what it is given, so the count covers the per-read and per-message path of
the library: parse, dispatch, ``send_nowait``, flush. Run it twice and
subtract to remove start-up::

    for n in 0 20000; do
        PYTHONHASHSEED=0 N=$n valgrind --tool=callgrind python benchmarks/instructions.py
    done
    # (refs at N=20000 - refs at N=0) / 20000 = instructions per message

Compare two trees by pointing ``PYTHONPATH`` at each one's ``src``.

``MODE=broadcast`` counts :func:`hubbub.asyncio.broadcast` instead: ``N / 1000``
broadcasts of a 64-byte text message to 1,000 such connections, so the same
subtraction divided by ``N`` gives instructions per delivery.
"""

from __future__ import annotations

import asyncio
import os

from hubbub.asyncio.connection import Connection
from hubbub.protocol import Connection as Core
from hubbub.protocol import Side

N = int(os.environ.get("N", "20000"))
MODE = os.environ.get("MODE", "echo")
KEY = b"\x01\x02\x03\x04"
PAYLOAD = b"x" * 64
FRAME = (
    bytes([0x81, 0x80 | len(PAYLOAD)]) + KEY + bytes(b ^ KEY[i % 4] for i, b in enumerate(PAYLOAD))
)


class DiscardingTransport:
    """What the connection uses of a transport; writes go nowhere."""

    def write(self, data: bytes) -> None:
        pass

    def writelines(self, data: list[bytes]) -> None:
        pass

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 16384, 65536  # (low, high), as asyncio's transports answer

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def server_connection() -> Connection:
    conn = Connection(Core(Side.SERVER), ping_interval=None)
    conn.connection_made(DiscardingTransport())  # type: ignore[arg-type]
    return conn


async def main() -> None:
    if MODE == "broadcast":
        from hubbub.asyncio import broadcast

        connections = [server_connection() for _ in range(1000)]
        message = PAYLOAD.decode()
        for _ in range(N // 1000):
            broadcast(connections, message)
        return
    conn = Connection(Core(Side.SERVER), ping_interval=None)
    conn.connection_made(DiscardingTransport())  # type: ignore[arg-type]
    conn.on_message = conn.send_nowait
    for _ in range(N):
        conn.data_received(FRAME)


if __name__ == "__main__":
    asyncio.run(main())
