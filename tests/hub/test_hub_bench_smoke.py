"""The hub benchmark (benchmarks/hub_bench.py) at tiny scale against a real hub.

It runs as a subprocess, as a person would run it: it starts ``hubbub serve``
itself and forks its client processes, which pytest's process should not do.
Both clients are run: the C one (``hub_loadgen.c``, built on first use) and
the Python fallback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "hub_bench.py"


HAVE_CC = shutil.which(os.environ.get("CC", "gcc")) is not None or shutil.which("cc") is not None


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "client",
    [
        "python",
        pytest.param(
            "c", marks=pytest.mark.skipif(not HAVE_CC, reason="no C compiler for hub_loadgen.c")
        ),
    ],
)
def test_hub_bench_tiny_run_reports_sane_numbers(tmp_path: Path, client: str) -> None:
    out = tmp_path / "bench.json"
    args = ["--subscribers", "50", "--users", "50", "--duration", "1", "--warmup", "0.2"]
    args += ["--processes", "2", "--drain", "5", "--connect-timeout", "10", "--client", client]
    subprocess.run(
        [sys.executable, str(BENCH), "fanout,direct", *args, "--quiet", "--json", str(out)],
        check=True,
        timeout=50,
        capture_output=True,
    )
    report = json.loads(out.read_text())
    assert report["args"]["client"] == client
    for scenario in ("fanout", "direct"):
        (run,) = report[scenario]["runs"]
        assert run["connections"] == 50
        assert run["deliveries"] > 0
        assert run["deliveries_per_s"] > 0
        assert run["latency_samples"] > 0
        assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
        # Every publication reached every subscriber; every live send arrived once.
        assert run["expected"] > 0
        assert run["total_delivered"] == run["expected"]
        assert run["missing"] == 0
        assert run["closed_connections"] == 0
        assert run["hub_cpu_s"] > 0
        assert run["hub_deliveries_per_cpu_s"] > 0
    fanout = report["fanout"]["runs"][0]
    assert fanout["expected"] == fanout["published"] * 50
    direct = report["direct"]["runs"][0]
    assert direct["sent_not_live"] == 0
    assert direct["expected"] == direct["sent"]


SOCKETIO = BENCH.parent / "socketio" / "node_modules" / "socket.io" / "package.json"


def _socketio_peer(test: Callable[..., None]) -> Callable[..., None]:
    """A peer test against the socket.io server: required in CI, skipped without its packages."""
    for mark in (
        pytest.mark.timeout(90),
        pytest.mark.peer,
        pytest.mark.skipif(not HAVE_CC, reason="no C compiler for hub_loadgen.c"),
        pytest.mark.skipif(
            shutil.which("node") is None or not SOCKETIO.exists(),
            reason="node, or socket.io (cd benchmarks/socketio && npm ci), is not installed",
        ),
    ):
        test = mark(test)
    return test


@_socketio_peer
def test_side_by_side_with_socketio_delivers_everything_on_both(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["fanout,direct", "--compare-peers", "--subscribers", "40", "--users", "40"]
    args += ["--duration", "1", "--warmup", "0.2", "--drain", "5", "--connect-timeout", "10"]
    args += ["--reps", "1", "--quiet", "--json", str(out)]
    subprocess.run([sys.executable, str(BENCH), *args], check=True, timeout=85, capture_output=True)
    report = json.loads(out.read_text())["compare"]
    for scenario in ("fanout", "direct"):
        runs = report["runs"][scenario]
        for label, server in (("hubbub", "hubbub"), ("socket.io", "socketio")):
            (run,) = runs[label]
            # The C client spoke each server's protocol: every delivery arrived.
            assert run["server"] == server
            assert run["deliveries"] > 0
            assert run["missing"] == 0
            assert run["closed_connections"] == 0
            assert run["hub_deliveries_per_cpu_s"] > 0
        ratios = report["report"][scenario]["hubbub / socket.io"]
        assert ratios["hub_deliveries_per_cpu_s"]["median"] > 0


@_socketio_peer
def test_batches_of_publications_arrive_whole_on_both_servers(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["fanout", "--compare-peers", "--subscribers", "40", "--batch", "3"]
    args += ["--duration", "1", "--warmup", "0.2", "--drain", "5", "--connect-timeout", "10"]
    args += ["--reps", "1", "--quiet", "--json", str(out)]
    subprocess.run([sys.executable, str(BENCH), *args], check=True, timeout=85, capture_output=True)
    runs = json.loads(out.read_text())["compare"]["runs"]["fanout"]
    for label in ("hubbub", "socket.io"):
        (run,) = runs[label]
        # POST /api/publish_batch, three publications a request, on both.
        assert run["published"] > 0
        assert run["published"] % 3 == 0
        assert run["total_delivered"] == run["expected"] == run["published"] * 40
        assert run["missing"] == 0
