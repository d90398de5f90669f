"""Run the Autobahn|Testsuite against hubbub, as a server and as a client.

Theory of operation
-------------------
wstest (Python 2.7, installed by ``install_wstest.sh``) has two modes we use:

* **server side** (``fuzzingclient``): wstest is the client. We start an echo server (the
  testee: ``hubbub echo`` from the CLI) on a free loopback port, point wstest at it, and wstest
  plays every selected case against it, one connection per case.
* **client side** (``fuzzingserver``): wstest is the server. We start it on a free loopback
  port, then ``client_driver.py`` connects with ``hubbub.asyncio.connect``: it asks
  ``/getCaseCount``, runs ``/runCase?case=n`` for n = 1..N echoing every message back, then
  asks ``/updateReports`` so that wstest writes its report. ``--testee hubbub-sync`` drives
  the blocking client (``hubbub.sync``) with ``client_driver_sync.py`` instead.

Either way wstest writes ``index.json`` into ``OUT/<side>/reports``; ``summarize.py`` judges it:
every case must be OK or INFORMATIONAL, frames and close alike (issue 2's bar: NON-STRICT,
UNIMPLEMENTED and FAILED all fail), and every selected case must have a result.

The 12.* and 13.* cases (permessage-deflate, RFC 7692) are left out unless ``--deflate`` is
given: those 216 cases take
~97% of a full run (about 11 min server side, more client side).

``--testee asgi`` runs the server side through ``examples/asgi_echo.py``: a FastAPI echo
endpoint on uvicorn with hubbub's protocol class (``hubbub.asgi.uvicorn.HubbubProtocol``).

``--testee websockets`` runs the same harness against the ``websockets`` library instead. It
exists to prove that the harness detects failures: websockets is NON-STRICT on 3.2, 3.3,
4.1.3, 4.1.4, 4.2.3, 4.2.4, 5.15, 6.4.1-6.4.4 and FAILS 7.1.5, and this harness must say so.

Usage::

    python compliance/run_autobahn.py both                  # hubbub, both sides, no deflate
    python compliance/run_autobahn.py server --cases 1.1.1 7.1.5
    python compliance/run_autobahn.py client --testee websockets

Exit status: 0 every case passed on every side run; 1 some case failed; 3 a report is missing
or incomplete (testee crashed or hung); 2 setup error (wstest not installable, no free port).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import summarize

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFLATE_CASES = ("12.*", "13.*")
#: The 9.* cases send messages of up to 16 MiB; the testee must accept exactly that.
MAX_MESSAGE_SIZE = 2**24
EXIT_SETUP = 2


def log(message: str) -> None:
    """Progress messages go to stderr; stdout carries only the results."""
    print(f"[autobahn] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes]) -> bool:
    """Wait until something accepts TCP connections on 127.0.0.1:port.

    Gives up early when ``process`` (the one meant to listen) has exited.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
        else:
            return True
    return False


@contextlib.contextmanager
def background(argv: Sequence[str], logfile: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` in its own process group for the duration of the block, output to logfile.

    On exit the whole group gets SIGTERM, then SIGKILL after 5 s, so nothing outlives us.
    """
    with logfile.open("wb") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env},
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def install_wstest() -> Path:
    """Install wstest if needed (fast when it is up to date); return its virtualenv."""
    result = subprocess.run(
        ["bash", str(HERE / "install_wstest.sh")],
        stdout=subprocess.PIPE,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(EXIT_SETUP)
    return Path(result.stdout.decode().strip().splitlines()[-1]) / "py27"


def wstest_argv(venv: Path, mode: str, spec: Path) -> list[str]:
    """Command line for wstest in ``mode``, listening (if at all) on loopback only."""
    return [
        str(venv / "bin" / "python"),
        "-u",
        str(HERE / "wstest_loopback.py"),
        "--mode",
        mode,
        "--spec",
        str(spec),
        *(["--webport", "0"] if mode == "fuzzingserver" else []),
    ]


def selected_case_count(wstest_log: Path) -> int | None:
    """How many cases wstest selected, from its "Ok, will run N test cases" line."""
    with contextlib.suppress(OSError):
        found = re.search(r"will run (\d+) test cases", wstest_log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
    return None


def server_testee_argv(testee: str, port: int) -> list[str]:
    """The echo server under test, listening on 127.0.0.1:port.

    hubbub runs with its defaults, permessage-deflate included: wstest offers it only
    in 12.* and 13.*, so the other cases run uncompressed either way.
    """
    if testee == "websockets":
        return [sys.executable, str(HERE / "websockets_echo.py"), "--port", str(port)]
    if testee == "asgi":
        # hubbub as uvicorn's WebSocket implementation under a FastAPI echo endpoint.
        return [
            sys.executable,
            str(ROOT / "examples" / "asgi_echo.py"),
            "--port",
            str(port),
            "--ping-interval",
            "0",
            "--log-level",
            "warning",
        ]
    return [
        sys.executable,
        "-m",
        "hubbub",
        "echo",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-size",
        str(MAX_MESSAGE_SIZE),
        # A keepalive ping in the middle of a case is an event wstest does not expect.
        "--ping-interval",
        "0",
    ]


def run_server_side(args: argparse.Namespace, venv: Path, out: Path) -> summarize.Summary:
    """wstest fuzzingclient against the testee's echo server."""
    reports = out / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    port = free_port()
    agent = args.agent or args.testee
    spec = out / "spec-fuzzingclient.json"
    path = "/ws" if args.testee == "asgi" else ""
    spec.write_text(
        json.dumps(
            {
                "outdir": str(reports),
                "servers": [{"agent": agent, "url": f"ws://127.0.0.1:{port}{path}"}],
                "cases": args.cases,
                "exclude-cases": args.exclude,
                "exclude-agent-cases": {},
            },
            indent=1,
        )
    )
    testee_argv = server_testee_argv(args.testee, port)
    log(f"server side: starting {' '.join(testee_argv)}")
    with background(testee_argv, out / "testee.log") as testee:
        if not wait_for_port(port, 15, testee):
            log(f"the testee did not listen on port {port}; its log: {out / 'testee.log'}")
            print((out / "testee.log").read_text(errors="replace")[-2000:], file=sys.stderr)
            raise SystemExit(EXIT_SETUP)
        start = time.monotonic()
        with (out / "wstest.log").open("wb") as wstest_out:
            try:
                subprocess.run(
                    wstest_argv(venv, "fuzzingclient", spec),
                    cwd=out,
                    stdin=subprocess.DEVNULL,
                    stdout=wstest_out,
                    stderr=subprocess.STDOUT,
                    timeout=args.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                log(f"wstest did not finish in {args.timeout} s")
        log(f"server side: wstest ran for {time.monotonic() - start:.1f} s")
        if testee.poll() is not None:
            log(f"the testee exited early (rc={testee.returncode}); see {out / 'testee.log'}")
    return summarize.summarize(
        reports, side="server", agent=agent, expected=selected_case_count(out / "wstest.log")
    )


def run_client_side(args: argparse.Namespace, venv: Path, out: Path) -> summarize.Summary:
    """The testee's client, driven through wstest fuzzingserver."""
    reports = out / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    port = free_port()
    agent = args.agent or f"{args.testee}-client"
    spec = out / "spec-fuzzingserver.json"
    spec.write_text(
        json.dumps(
            {
                "url": f"ws://127.0.0.1:{port}",
                "outdir": str(reports),
                "cases": args.cases,
                "exclude-cases": args.exclude,
                "exclude-agent-cases": {},
            },
            indent=1,
        )
    )
    with background(wstest_argv(venv, "fuzzingserver", spec), out / "wstest.log") as wstest:
        if not wait_for_port(port, 20, wstest):
            log(f"wstest fuzzingserver did not listen on {port}; see {out / 'wstest.log'}")
            raise SystemExit(EXIT_SETUP)
        url = f"ws://127.0.0.1:{port}"
        if args.testee == "hubbub-sync":
            driver_argv = [sys.executable, str(HERE / "client_driver_sync.py"), url]
            driver_argv += ["--agent", agent]
        else:
            driver_argv = [sys.executable, str(HERE / "client_driver.py"), url]
            driver_argv += ["--agent", agent, "--library", args.testee]
            driver_argv += ["--deflate"] if args.deflate else []
        log(f"client side: {' '.join(driver_argv)}")
        start = time.monotonic()
        with (out / "driver.log").open("wb") as driver_out:
            try:
                driver = subprocess.run(
                    driver_argv,
                    stdin=subprocess.DEVNULL,
                    stdout=driver_out,
                    stderr=subprocess.STDOUT,
                    timeout=args.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                log(f"the client driver did not finish in {args.timeout} s")
            else:
                if driver.returncode != 0:
                    log(f"the client driver failed (rc={driver.returncode}): {out / 'driver.log'}")
                    print((out / "driver.log").read_text(errors="replace")[-3000:], file=sys.stderr)
        log(f"client side: driver ran for {time.monotonic() - start:.1f} s")
    return summarize.summarize(
        reports, side="client", agent=agent, expected=selected_case_count(out / "wstest.log")
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line, with environment variables as defaults (for scripts/test.sh and CI)."""
    parser = argparse.ArgumentParser(description="Run Autobahn|Testsuite against hubbub.")
    parser.add_argument("side", choices=["server", "client", "both"])
    parser.add_argument(
        "--testee",
        choices=["hubbub", "hubbub-sync", "asgi", "websockets"],
        default="hubbub",
        help="implementation under test: hubbub (asyncio), hubbub-sync (the blocking client;"
        " client side only), asgi (hubbub as uvicorn's WebSocket implementation under"
        " examples/asgi_echo.py; server side only), websockets (to check that the harness"
        " finds failures)",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        default=os.environ.get("AUTOBAHN_CASES", "*").split(),
        help='case patterns, e.g. 1.* 7.1.5 (default: env AUTOBAHN_CASES or "*")',
    )
    parser.add_argument(
        "--exclude",
        nargs="+",
        default=os.environ.get("AUTOBAHN_EXCLUDE", "").split(),
        help="case patterns to leave out (default: env AUTOBAHN_EXCLUDE)",
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        default=False,
        help="include the permessage-deflate cases 12.* and 13.*",
    )
    parser.add_argument("--agent", help="agent name in the report (default: from --testee)")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "artifacts" / "autobahn",
        help="output folder (default: artifacts/autobahn); one subfolder per side",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds allowed per side (default 1800)"
    )
    args = parser.parse_args(argv)
    if args.testee == "hubbub-sync" and args.side != "client":
        parser.error("--testee hubbub-sync has a client side only: use `client`")
    if args.testee == "asgi" and args.side != "server":
        parser.error("--testee asgi has a server side only: use `server`")
    if not args.deflate:
        args.exclude = [*args.exclude, *DEFLATE_CASES]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected sides, print their summaries, return the worst exit status."""
    args = parse_args(argv)
    venv = install_wstest()
    sides = ["server", "client"] if args.side == "both" else [args.side]
    summaries = []
    for side in sides:
        out = (args.out / f"{args.testee}-{side}").resolve()
        out.mkdir(parents=True, exist_ok=True)
        run = run_server_side if side == "server" else run_client_side
        summary = run(args, venv, out)
        (out / "summary.json").write_text(json.dumps(summary.to_json(), indent=1) + "\n")
        summaries.append(summary)
        print(summary.summary_line())
        for line in summary.detail_lines():
            print(f"  {line}")
        sys.stdout.flush()
        log(f"report: {out / 'reports' / 'index.html'}")
    for summary in summaries:
        print(summary.summary_line())
    return max(summary.exit_code for summary in summaries)


if __name__ == "__main__":
    sys.exit(main())
