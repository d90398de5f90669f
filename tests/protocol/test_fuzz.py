"""A short, bounded fuzz run of the parsers (the long runs live in fuzzing/).

The targets in ``fuzzing/targets.py`` raise when a parser raises an exception
it does not document (``IndexError``, ``ValueError``, ...), breaks an
invariant, or behaves differently when its input arrives in pieces. Here they
are fed by Hypothesis, with structured inputs (mostly valid frames and HTTP
heads with mistakes sprinkled in) and with raw bytes; with atheris installed,
a few seconds of coverage-guided fuzzing run as well.

``HUBBUB_FUZZ_EXAMPLES`` sets how many examples each property runs (default
100: a few seconds in all).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

FUZZING_DIR = Path(__file__).resolve().parents[2] / "fuzzing"
sys.path.insert(0, str(FUZZING_DIR))

import seeds  # noqa: E402
import strategies  # noqa: E402
import targets  # noqa: E402

pytestmark = pytest.mark.fuzz

fuzz_settings = settings(
    max_examples=int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


# Inputs that found bugs, kept as regression examples.
REGRESSIONS = [
    # max_size 0 with an extension: an untransformed text frame got the slack
    # meant for compressed data, so it failed with 1007 when it arrived in
    # pieces and with 1009 when it arrived whole.
    bytes.fromhex("832c810668c3002c28240301000000000000ff0104667261678904"),
    # A surrogate (\xed\xa9) in a text frame arriving in pieces failed with a
    # close reason other than when it arrived whole.
    bytes.fromhex(
        "032c810668eda96c6c6f89047069032889040189898989008989893089898989"
        "7774898989898989898989898978"
    ),
]


@fuzz_settings
@given(strategies.frame_inputs())
@example(REGRESSIONS[0])
@example(REGRESSIONS[1])
def test_frames_structured(data: bytes) -> None:
    targets.fuzz_frames(data)


@fuzz_settings
@given(st.binary(min_size=2, max_size=300))
def test_frames_raw(data: bytes) -> None:
    targets.fuzz_frames(data)


@pytest.mark.parametrize("seed", seeds.frame_seeds())
def test_frame_seeds(seed: bytes) -> None:
    # The seeds are valid: every message and ping in them comes out.
    targets.fuzz_frames(seed)
    config = targets.Config.from_bytes(seed[:2])
    conn, events, _ = targets.run_connection(config, [seed[2:]])
    assert conn.close_exc is None
    assert len(events) >= 6


@pytest.mark.parametrize("seed", seeds.http_seeds())
def test_http_seeds(seed: bytes) -> None:
    targets.HTTP_TARGETS[seed[0]](seed[1:])


# A TLS ClientHello on a plain port (found by fuzz_http.py): the server closes
# without an HTTP answer, which the target once took for an incomplete response.
TLS_ON_PLAIN_PORT = b"\x16\x03\x03HTTP/1.1 101 Switching Protocols\r\n\r\n"


def test_server_handshake_tls_client_hello() -> None:
    targets.fuzz_server_handshake(TLS_ON_PLAIN_PORT)


@fuzz_settings
@given(strategies.request_inputs())
def test_request_parser(data: bytes) -> None:
    targets.fuzz_request(data)
    targets.fuzz_server_handshake(data)


@fuzz_settings
@given(strategies.response_inputs())
def test_response_parser(data: bytes) -> None:
    targets.fuzz_response(data)
    targets.fuzz_client_handshake(data)


@fuzz_settings
@given(st.one_of(st.binary(max_size=100), st.text(max_size=60).map(str.encode)))
def test_uri_and_extension_header(data: bytes) -> None:
    targets.fuzz_uri(data)
    targets.fuzz_uri(b"ws://" + data)
    targets.fuzz_extension_header(data)


def test_targets_detect_an_undocumented_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness is not vacuous: a parser bug surfaces as a failure."""
    from hubbub.protocol import connection

    def broken(*args: object) -> None:
        raise IndexError("simulated parser bug")

    monkeypatch.setattr(connection.Connection, "_control_frame", broken)
    with pytest.raises(IndexError):
        targets.fuzz_frames(b"\x00\x00" + bytes.fromhex("8980") + b"\x00" * 4)


def test_targets_detect_a_broken_invariant(monkeypatch: pytest.MonkeyPatch) -> None:
    from hubbub.protocol import sending

    monkeypatch.setattr(sending.FrameWriter, "write", lambda self, *args, **kwargs: None)
    with pytest.raises(targets.InvariantError, match="pings and pongs"):
        targets.fuzz_frames(b"\x00\x00" + bytes.fromhex("8980") + b"\x00" * 4)


@pytest.mark.skipif(find_spec("atheris") is None, reason="atheris is not installed")
@pytest.mark.parametrize("script", ["fuzz_frames.py", "fuzz_http.py", "fuzz_hub.py"])
def test_atheris_short_run(script: str, tmp_path: Path) -> None:
    """A few seconds of coverage-guided fuzzing, from the seeds."""
    proc = subprocess.run(
        [
            sys.executable,
            script,
            str(tmp_path / "corpus"),
            "-max_total_time=2",
            f"-artifact_prefix={tmp_path}/",
            "-print_final_stats=1",
        ],
        cwd=FUZZING_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done" in proc.stderr
    assert not list(tmp_path.glob("crash-*"))
