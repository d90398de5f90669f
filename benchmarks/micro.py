"""In-process micro-benchmark of the per-message cost, without sockets.

Runs the echo handler of ``hubbub echo`` on :class:`hubbub.asyncio.Connection`
objects attached to a fake transport, and feeds each one masked 64-byte frames
the way the event loop would (``data_received``), so the CPU time per message
of the library itself shows, free of kernel and load-generator noise::

    python benchmarks/micro.py [--conns 100] [--window 1] [--messages 200000]

``--window 1`` is request/response (one frame per read), larger values put
that many frames in each read (pipelining).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from hubbub import speedups
from hubbub.asyncio.connection import Connection
from hubbub.protocol.connection import Connection as Core
from hubbub.protocol.connection import Side


class FakeTransport(asyncio.Transport):
    """Counts what is written; never blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.writes = 0

    def write(self, data: Any) -> None:
        self.written += len(data)
        self.writes += 1

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.written += len(data)
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def masked_frame(payload: bytes, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + key + masked


async def run(conns: int, window: int, messages: int, callback: bool = False) -> float:
    chunk = masked_frame(b"x" * 64) * window
    pairs = []
    tasks = []
    for _ in range(conns):
        ws = Connection(Core(Side.SERVER), ping_interval=None)
        transport = FakeTransport()
        ws.connection_made(transport)

        async def handler(ws: Connection = ws) -> None:
            if callback:
                ws.on_message = ws.send_nowait
                await ws.wait_closed()
            else:
                async for message in ws:
                    await ws.send(message)

        tasks.append(asyncio.ensure_future(handler()))
        pairs.append((ws, transport))
    await asyncio.sleep(0)
    rounds = max(1, messages // (conns * window))
    start = time.process_time()
    for _ in range(rounds):
        for ws, _ in pairs:
            ws.data_received(chunk)
        # Let the handlers answer (one loop iteration, like a real read cycle).
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    elapsed = time.process_time() - start
    sent = sum(t.written for _, t in pairs)
    expected = rounds * conns * window * 66
    assert sent == expected, (sent, expected)
    return elapsed / (rounds * conns * window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument(
        "--callback", action="store_true", help="answer from on_message, not async for"
    )
    args = parser.parse_args()
    runner: Any
    if args.uvloop:
        import uvloop

        runner = uvloop.run
    else:
        runner = asyncio.run
    per = runner(run(args.conns, args.window, args.messages, args.callback))
    print(
        f"accelerated={speedups.ACCELERATED} loop={'uvloop' if args.uvloop else 'asyncio'} "
        f"conns={args.conns} window={args.window} callback={args.callback}: "
        f"{per * 1e6:.2f} CPU-us per message "
        f"(pid {os.getpid()})"
    )


if __name__ == "__main__":
    main()
