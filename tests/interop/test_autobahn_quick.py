"""A handful of Autobahn|Testsuite cases through the real harness, as part of pytest.

The full compliance run (301 cases per side) belongs to ``scripts/test.sh``; these few cases
catch a broken harness or a gross regression in seconds. The cases are ones where sloppy
implementations go wrong: 5.15 (a continuation frame after the message ended), 6.4.3 (invalid
UTF-8 that must be noticed mid-message, not at its end), 7.1.5 (a close frame in the middle of
a fragmented message must still be answered with 1000), 9.1.1 (a 64 KiB message).

A second test runs the same harness against the ``websockets`` library, which is NON-STRICT on
3.2 and FAILS 7.1.5: the harness must say so, or a green result would mean nothing.

Needs wstest installed by ``compliance/install_wstest.sh`` (``scripts/test.sh`` does it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.peer, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "compliance" / "run_autobahn.py"


def wstest_home() -> Path:
    """Where install_wstest.sh puts wstest (same default as the script)."""
    if "WSTEST_HOME" in os.environ:
        return Path(os.environ["WSTEST_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "hubbub" / "wstest"


@pytest.fixture(scope="module")
def wstest_installed() -> None:
    home = wstest_home()
    if not ((home / "STAMP").is_file() and (home / "py27" / "bin" / "wstest").is_file()):
        pytest.skip(f"wstest is not installed in {home}: run compliance/install_wstest.sh")


def run_autobahn(out: Path, testee: str, cases: list[str]) -> tuple[int, dict[str, Any]]:
    """Run both sides; return the exit status and each side's summary.json."""
    result = subprocess.run(
        [
            *(sys.executable, str(RUNNER), "both", "--testee", testee, "--cases", *cases),
            *("--out", str(out), "--timeout", "120"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summaries = {}
    for side in ("server", "client"):
        path = out / f"{testee}-{side}" / "summary.json"
        assert path.is_file(), f"no {side} summary; stderr:\n{result.stderr[-3000:]}"
        summaries[side] = json.loads(path.read_text())
    return result.returncode, summaries


def behaviors(summary: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["case_id"]: (c["behavior"], c["behavior_close"]) for c in summary["cases"]}


@pytest.mark.usefixtures("wstest_installed")
def test_hubbub_passes_the_tricky_cases_on_both_sides(tmp_path: Path) -> None:
    cases = ["1.1.1", "5.15", "6.4.3", "7.1.5", "9.1.1"]
    returncode, summaries = run_autobahn(tmp_path, "hubbub", cases)
    for side, summary in summaries.items():
        assert behaviors(summary) == dict.fromkeys(cases, ("OK", "OK")), side
        assert summary["missing"] == 0
    assert returncode == 0


@pytest.mark.usefixtures("wstest_installed")
def test_harness_reports_the_known_failures_of_websockets(tmp_path: Path) -> None:
    returncode, summaries = run_autobahn(tmp_path, "websockets", ["1.1.1", "3.2", "7.1.5"])
    for side, summary in summaries.items():
        found = behaviors(summary)
        assert found["1.1.1"] == ("OK", "OK"), side
        assert found["3.2"][0] == "NON-STRICT", side
        assert found["7.1.5"][0] == "FAILED", side
        assert summary["exit_code"] == 1
        assert "-> FAIL" in summary["summary"]
    assert returncode == 1
