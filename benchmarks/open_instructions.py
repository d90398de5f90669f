"""Instructions a server spends per accepted connection (callgrind), for any server of run.py.

Connection opening on a shared machine is hard to time, but ``valgrind
--tool=callgrind`` counts the server's instructions (user space: Python, the
event loop, the C accelerator; not the kernel), the same whatever else runs. The
server of ``benchmarks/run.py`` (``hubbub``, ``picows+uvloop``...) runs under
callgrind; the C load generator (``loadgen idle``, 64 handshakes at a time, as in
the ``idle10k`` scenario, not traced) opens ``--warm`` connections, then in a
second run ``--warm + --conns``; each run ends with the connections closed and
the server stopped. The difference divided by ``--conns`` is what one connection
costs to accept, answer, keep and close::

    python benchmarks/open_instructions.py --servers hubbub,picows+uvloop --conns 2000

``--handshake`` counts the sans-I/O part alone, in-process: ``--conns`` times a
new ``ServerConnection``, ``receive_data`` of the load generator's request,
``accept()``, ``send_response()``, ``data_to_send()``, minus the same script
doing none (the interpreter's start-up)::

    python benchmarks/open_instructions.py --handshake --conns 2000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (benchmarks/run.py: servers, load generator)


def listening(port: int) -> bool:
    """Whether something listens on ``port``, asked of the kernel: a probe connection
    would be one more connection for the server to count."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def count(name: str, conns: int, loadgen: str, outdir: str) -> int:
    """Total instructions of server ``name`` over a run that opens ``conns`` connections."""
    cmd, extra = run.SERVERS[name]
    port = run.free_port()
    out = os.path.join(outdir, f"callgrind.{name}.{conns}")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    argv += [part.replace("{port}", str(port)) for part in cmd]
    env = {**os.environ, **extra, "PYTHONHASHSEED": "0"}
    server = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300  # valgrind starts Python slowly
        while not listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not listen under valgrind")
            time.sleep(0.2)
        url = f"ws://127.0.0.1:{port}/"
        idle = ["idle", "--url", url, "--conns", str(conns), "--parallel", "64", "--hold", "0"]
        done = subprocess.run(
            [loadgen, *idle],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if f'"open":{conns},' not in done.stdout.replace(" ", ""):
            raise RuntimeError(f"{name}: not all connections opened: {done.stdout[-500:]}")
        time.sleep(1.0)  # let the server see the connections close
    finally:
        server.terminate()
        _, err = server.communicate(timeout=300)
    found = re.search(rb"Collected : (\d+)", err) or re.search(rb"I\s+refs:\s+([\d,]+)", err)
    if found is None:
        raise RuntimeError(f"{name}: no instruction count from valgrind: {err[-500:]!r}")
    return int(found[1].replace(b",", b""))


# The request of `loadgen idle` (benchmarks/loadgen.c), as the server reads it.
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8765\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: aHViYnViLWxvYWRnZW4tMQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
HANDSHAKES = f"""
from hubbub.protocol.server import ServerConnection
def one():
    connection = ServerConnection()
    connection.receive_data({REQUEST!r})
    (request,) = connection.events_received()
    connection.send_response(connection.accept(request))
    connection.data_to_send()
one()  # the first one fills the caches of names
for _ in range(int(__import__("sys").argv[1])):
    one()
"""


def count_handshakes(conns: int, outdir: str) -> int:
    """Total instructions of ``conns`` sans-I/O handshakes in one process."""
    out = os.path.join(outdir, f"callgrind.handshake.{conns}")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    argv += [sys.executable, "-c", HANDSHAKES, str(conns)]
    done = subprocess.run(
        argv,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        timeout=600,
        check=True,
    )
    found = re.search(rb"Collected : (\d+)", done.stderr) or re.search(
        rb"I\s+refs:\s+([\d,]+)", done.stderr
    )
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind: {done.stderr[-500:]!r}")
    return int(found[1].replace(b",", b""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--servers", default="hubbub,picows+uvloop")
    parser.add_argument("--conns", type=int, default=2000)
    parser.add_argument("--warm", type=int, default=64)
    parser.add_argument("--loadgen", help="path of the wsload binary")
    parser.add_argument("--keep", metavar="DIR", help="keep callgrind's files there")
    parser.add_argument(
        "--handshake", action="store_true", help="count the sans-I/O handshake alone"
    )
    args = parser.parse_args()
    if args.handshake:
        with tempfile.TemporaryDirectory() as temporary:
            outdir = args.keep or temporary
            base = count_handshakes(0, outdir)
            total = count_handshakes(args.conns, outdir)
        print(f"sans-I/O handshake: {(total - base) / args.conns:,.0f} instructions")
        return 0
    loadgen = run.find_loadgen(args.loadgen)
    results = {}
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        outdir = args.keep or temporary
        for name in args.servers.split(","):
            base = count(name, args.warm, loadgen, outdir)
            total = count(name, args.warm + args.conns, loadgen, outdir)
            results[name] = (total - base) / args.conns
            print(f"{name}: {results[name]:,.0f} instructions per connection", flush=True)
    first = next(iter(results.values()))
    for name, value in results.items():
        print(f"{name}: {value / first:.2f}x the first server's instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
