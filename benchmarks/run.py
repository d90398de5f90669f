"""hubbub's benchmark runner (also ``hubbub bench``): our echo server against the peers.

Theory of operation
-------------------

Each (scenario, repetition) starts every server afresh, in a shuffled order,
on a free loopback port, and drives it with a load generator written in C
(``loadgen.c``: epoll, one thread, pre-masked frames), which costs far less
CPU per message than any Python server, so it is not what is measured.
While the generator runs, the server's CPU time is read from ``/proc``, so
besides the rates the runner reports messages per server CPU-second: the figure
least disturbed by other processes on a shared machine. Results: medians over
the repetitions, and ratios against ``picows+uvloop`` (the fastest Python peer)
and ``websockets``, taken within each repetition and then the median.

Servers: ``hubbub`` (``hubbub echo --broadcast``, with the C accelerator),
``hubbub-pure`` (the same with ``HUBBUB_NO_EXTENSIONS=1``), ``hubbub-asyncfor``
(the README's ``async for`` handler on ``hubbub.asyncio.serve``,
``asyncfor_server.py``; ``-pure`` likewise; "Ratio vs hubbub" compares it with
callback mode per server CPU-second), ``+uvloop``
variants, the blocking thread-per-connection servers ``hubbub-sync``
(``-pure``) and ``websockets-sync`` (``benchmarks/sync_bench.py``), and the
peers of ``benchmarks/peers.py`` / ``peers.js`` that are installed
(``pip install -e .[bench]``; Node's ``ws`` for ``node-ws``).

Load generator: ``benchmarks/loadgen.c``, compiled on first use into
``~/.cache/hubbub-bench``; ``--loadgen PATH`` or ``$HUBBUB_WSLOAD`` picks
another one that speaks the same JSON lines (e.g. ``../shared/bench``'s
``wsload``).

Usage::

    python benchmarks/run.py                       # all scenarios, default servers
    python benchmarks/run.py --scenarios rr1,stream --servers hubbub,picows+uvloop
    hubbub bench --reps 5 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = os.environ.get("HUBBUB_PYTHON", sys.executable)
TICK = os.sysconf("SC_CLK_TCK")

# name: (kind, load generator arguments, what it is)
SCENARIOS: dict[str, tuple[str, list[str], str]] = {
    "rr1": (
        "echo",
        ["--conns", "1", "--size", "64", "--window", "1"],
        "64 B text, 1 connection, request/response (server and generator on one CPU)",
    ),
    "rr100": (
        "echo",
        ["--conns", "100", "--size", "64", "--window", "1"],
        "64 B text, 100 connections, request/response",
    ),
    "stream": (
        "echo",
        ["--conns", "1", "--size", "64", "--window", "100"],
        "64 B text, 1 connection, 100 messages in flight",
    ),
    "large64k": (
        "echo",
        ["--conns", "1", "--size", "65536", "--window", "8", "--binary"],
        "64 KiB binary echo, 8 in flight",
    ),
    "large1m": (
        "echo",
        ["--conns", "1", "--size", "1048576", "--window", "2", "--binary"],
        "1 MiB binary echo, 2 in flight",
    ),
    "idle10k": (
        "idle",
        ["--conns", "10000", "--parallel", "64", "--hold", "120"],
        "10,000 idle connections: memory per connection, time to open",
    ),
    "bcast1k": (
        "broadcast",
        ["--conns", "1000", "--size", "64", "--window", "1"],
        "64 B broadcast to 1,000 connections, one at a time",
    ),
}
PINNED = {"rr1"}
UNITS = {"large64k": "MB/s", "large1m": "MB/s", "idle10k": "KiB/conn", "bcast1k": "deliveries/s"}


def hubbub_cmd(pure: bool) -> tuple[list[str], dict[str, str]]:
    # The CLI runs on uvloop when it is installed (hubbub[speed]).
    env = {"HUBBUB_NO_EXTENSIONS": "1" if pure else "0"}
    cmd = [
        PY,
        "-m",
        "hubbub",
        "echo",
        "--broadcast",
        "--port",
        "{port}",
        "--ping-interval",
        "0",
        "--max-size",
        "64MiB",
        "--no-compression",
    ]
    return cmd, env


def asyncfor_cmd(pure: bool) -> tuple[list[str], dict[str, str]]:
    # The README's `async for` handler on hubbub.asyncio.serve (issue 17).
    env = {"HUBBUB_NO_EXTENSIONS": "1" if pure else "0"}
    return [PY, str(HERE / "asyncfor_server.py"), "--port", "{port}"], env


def peer_cmd(library: str, uvloop: bool) -> tuple[list[str], dict[str, str]]:
    cmd = [PY, str(HERE / "peers.py"), library, "--port", "{port}"]
    return cmd + (["--uvloop"] if uvloop else []), {}


SERVERS: dict[str, tuple[list[str], dict[str, str]]] = {
    "hubbub": hubbub_cmd(pure=False),
    "hubbub-pure": hubbub_cmd(pure=True),
    "hubbub-asyncfor": asyncfor_cmd(pure=False),
    "hubbub-asyncfor-pure": asyncfor_cmd(pure=True),
    "websockets": peer_cmd("websockets", False),
    "websockets+uvloop": peer_cmd("websockets", True),
    "aiohttp": peer_cmd("aiohttp", False),
    "picows": peer_cmd("picows", False),
    "picows+uvloop": peer_cmd("picows", True),
    "raw-uvloop": peer_cmd("raw", True),
    "node-ws": (["node", str(HERE / "peers.js"), "{port}"], {}),
    # A FastAPI echo endpoint on uvicorn, one per WebSocket implementation
    # (benchmarks/asgi_bench.py; needs the test or asgi extra and fastapi).
    **{
        name: ([PY, str(HERE / "asgi_bench.py"), "serve", "--ws", name, "--port", "{port}"], {})
        for name in ("asgi-hubbub", "asgi-websockets", "asgi-websockets-sansio", "asgi-wsproto")
    },
    # Thread-per-connection echo servers: hubbub.sync against websockets.sync
    # (benchmarks/sync_bench.py; websockets-sync needs the bench extra).
    "hubbub-sync": (
        [PY, str(HERE / "sync_bench.py"), "serve", "--impl", "hubbub", "--port", "{port}"],
        {},
    ),
    "hubbub-sync-pure": (
        [PY, str(HERE / "sync_bench.py"), "serve", "--impl", "hubbub", "--port", "{port}"],
        {"HUBBUB_NO_EXTENSIONS": "1"},
    ),
    "websockets-sync": (
        [PY, str(HERE / "sync_bench.py"), "serve", "--impl", "websockets", "--port", "{port}"],
        {},
    ),
}
DEFAULT_SERVERS = [
    "hubbub",
    "hubbub-pure",
    "hubbub-asyncfor",
    "websockets",
    "picows+uvloop",
    "raw-uvloop",
    "node-ws",
]
REFERENCES = [
    "picows+uvloop",
    "hubbub",
    "websockets",
    "asgi-websockets-sansio",
    "asgi-websockets",
    "websockets-sync",
]
REQUIRES = {"websockets": "websockets", "aiohttp": "aiohttp", "picows": "picows", "raw": None}


def available(name: str) -> str | None:
    """None if the server can run here, else why not."""
    cmd, _ = SERVERS[name]
    if ("uvloop" in name or name.startswith("hubbub")) and _import_fails(["uvloop"]):
        return "uvloop is not installed (pip install -e .[bench])"
    if cmd[0] == "node":
        if not shutil.which("node"):
            return "node is not installed"
        probe = subprocess.run(
            ["node", "-e", "require('ws')"], capture_output=True, env=node_env(), check=False
        )
        return "npm package 'ws' not found (NODE_PATH)" if probe.returncode else None
    if name.startswith("asgi-"):
        missing = _import_fails(["uvicorn", "fastapi"])
        return "uvicorn or fastapi is not installed (pip install -e .[test])" if missing else None
    if name == "websockets-sync" and _import_fails(["websockets.sync.server"]):
        return "websockets is not installed (pip install -e .[bench])"
    if "peers.py" in cmd[1]:
        module = REQUIRES[cmd[2]]
        if module and _import_fails([module]):
            return f"{module} is not installed (pip install -e .[bench])"
    return None


def _import_fails(modules: list[str]) -> bool:
    code = "; ".join(f"import {m}" for m in modules)
    return subprocess.run([PY, "-c", code], capture_output=True, check=False).returncode != 0


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [p for p in env.get("NODE_PATH", "").split(os.pathsep) if p]
    for candidate in (HERE / "node_modules", Path("/tmp/perf/node/node_modules")):
        if candidate.is_dir():
            paths.append(str(candidate))
    env["NODE_PATH"] = os.pathsep.join(paths)
    return env


def find_loadgen(explicit: str | None) -> str:
    """The load generator: --loadgen, $HUBBUB_WSLOAD, or ours (loadgen.c) built with gcc."""
    for path in (explicit, os.environ.get("HUBBUB_WSLOAD")):
        if path:
            return path
    compiler = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if compiler is None:
        sys.exit("no C compiler to build benchmarks/loadgen.c: pass --loadgen PATH")
    source = HERE / "loadgen.c"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hubbub-bench"
    binary = cache / "loadgen"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([compiler, "-O2", "-o", str(binary), str(source)], check=True)
    return str(binary)


# --- measuring one run ----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(name: str, port: int, log: Any) -> subprocess.Popen[bytes]:
    cmd, extra = SERVERS[name]
    env = node_env() if cmd[0] == "node" else dict(os.environ)
    env.update(extra)
    argv = [part.replace("{port}", str(port)) for part in cmd]
    proc = subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            time.sleep(0.2)
            return proc
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"{name} did not listen within 20 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pin_all(pid: int, cpu: int) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


def measure(
    loadgen: str, scenario: str, port: int, pid: int, args: argparse.Namespace
) -> dict[str, Any]:
    kind, params, _ = SCENARIOS[scenario]
    url = f"ws://127.0.0.1:{port}/"
    argv = [loadgen, kind, "--url", url, *params]
    if kind != "idle":
        argv += ["--duration", str(args.duration), "--warmup", str(args.warmup)]
    result: dict[str, Any] = {}
    preexec = None
    if scenario in PINNED and hasattr(os, "sched_setaffinity"):
        # On a small VM a one-connection ping-pong mostly measures cross-CPU
        # wake-ups; on one CPU it measures the server.
        cpu = max(os.sched_getaffinity(0))
        pin_all(pid, cpu)
        preexec = lambda: os.sched_setaffinity(0, {cpu})  # noqa: E731
    cpu_before_open = 0.0
    if kind == "idle":
        # Warm the server's code paths up before taking the baseline.
        subprocess.run(
            [loadgen, "echo", "--url", url, "--conns", "4", "--duration", "0.3", "--warmup", "0"],
            capture_output=True,
            check=False,
        )
        time.sleep(0.3)
        result["rss_before_kib"] = rss_kib(pid)
        # Server CPU spent on the handshakes: steadier than the wall-clock time
        # to open on a shared machine.
        cpu_before_open = cpu_seconds(pid)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,  # noqa: PLW1509 (the runner starts no threads)
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    marks: dict[str, tuple[float, float]] = {}
    final: dict[str, Any] | None = None
    for line in proc.stdout:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        event = obj.get("event")
        if event in ("measure_start", "measure_end"):
            marks[event] = (time.monotonic(), cpu_seconds(pid))
        elif event == "opened":
            result["open_cpu_s"] = cpu_seconds(pid) - cpu_before_open
            time.sleep(1.0)  # let the server settle before reading its memory
            result["rss_after_kib"] = rss_kib(pid)
            result["open"] = obj["open"]
            result["open_time_s"] = obj["open_time_s"]
            proc.stdin.write("done\n")
            proc.stdin.flush()
        elif "mode" in obj:
            final = obj
    proc.wait(60)
    if final is None or final.get("error"):
        result["error"] = (final or {}).get("error") or (
            proc.stderr.read() if proc.stderr else ""
        ).strip()[:200]
        return result
    if kind == "idle":
        opened = result.get("open") or 0
        if opened:
            result["value"] = (result["rss_after_kib"] - result["rss_before_kib"]) / opened
        result["failed"] = final.get("failed", 0)
        return result
    result["msgs_per_s"] = final["msgs_per_s"]
    result["mb_per_s"] = final.get("mb_per_s")
    result["p50_us"] = final.get("lat_us", final.get("fanout_us", {})).get("p50")
    result["value"] = final["mb_per_s"] if scenario.startswith("large") else final["msgs_per_s"]
    if "measure_start" in marks and "measure_end" in marks:
        (t0, c0), (t1, c1) = marks["measure_start"], marks["measure_end"]
        result["server_cpu_pct"] = 100 * (c1 - c0) / (t1 - t0)
        if c1 > c0:
            result["per_cpu_s"] = result["value"] * (t1 - t0) / (c1 - c0)
    return result


# --- report -------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "KiB/conn":
        return f"{value:.2f}"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.1f}k"
    return f"{value:,.0f}"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def ratios(
    runs: list[dict[str, Any]], server: str, scenario: str, reference: str, key: str
) -> float | None:
    """Median over repetitions of server / reference (reference / server for memory)."""
    found = []
    for rep in {r["rep"] for r in runs}:
        a = [
            r.get(key)
            for r in runs
            if (r["server"], r["scenario"], r["rep"]) == (server, scenario, rep)
        ]
        b = [
            r.get(key)
            for r in runs
            if (r["server"], r["scenario"], r["rep"]) == (reference, scenario, rep)
        ]
        if a and b and a[0] and b[0]:
            found.append(b[0] / a[0] if scenario == "idle10k" else a[0] / b[0])
    return median(found)


def report(runs: list[dict[str, Any]], servers: list[str], scenarios: list[str]) -> str:
    def cell(server: str, scenario: str, key: str) -> float | None:
        return median(
            [
                r[key]
                for r in runs
                if r["server"] == server and r["scenario"] == scenario and r.get(key) is not None
            ]
        )

    lines = ["", "Medians (large*: MB/s, idle10k: KiB per connection, others: messages/s)", ""]
    head = "| server | " + " | ".join(scenarios) + " |"
    rule = "|---|" + "---|" * len(scenarios)
    lines += [head, rule]
    for s in servers:
        lines.append(
            f"| {s} | "
            + " | ".join(fmt(cell(s, sc, "value"), UNITS.get(sc, "")) for sc in scenarios)
            + " |"
        )
    echo = [sc for sc in scenarios if sc != "idle10k"]
    if echo:
        lines += [
            "",
            "Per server CPU-second (same units)",
            "",
            "| server | " + " | ".join(echo) + " |",
            "|---|" + "---|" * len(echo),
        ]
        for s in servers:
            lines.append(
                f"| {s} | " + " | ".join(fmt(cell(s, sc, "per_cpu_s")) for sc in echo) + " |"
            )
    if "idle10k" in scenarios:
        lines += ["", "idle10k: time to open 10,000 connections (s; server CPU-seconds)", ""]
        for s in servers:
            opened = cell(s, "idle10k", "open_time_s")
            cpu = cell(s, "idle10k", "open_cpu_s")
            lines.append(
                f"* {s}: "
                + ("-" if opened is None else f"{opened:.2f}")
                + ("" if cpu is None else f" (CPU {cpu:.2f})")
            )
    for reference in REFERENCES:
        if reference not in servers:
            continue
        for key, title in (("value", "rate"), ("per_cpu_s", "per CPU-second")):
            cols = scenarios if key == "value" else echo
            if not cols:
                continue  # idle10k only: it has no per-CPU-second figure
            lines += [
                "",
                f"Ratio vs {reference}, {title} (>1: better; idle10k: <1 KiB/conn ratio "
                "inverted so >1 is leaner)",
                "",
                "| server | " + " | ".join(cols) + " |",
                "|---|" + "---|" * len(cols),
            ]
            for s in servers:
                cells = []
                for sc in cols:
                    r = ratios(runs, s, sc, reference, key)
                    cells.append("-" if r is None else f"{r:.2f}x")
                lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_before(python: str) -> None:
    """Add ``NAME@before``: each hubbub server run by ``python`` (a before/after pair, one run)."""
    for name in [n for n in SERVERS if n.startswith("hubbub")]:
        cmd, env = SERVERS[name]
        if cmd and cmd[0] == PY:
            SERVERS[f"{name}@before"] = ([python, *cmd[1:]], env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark hubbub against other WebSocket servers")
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated, from: {', '.join(SERVERS)}",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions (3)")
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per run (4)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run (1)")
    parser.add_argument("--loadgen", help="path of the wsload binary")
    parser.add_argument("--json", help="write every run to this file")
    parser.add_argument("--list", action="store_true", help="list servers and scenarios, then exit")
    parser.add_argument(
        "--before",
        metavar="PYTHON",
        help="also run every hubbub server asked for with this interpreter (another tree's "
        "venv, e.g. a checkout of an older commit), as NAME@before in the same run",
    )
    args = parser.parse_args(argv)
    if args.before:
        add_before(args.before)
        asked = [s for s in args.servers.split(",") if s]
        args.servers = ",".join(
            asked + [f"{name}@before" for name in asked if f"{name}@before" in SERVERS]
        )
    if args.list:
        for name in SERVERS:
            why = available(name)
            print(f"server {name:18s} {'ok' if why is None else 'unavailable: ' + why}")
        for name, (_, _, what) in SCENARIOS.items():
            print(f"scenario {name:9s} {what}")
        return 0
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    servers = []
    for name in (s for s in args.servers.split(",") if s):
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}")
        why = available(name)
        if why is None:
            servers.append(name)
        else:
            print(f"skipping {name}: {why}", file=sys.stderr)
    if not servers:
        print(
            "nothing to measure: none of the servers asked for can run here "
            "(see --list; pip install -e .[bench] adds the Python peers)",
            file=sys.stderr,
        )
        return 1
    loadgen = find_loadgen(args.loadgen)
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    runs: list[dict[str, Any]] = []
    total = len(scenarios) * args.reps * len(servers)
    done = 0
    started = time.monotonic()
    log = open(os.devnull, "wb")  # noqa: SIM115 (servers' output is not interesting)
    for scenario in scenarios:
        for rep in range(args.reps):
            order = servers[:]
            random.shuffle(order)
            for name in order:
                if scenario == "bcast1k" and name.startswith("raw"):
                    continue  # a reflector cannot broadcast
                if scenario == "idle10k" and "-sync" in name:
                    continue  # 10,000 connections are 20,000 threads there
                done += 1
                port = free_port()
                try:
                    proc = start(name, port, log)
                except RuntimeError as exc:
                    runs.append(
                        {"server": name, "scenario": scenario, "rep": rep, "error": str(exc)}
                    )
                    print(f"[{done}/{total}] {scenario} {name}: {exc}", flush=True)
                    continue
                try:
                    result = measure(loadgen, scenario, port, proc.pid, args)
                finally:
                    stop(proc)
                result.update(server=name, scenario=scenario, rep=rep)
                runs.append(result)
                unit = UNITS.get(scenario, "msg/s")
                shown = result.get("error") or (
                    f"{fmt(result.get('value'), unit)} {unit}"
                    + (
                        f", {result['server_cpu_pct']:.0f}% CPU"
                        if "server_cpu_pct" in result
                        else ""
                    )
                )
                elapsed = time.monotonic() - started
                print(
                    f"[{done}/{total} {elapsed:4.0f}s] {scenario} rep {rep + 1}: {name}: {shown}",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    print(report(runs, servers, scenarios))
    if not any("value" in run and "error" not in run for run in runs):
        print("nothing was measured: every run failed (see the errors above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
