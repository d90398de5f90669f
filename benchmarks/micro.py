"""In-process micro-benchmark of the per-message cost, without sockets.

Runs the echo handler of ``hubbub echo`` on :class:`hubbub.asyncio.Connection`
objects attached to a fake transport, and feeds each one masked 64-byte frames
the way the event loop would (``data_received``), so the CPU time per message
of the library itself shows, free of kernel and load-generator noise::

    python benchmarks/micro.py [--conns 100] [--window 1] [--messages 200000]

``--window 1`` is request/response (one frame per read), larger values put
that many frames in each read (pipelining). ``--size 65536 --window 8
--read-size 262144`` is ``large64k`` as uvloop reads it (frames cut between
reads; the fake transport cannot swap protocols, so large frames are gathered).
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

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 16384, 65536  # (low, high), as asyncio's transports answer

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def masked_frame(payload: bytes, key: bytes = b"\x01\x02\x03\x04", opcode: int = 1) -> bytes:
    n = len(payload)
    pad = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(pad, "big")).to_bytes(n, "big")
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0xFE]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0xFF]) + n.to_bytes(8, "big")
    return head + key + masked


async def run(
    conns: int,
    window: int,
    messages: int,
    *,
    callback: bool = False,
    size: int = 64,
    read_size: int = 0,
) -> float:
    frame = masked_frame(b"x" * size, opcode=1 if size < 1024 else 2)
    chunk = frame * window
    # Reads as the event loop makes them: uvloop reads up to 256 KiB at a time.
    step = read_size or len(chunk)
    reads = [chunk[i : i + step] for i in range(0, len(chunk), step)]
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
    iterations = 2 if size < 1024 else 2 + 2 * window
    start = time.process_time()
    for _ in range(rounds):
        for ws, _ in pairs:
            for data in reads:
                ws.data_received(data)
        # Let the handlers answer (one loop iteration, like a real read cycle;
        # large messages wait for loop turns, see hubbub.asyncio.inbox).
        for _ in range(iterations):
            await asyncio.sleep(0)
    elapsed = time.process_time() - start
    sent = sum(t.written for _, t in pairs)
    expected = rounds * conns * window * (len(frame) - 4)  # answers are not masked
    assert sent == expected, (sent, expected)
    return elapsed / (rounds * conns * window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=64, help="payload bytes (binary from 1 KiB)")
    parser.add_argument(
        "--read-size", type=int, default=0, help="cut each window into reads of this size"
    )
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
    per = runner(
        run(
            args.conns,
            args.window,
            args.messages,
            callback=args.callback,
            size=args.size,
            read_size=args.read_size,
        )
    )
    print(
        f"accelerated={speedups.ACCELERATED} loop={'uvloop' if args.uvloop else 'asyncio'} "
        f"conns={args.conns} window={args.window} size={args.size} "
        f"callback={args.callback}: "
        f"{per * 1e6:.2f} CPU-us per message "
        f"(pid {os.getpid()})"
    )


if __name__ == "__main__":
    main()
