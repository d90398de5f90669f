"""Fixtures shared by the whole suite: free ports, a Node.js peer, and the peer policy.

Peer policy
-----------
Tests marked ``@pytest.mark.peer`` talk to a real third-party implementation (Node's ``ws``,
the ``websockets`` library, Autobahn's wstest, later browsers). On a developer's machine they
skip with a reason when the peer is not installed. With ``HUBBUB_REQUIRE_PEERS=1`` (set by
``scripts/test.sh`` when ``CI=true``) a skipped peer test is reported as a FAILURE instead:
CI must never go green because a peer silently went missing. The same applies to a module
under ``tests/interop`` that skips as a whole at import time.

Node peer
---------
``node_peer`` starts ``tests/interop/node/peer.js`` (or another script there) and talks to it
with JSON lines: commands to its stdin, events from its stdout (see the script's header). It
needs ``node`` on PATH and ``npm ci`` run in ``tests/interop/node`` (``scripts/test.sh`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
NODE_DIR = TESTS / "interop" / "node"
REQUIRE_PEERS = os.environ.get("HUBBUB_REQUIRE_PEERS", "") not in ("", "0")

#: Per-event timeout for the Node peer: generous for a loaded 2-core machine.
NODE_EVENT_TIMEOUT = 20.0


# --- peer policy -------------------------------------------------------------------------


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """With HUBBUB_REQUIRE_PEERS=1, turn the skip of a ``peer`` test into a failure."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if (
        REQUIRE_PEERS
        and report.skipped
        and not hasattr(report, "wasxfail")
        and item.get_closest_marker("peer") is not None
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"peer test skipped while HUBBUB_REQUIRE_PEERS=1 (CI): {_skip_reason(report)}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    """With HUBBUB_REQUIRE_PEERS=1, a module under tests/interop may not skip wholesale."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if (
        REQUIRE_PEERS
        and report.skipped
        and isinstance(collector, pytest.Module)
        and (TESTS / "interop") in collector.path.parents
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"interop module skipped while HUBBUB_REQUIRE_PEERS=1 (CI): {_skip_reason(report)}"
        )


# --- ports -------------------------------------------------------------------------------


def pick_free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it; tiny race after close).

    Prefer port 0 and reading the bound port back where the server allows it; this is for
    programs that must be told a port number on their command line.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_tcp_port() -> int:
    """A free TCP port on 127.0.0.1 (see :func:`pick_free_port`)."""
    return pick_free_port()


# --- Node.js peer --------------------------------------------------------------------------


def node_peer_missing() -> str | None:
    """Why the Node peer cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs)"
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").is_file():
        return f"Node's ws is not installed: run `npm ci` in {NODE_DIR}"
    return None


class NodePeer:
    """A Node.js script driven over JSON lines (commands on stdin, events on stdout).

    Events are kept in arrival order; :meth:`expect` returns the next one and checks its
    kind, so a test states exactly the sequence it expects to see.
    """

    def __init__(self, process: asyncio.subprocess.Process, argv: list[str]) -> None:
        self.process = process
        self.argv = argv
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read_events())

    @classmethod
    async def start(cls, script: str, *args: str) -> NodePeer:
        """Start ``node tests/interop/node/<script> <args>``."""
        argv = ["node", str(NODE_DIR / script), *args]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=64 * 2**20,  # a 16 MiB message is one ~22 MiB line of base64
        )
        return cls(process, argv)

    async def _read_events(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            await self.events.put(json.loads(line))
        await self.events.put({"event": "exit"})

    async def command(self, cmd: str, **fields: Any) -> None:
        """Send one command, e.g. ``await peer.command("send", text="hi")``."""
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        await self.process.stdin.drain()

    async def next_event(self, timeout: float = NODE_EVENT_TIMEOUT) -> dict[str, Any]:
        """The next event, whatever its kind."""
        try:
            return await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"no event from {' '.join(self.argv)} within {timeout} s;"
                f" stderr: {await self._stderr()}"
            ) from None

    async def expect(self, kind: str, timeout: float = NODE_EVENT_TIMEOUT) -> dict[str, Any]:
        """The next event, which must be of ``kind`` ("open", "message", "close", ...)."""
        event = await self.next_event(timeout)
        if event.get("event") != kind:
            raise AssertionError(
                f"expected a {kind!r} event from the Node peer, got {event!r};"
                f" stderr: {await self._stderr()}"
            )
        return event

    async def _stderr(self) -> str:
        if self.process.returncode is None or self.process.stderr is None:
            return "(still running)"
        return (await self.process.stderr.read()).decode(errors="replace")[-2000:]

    async def stop(self) -> int:
        """Close stdin (the script closes its connection and exits), then make sure it did."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        assert self.process.returncode is not None
        return self.process.returncode


@pytest.fixture
async def node_peer() -> AsyncIterator[Callable[..., Awaitable[NodePeer]]]:
    """Start Node peers: ``peer = await node_peer("client", url, "chat")``.

    Arguments are those of ``tests/interop/node/peer.js``; ``script=`` picks another script in
    that folder. Skips (fails under HUBBUB_REQUIRE_PEERS=1) when Node or ``ws`` is missing.
    Every peer started is stopped at teardown.
    """
    reason = node_peer_missing()
    if reason:
        pytest.skip(reason)
    started: list[NodePeer] = []

    async def start(*args: str, script: str = "peer.js") -> NodePeer:
        peer = await NodePeer.start(script, *args)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        await peer.stop()


@pytest.fixture
def held_flushes(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[Any, list[bytes]]]]:
    """What each end-of-iteration flush of held frames wrote (``send_frames_soon``).

    One list per flush round: ``(transport, chunks)`` for each connection
    written, the chunks of one ``write``/``writelines`` call.
    """
    from hubbub.asyncio.held import HeldWrites

    rounds: list[list[tuple[Any, list[bytes]]]] = []
    run = HeldWrites._run

    def recording(self: HeldWrites) -> None:
        rounds.append([(transport, list(out)) for transport, out in self.due if out])
        run(self)

    monkeypatch.setattr(HeldWrites, "_run", recording)
    return rounds
