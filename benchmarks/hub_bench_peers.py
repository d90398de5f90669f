"""Side-by-side runs of benchmarks/hub_bench.py: hubbub vs socket.io, 1 vs N workers.

Theory of operation
-------------------

Both comparisons run their configurations **interleaved** (A, B, A, B ...)
``--reps`` times, each run against a fresh server, then print the medians and
the per-repetition ratios with their median: on a shared machine only ratios
from one run mean something, and interleaving spreads the drift of the load
over every configuration instead of charging it to one.

``--compare-peers`` (hubbub vs Node's socket.io v4)
    The peer is ``benchmarks/socketio/server.js`` (rooms per user ID,
    WebSocket transport only, acknowledgements on; its header says how it maps
    the scenarios). :func:`ensure_socketio` installs its pinned dependencies
    with ``npm ci`` (``benchmarks/socketio/package-lock.json``) on first use.
    The load generator is the same C client (``hub_loadgen.c --protocol
    socketio``), the publisher the same HTTP client, the completeness checks
    the same: a delivery missing, duplicated (counted twice) or misrouted (a
    push whose sequence another connection expected) shows in ``missing``.
    Ratios are hubbub / socket.io: deliveries per server CPU-second (higher is
    better for hubbub when above 1), p50 and p99 (lower is better for hubbub
    when below 1).

``--compare-workers 1,2`` (scaling efficiency)
    ``hubbub serve --workers N --broker redis://`` for each N, on one fresh
    ``redis-server`` per run. The hub's CPU is the sum over the supervisor and
    its workers. The efficiency is deliveries per hub CPU-second with N
    workers over one worker (both on Redis, so the broker's cost is in both).
    Each run also reports what the capacity model (docs/scaling.md) needs:
    Redis CPU and Redis network bytes (``INFO``) per delivery.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOCKETIO_DIR = HERE / "socketio"

KEYS = [
    "deliveries_per_s",
    "p50_ms",
    "p99_ms",
    "hub_cpu_pct",
    "clients_cpu_pct",
    "hub_deliveries_per_cpu_s",
    "redis_cpu_pct",
    "redis_cpu_us_per_delivery",
    "redis_bytes_per_delivery",
    "hub_cpu_us_per_delivery",
]


def ensure_socketio() -> list[str]:
    """The command that runs the socket.io server, installing its packages first if needed."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("--peer socketio needs node and npm (https://nodejs.org)")
    if not (SOCKETIO_DIR / "node_modules" / "socket.io" / "package.json").exists():
        # npm ci: exactly the versions of package-lock.json, nothing resolved anew.
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel", "error"],
            cwd=SOCKETIO_DIR,
            check=True,
        )
    return [node, str(SOCKETIO_DIR / "server.js")]


def start_socketio(port: int) -> subprocess.Popen[bytes]:
    """The socket.io peer on ``port``, once it answers ``/healthz``."""
    cmd = [*ensure_socketio(), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_healthy(proc, port):
        raise RuntimeError("the socket.io server did not start")
    return proc


def wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> bool:
    """Wait until the server on ``port`` answers ``/healthz`` 200; kill it if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    return False


def worker_pids(port: int) -> list[int]:
    """The pids of ``hubbub serve --workers N``'s workers (from ``/healthz``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        health = json.loads(r.read())
    return [w["pid"] for w in health.get("workers", []) if w["pid"]]


def redis_info(port: int) -> dict[str, float]:
    """Redis ``INFO`` counters (network bytes, CPU), by an inline command."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            data += chunk
            head, _, body = data.partition(b"\r\n")
            if head.startswith(b"$") and len(body) >= int(head[1:]):
                break
            if not chunk:
                break
    out: dict[str, float] = {}
    for line in data.decode().splitlines():
        name, sep, value = line.partition(":")
        if sep and name in (
            "total_net_input_bytes",
            "total_net_output_bytes",
            "used_cpu_sys",
            "used_cpu_user",
        ):
            out[name] = float(value)
    return out


def redis_per_delivery(
    before: dict[str, float], after: dict[str, float], deliveries: int
) -> dict[str, float | None]:
    """Redis bytes (in + out) and CPU per delivery over a window."""
    if not deliveries or not before or not after:
        return {"redis_bytes_per_delivery": None, "redis_cpu_us_per_delivery": None}
    moved = sum(after[k] - before[k] for k in ("total_net_input_bytes", "total_net_output_bytes"))
    cpu = sum(after[k] - before[k] for k in ("used_cpu_sys", "used_cpu_user"))
    return {
        "redis_bytes_per_delivery": round(moved / deliveries, 1),
        "redis_cpu_us_per_delivery": round(1e6 * cpu / deliveries, 3),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in KEYS:
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["missing"] = sum(r["missing"] for r in runs)
    out["runs"] = len(runs)
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _interleaved(
    args: argparse.Namespace,
    configs: list[tuple[str, dict[str, Any]]],
    run_once: Callable[[argparse.Namespace, str], dict[str, Any]],
    log: Callable[[str], None],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """scenario -> label -> runs, every configuration once per repetition."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for rep in range(args.reps):
        for scenario in args.scenarios.split(","):
            for label, overrides in configs:
                log(f"compare: repetition {rep + 1}/{args.reps}, {scenario}, {label}")
                cargs = argparse.Namespace(**vars(args))
                vars(cargs).update(overrides)
                if not cargs.window:
                    cargs.window = (
                        2 * cargs.batch if scenario == "fanout" else max(1, 128 // cargs.processes)
                    )
                run = run_once(cargs, scenario)
                run["config"] = label
                runs.setdefault(scenario, {}).setdefault(label, []).append(run)
                print(json.dumps(run), flush=True)
    return runs


def _report(
    runs: dict[str, dict[str, list[dict[str, Any]]]], top: str, base: str, keys: list[str]
) -> dict[str, Any]:
    """Medians per configuration, and ``top / base`` per repetition with their median."""
    report: dict[str, Any] = {}
    for scenario, by_label in runs.items():
        medians = {label: median_of(r) for label, r in by_label.items()}
        ratios: dict[str, Any] = {}
        for key in keys:
            pairs = zip(by_label[top], by_label[base], strict=True)
            each = [_ratio(a.get(key), b.get(key)) for a, b in pairs]
            known = [r for r in each if r is not None]
            ratios[key] = {"each": each, "median": statistics.median(known) if known else None}
        report[scenario] = {"median": medians, f"{top} / {base}": ratios}
        _print(scenario, medians, f"{top} / {base}", ratios)
    return report


def _print(scenario: str, medians: dict[str, Any], name: str, ratios: dict[str, Any]) -> None:
    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"

    shown = ["deliveries_per_s", "p50_ms", "p99_ms", "hub_cpu_pct", "hub_deliveries_per_cpu_s"]
    print(f"\n{scenario}: medians")
    print(
        "| configuration | deliveries/s | p50 ms | p99 ms | server CPU % | deliveries / server"
        " CPU-s | redis µs CPU / delivery | redis bytes / delivery | missing |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for label, m in medians.items():
        cells = [fmt(m[k]) for k in shown]
        cells += [fmt(m["redis_cpu_us_per_delivery"]), fmt(m["redis_bytes_per_delivery"])]
        print(f"| {label} | " + " | ".join(cells) + f" | {m['missing']} |")
    for key, value in ratios.items():
        print(f"ratio {name}, {key}: median x{value['median']} (each: {value['each']})")


def compare_peers(
    args: argparse.Namespace,
    run_once: Callable[[argparse.Namespace, str], dict[str, Any]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """hubbub vs socket.io, interleaved; ratios hubbub / socket.io."""
    ensure_socketio()  # installed before the first measurement, not during it
    configs = [("hubbub", {"peer": "hubbub"}), ("socket.io", {"peer": "socketio"})]
    runs = _interleaved(args, configs, run_once, log)
    keys = ["hub_deliveries_per_cpu_s", "p50_ms", "p99_ms"]
    return {"runs": runs, "report": _report(runs, "hubbub", "socket.io", keys)}


def compare_workers(
    args: argparse.Namespace,
    run_once: Callable[[argparse.Namespace, str], dict[str, Any]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """1 vs N workers on Redis, interleaved; ratios N / 1 (the scaling efficiency)."""
    counts = [int(n) for n in args.compare_workers.split(",")]
    configs = [
        (f"{n} worker{'s' if n > 1 else ''}, redis", {"workers": n, "broker": "redis"})
        for n in counts
    ]
    runs = _interleaved(args, configs, run_once, log)
    top, base = configs[-1][0], configs[0][0]
    keys = ["hub_deliveries_per_cpu_s", "deliveries_per_s", "p99_ms"]
    return {"runs": runs, "report": _report(runs, top, base, keys)}


def add_side_by_side_options(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--peer``, ``--compare-peers``, ``--compare-workers``."""
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="hubbub serve --workers N (above 1 needs --broker redis)",
    )
    parser.add_argument(
        "--peer",
        choices=("hubbub", "socketio"),
        default="hubbub",
        help="the server measured: hubbub, or socket.io v4 (benchmarks/socketio, needs npm)",
    )
    parser.add_argument(
        "--compare-peers",
        action="store_true",
        help="hubbub and socket.io interleaved --reps times; ratios (hub_bench_peers.py)",
    )
    parser.add_argument(
        "--compare-workers",
        metavar="1,2",
        help="worker counts on Redis interleaved --reps times; ratios (hub_bench_peers.py)",
    )


def check_side_by_side_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse combinations that cannot run (exits through ``parser.error``)."""
    if args.workers < 1 or (args.workers > 1 and args.broker != "redis"):
        parser.error("--workers above 1 needs --broker redis")
    if (args.peer == "socketio" or args.compare_peers) and not args.client_binary:
        parser.error("socket.io is driven by the C client only (hub_loadgen.c): set CC")
    if args.compare_peers and args.compare_workers:
        parser.error("--compare-peers or --compare-workers, not both")


def add_cpu_per_delivery(result: dict[str, Any]) -> None:
    """Hub CPU µs per delivery (the inverse of deliveries per hub CPU-second)."""
    per_s = result.get("hub_deliveries_per_cpu_s")
    result["hub_cpu_us_per_delivery"] = round(1e6 / per_s, 2) if per_s else None


__all__ = [
    "add_cpu_per_delivery",
    "add_side_by_side_options",
    "check_side_by_side_options",
    "compare_peers",
    "compare_workers",
    "ensure_socketio",
    "redis_info",
    "redis_per_delivery",
    "start_socketio",
    "wait_healthy",
    "worker_pids",
]
