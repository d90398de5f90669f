"""Drive the blocking client (``hubbub.sync``) through Autobahn's fuzzingserver.

Same protocol as ``client_driver.py`` (which drives the asyncio client):
``/getCaseCount``, then ``/runCase?case=n&agent=A`` for n = 1..N (echo every
message until the server closes), then ``/updateReports?agent=A``.

Usage::

    bash /work/shared/autobahn/install.sh
    AUTOBAHN_NO_DEFLATE=1 /work/shared/autobahn/run-fuzzingserver.sh 9102 /tmp/ab-sync &
    # wait for "READY ws://127.0.0.1:9102"
    .venv/bin/python compliance/client_driver_sync.py ws://127.0.0.1:9102
    python3 /work/shared/autobahn/summarize.py /tmp/ab-sync/reports/index.json --expected 301

Prints progress every 50 cases and ends with ``DRIVER cases=N ... seconds=S``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from hubbub.exceptions import HubbubError
from hubbub.sync.client import ClientConnection, connect

#: The 9.* cases send messages of up to 16 MiB.
MAX_MESSAGE_SIZE = 2**24


def open_case(uri: str) -> ClientConnection:
    # No keepalive: a ping of ours in the middle of a case is an unexpected event.
    return connect(uri, max_size=MAX_MESSAGE_SIZE, ping_interval=None, proxy=None)


def run_case(uri: str, timeout: float) -> str | None:
    """Echo everything on one case connection; return the name of the error it ended with."""
    deadline = time.monotonic() + timeout
    try:
        with open_case(uri) as ws:
            while True:
                message = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
                ws.send(message)
    except (HubbubError, OSError, TimeoutError) as exc:
        name = type(exc).__name__
        return None if name == "ConnectionClosedOK" else name


def drive(base: str, agent: str, case_timeout: float) -> int:
    """Run every case; return how many there were."""
    started = time.monotonic()
    with open_case(f"{base}/getCaseCount") as ws:
        count = int(ws.recv(timeout=10))
    print(f"DRIVER library=hubbub.sync agent={agent} case_count={count}", flush=True)
    errors: Counter[str] = Counter()
    for n in range(1, count + 1):
        error = run_case(f"{base}/runCase?case={n}&agent={agent}", case_timeout)
        if error:
            errors[error] += 1
        if n % 50 == 0:
            print(f"  {n}/{count} cases, {time.monotonic() - started:.0f} s", flush=True)
    with open_case(f"{base}/updateReports?agent={agent}") as ws:
        # The server closes right after writing the report: wait for that close.
        try:
            for _ in ws:
                pass
        except (HubbubError, OSError):
            pass
    summary = " ".join(f"{name}={n}" for name, n in sorted(errors.items())) or "none"
    print(
        f"DRIVER cases={count} case_errors: {summary} seconds={time.monotonic() - started:.1f}",
        flush=True,
    )
    return count


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Autobahn fuzzingserver driver, blocking client")
    parser.add_argument("base", help="ws://127.0.0.1:PORT of wstest -m fuzzingserver")
    parser.add_argument("--agent", default="hubbub-sync-client")
    parser.add_argument("--case-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    drive(args.base.rstrip("/"), args.agent, args.case_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
