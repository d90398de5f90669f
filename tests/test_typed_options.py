"""serve() and connect() declare their options (issue 14): a misspelled one fails early.

At run time with a TypeError that names it, before anything listens or
connects; for type checkers, as a mypy error (hubbub.options: TypedDicts with
Unpack), which the last test checks by running mypy on a small program.
"""

from __future__ import annotations

import asyncio
import socket
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hubbub import asyncio as hubbub_asyncio
from hubbub import sync as hubbub_sync

ROOT = Path(__file__).resolve().parent.parent


async def _handler(ws: Any) -> None:
    await ws.close()


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_asyncio_serve_names_a_misspelled_option() -> None:
    with pytest.raises(TypeError, match="ping_intervall"):
        hubbub_asyncio.serve(_handler, "127.0.0.1", 0, ping_intervall=5)  # type: ignore[call-arg]


def test_asyncio_connect_names_a_misspelled_option() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="max_sise"):
            await hubbub_asyncio.connect("ws://127.0.0.1:9/", max_sise=10)  # type: ignore[call-arg]

    asyncio.run(main())


def test_sync_serve_names_a_misspelled_option_and_does_not_keep_listening() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TypeError, match="close_timout"):
        hubbub_sync.serve(_handler, "127.0.0.1", port, close_timout=1)  # type: ignore[call-arg]
    assert _port_is_free(port)


def test_sync_connect_refuses_an_asyncio_only_option_by_name() -> None:
    with pytest.raises(TypeError, match="write_limit"):
        hubbub_sync.connect("ws://127.0.0.1:9/", write_limit=10)  # type: ignore[call-arg]


def test_mypy_rejects_misspelled_and_mistyped_options(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    program = tmp_path / "uses_options.py"
    program.write_text(
        textwrap.dedent(
            """
            from hubbub.asyncio import connect, serve
            from hubbub.sync import connect as sync_connect

            async def handler(ws: object) -> None: ...

            async def main() -> None:
                serve(handler, "127.0.0.1", 0, ping_interval=1.0, write_limit=2**16)
                serve(handler, "127.0.0.1", 0, ping_intervall=1.0)
                await connect("ws://example.com/", max_sise=3)
                sync_connect("ws://example.com/", max_queue="many")
            """
        )
    )
    out, _, status = api.run(
        ["--strict", "--config-file", "/dev/null", "--no-incremental", str(program)]
    )
    assert status == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 3, out  # the first call is right
    assert '"ping_intervall"' in out
    assert '"max_sise"' in out
    assert '"max_queue"' in out
