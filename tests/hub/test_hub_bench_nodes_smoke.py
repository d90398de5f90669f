"""The multi-node hub benchmark (``hub_bench.py --nodes 2 --broker redis``) at tiny scale.

It runs as a subprocess, as a person would run it: it starts a real
``redis-server`` and two ``hubbub serve`` nodes itself and forks its client
processes. Publications go through node 0's HTTP API, so the subscribers on
node 1 receive them only through Redis: the cross-node path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from redis_helpers import REDIS_SERVER

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "hub_bench.py"

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="redis-server is not installed"),
]


@pytest.mark.timeout(40)
def test_two_nodes_on_redis_deliver_everything_across_nodes(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["fanout", "--nodes", "2", "--broker", "redis", "--subscribers", "40"]
    args += ["--duration", "1", "--warmup", "0.2", "--processes", "2", "--drain", "5"]
    args += ["--connect-timeout", "10", "--quiet", "--json", str(out)]
    subprocess.run([sys.executable, str(BENCH), *args], check=True, timeout=35, capture_output=True)
    (run,) = json.loads(out.read_text())["fanout"]["runs"]
    assert (run["nodes"], run["broker"], run["connections"]) == (2, "redis", 40)
    # The subscribers are spread evenly, and every publication reached every
    # one of them on both nodes, in full.
    assert run["connections_per_node"] == [20, 20]
    assert run["published"] > 0
    assert run["delivered_per_node"] == [run["published"] * 20] * 2
    assert run["missing_per_node"] == [0, 0]
    assert run["missing"] == 0
    assert run["closed_connections"] == 0
    # Cross-node latency is measured on node 1's subscribers only.
    assert 0 < run["cross_latency_samples"] < run["latency_samples"]
    assert 0 < run["cross_p50_ms"] <= run["cross_p99_ms"] <= run["max_ms"]
    assert 0 < run["p50_ms"] <= run["p99_ms"]
    # CPU of both nodes and of redis-server, and the per-CPU-second figures.
    assert len(run["hub_cpu_pct_per_node"]) == 2
    assert all(pct > 0 for pct in run["hub_cpu_pct_per_node"])
    assert run["redis_cpu_s"] > 0
    assert run["hub_deliveries_per_cpu_s"] > run["deliveries_per_cpu_s_with_redis"] > 0


@pytest.mark.timeout(90)
def test_one_and_two_workers_compared_deliver_everything(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["direct", "--compare-workers", "1,2", "--users", "40", "--reps", "1"]
    args += ["--duration", "1", "--warmup", "0.2", "--drain", "5"]
    args += ["--connect-timeout", "10", "--quiet", "--json", str(out)]
    subprocess.run([sys.executable, str(BENCH), *args], check=True, timeout=85, capture_output=True)
    report = json.loads(out.read_text())["compare"]
    one, two = (
        report["runs"]["direct"][label][0] for label in ("1 worker, redis", "2 workers, redis")
    )
    assert (one["workers"], two["workers"]) == (1, 2)
    for run in (one, two):
        assert run["broker"] == "redis"
        assert run["sent"] > 0
        assert run["missing"] == 0
        assert run["closed_connections"] == 0
        # What the capacity model (docs/scaling.md) reads: Redis per delivery.
        assert run["redis_bytes_per_delivery"] > 0
        assert run["redis_cpu_us_per_delivery"] > 0
        assert run["hub_cpu_us_per_delivery"] > 0
    # The supervisor and both workers count as the hub's CPU.
    assert len(two["hub_cpu_pct_per_node"]) == 3
    ratios = report["report"]["direct"]["2 workers, redis / 1 worker, redis"]
    assert ratios["hub_deliveries_per_cpu_s"]["median"] > 0
