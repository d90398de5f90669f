"""The C client of benchmarks/hub_bench.py (``hub_loadgen.c``) and the shared memory.

Theory of operation
-------------------

The runner and its client processes share a few 64-bit counters (the phase,
the last sequence number published, and per client process: connections
opened, fan-out progress, live sends, done, received). They live in a file
mapped by every process (:func:`shared_memory`), so that both kinds of client
can use them: the Python clients (``hub_bench_clients.py``, forked, they
inherit the mapping) and the C client (``hub_loadgen.c``, exec'd, it maps the
file itself). The layout is the C client's: ``phase, final_seq`` then five
arrays of ``processes`` slots.

:class:`CClient` runs one ``hub_loadgen`` process and looks, to the runner,
like a forked Python worker and its pipe (``is_alive``, ``join``, ``kill``,
``pid``; ``poll``, ``recv``): ``recv`` returns the same result dictionary,
latencies included (read back from the files the C client wrote).

The C client is compiled on first use with the C compiler (``$CC``, ``gcc``
or ``cc``) into ``~/.cache/hubbub-bench``, like ``loadgen.c`` for
``benchmarks/run.py``; without a compiler the runner falls back to the Python
clients.

:func:`pin_processes` (``--pin``) places the hub and the client processes
on separate CPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import mmap
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FIELDS = ("opened", "progress", "sent_live", "done", "received")


def find_hub_loadgen() -> str | None:
    """Path of the compiled C client, building it if needed; None without a compiler."""
    explicit = os.environ.get("HUBBUB_HUB_LOADGEN")
    if explicit:
        return explicit
    compiler = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if compiler is None:
        return None
    source = HERE / "hub_loadgen.c"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hubbub-bench"
    # Named after the source's digest, not rebuilt by date: checkouts of
    # different versions (worktrees) share the cache without running each
    # other's binary.
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    binary = cache / f"hub_loadgen-{digest}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([compiler, "-O2", "-o", str(tmp), str(source)], check=True)
        tmp.replace(binary)  # atomic: concurrent runs never see half a binary
    return str(binary)


def shared_memory(processes: int, phase: int) -> tuple[dict[str, Any], str]:
    """The shared counters as ctypes views of a mapped file, and the file's path."""
    size = (2 + len(FIELDS) * processes) * 8
    fd, path = tempfile.mkstemp(prefix="hub-bench-shm-")
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)  # MAP_SHARED: forked children share it too
    finally:
        os.close(fd)
    shared: dict[str, Any] = {
        "phase": ctypes.c_long.from_buffer(mm, 0),
        "final_seq": ctypes.c_long.from_buffer(mm, 8),
        "_mmap": mm,
    }
    for i, name in enumerate(FIELDS):
        shared[name] = (ctypes.c_long * processes).from_buffer(mm, 16 + i * processes * 8)
    shared["phase"].value = phase
    shared["final_seq"].value = 1 << 62
    return shared, path


class CClient:
    """One ``hub_loadgen`` process, with the interface of a forked worker and its pipe."""

    def __init__(
        self,
        binary: str,
        args: argparse.Namespace,
        wid: int,
        n: int,
        *,
        shm_path: str,
        sample_stride: int,
    ) -> None:
        self.lat_path = f"{shm_path}.lat{wid}"
        cmd = [binary, "--shm", shm_path, "--lat-out", self.lat_path]
        cmd += ["--ports", ",".join(str(p) for p in args.ports)]
        cmd += ["--scenario", args.scenario, "--conns", str(n)]
        cmd += ["--wid", str(wid), "--procs", str(args.processes)]
        cmd += ["--window", str(args.window), "--rate", str(args.rate)]
        cmd += ["--payload", str(args.payload), "--sample-stride", str(sample_stride)]
        cmd += ["--connect-timeout", str(args.connect_timeout), "--drain", str(args.drain)]
        if getattr(args, "peer", "hubbub") == "socketio":
            cmd += ["--protocol", "socketio"]  # benchmarks/socketio/server.js
        # A file, not a pipe: the result line can exceed a pipe's buffer, and
        # nobody reads the pipe until the process exits.
        self.out_path = f"{shm_path}.out{wid}"
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out)
        self.pid = self.proc.pid
        self._result: dict[str, Any] | None = None

    # --- the worker side ---

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    # --- the pipe side ---

    def poll(self, timeout: float = 0.0) -> bool:
        """True once the process has exited (its one JSON line is then complete)."""
        if self.proc.poll() is None and timeout > 0:
            self.join(timeout)
        return self.proc.poll() is not None

    def recv(self) -> dict[str, Any]:
        if self._result is None:
            self.proc.wait()
            line = _read_and_remove(self.out_path).decode(errors="replace").strip()
            try:
                result: dict[str, Any] = json.loads(line.splitlines()[-1]) if line else {}
            except ValueError:
                result = {"error": f"hub_loadgen: {line[:200]!r}"}
            if not result:
                result = {"error": f"hub_loadgen exited with {self.proc.returncode}"}
            if "error" not in result:
                result["lat"] = _read_and_remove(self.lat_path)
                result["lat_cross"] = _read_and_remove(self.lat_path + ".cross")
            self._result = result
        return self._result


def _read_and_remove(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
        os.unlink(path)
    except OSError:
        return b""
    return data


def pin_processes(hubs: list[int], others: list[int]) -> dict[str, list[int]]:
    """Hubs on the first CPUs, one each, the load side on the others (``--pin``).

    Without it, the scheduler tends to wake a client on the CPU of the hub
    that just wrote to it (wake affinity), and the two take turns on one
    core while the other idles. Pinning measures what the hub does with a
    core of its own. With fewer than two CPUs it does nothing.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return {}
    hub_cpus = cpus[: max(1, min(len(hubs), len(cpus) - 1))]
    rest = [c for c in cpus if c not in hub_cpus]
    for i, pid in enumerate(hubs):
        os.sched_setaffinity(pid, {hub_cpus[i % len(hub_cpus)]})
    for pid in others:
        os.sched_setaffinity(pid, set(rest))
    return {"hub_cpus": hub_cpus, "client_cpus": rest}
