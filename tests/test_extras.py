"""The optional parts and their extras: the library imports with no dependency at all.

Each test runs a fresh interpreter in which the extras' modules cannot be imported
(an import hook raises ModuleNotFoundError for them, as in an install without the
extra), so that what is already imported in the test process does not hide anything.
scripts/package_check.sh checks the same in a real fresh venv.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

HUB_MODULES = ("jwt", "prometheus_client", "cryptography")
REDIS_MODULES = ("redis",)
THIRD_PARTY = (*HUB_MODULES, *REDIS_MODULES, "uvloop")

HIDE = """
import sys

class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {hidden!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Hide())
"""


def run_without(hidden: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    source = HIDE.format(hidden=hidden) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=60, check=False
    )


def test_library_and_sdk_import_without_any_extra() -> None:
    result = run_without(
        THIRD_PARTY,
        f"""
        import hubbub, hubbub.asyncio, hubbub.sync, hubbub.protocol, hubbub.cli
        import hubbub.hub, hubbub.hub.client, hubbub.hub.settings, hubbub.hub.core.node
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {THIRD_PARTY!r})
        print(loaded)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_echo_round_trip_without_any_extra() -> None:
    result = run_without(
        THIRD_PARTY,
        """
        import asyncio
        from hubbub.asyncio import connect, serve

        async def echo(ws):
            async for message in ws:
                await ws.send(message)

        async def main():
            async with serve(echo, "127.0.0.1", 0) as server:
                async with connect(f"ws://127.0.0.1:{server.port}") as ws:
                    await ws.send("hello")
                    print(await ws.recv())

        asyncio.run(main())
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello"


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("hubbub.hub.auth", "hubbub.hub needs the hub extra: pip install 'hubbub[hub]'"),
        ("hubbub.hub.metrics", "hubbub.hub needs the hub extra: pip install 'hubbub[hub]'"),
        ("hubbub.hub.server", "hubbub.hub needs the hub extra: pip install 'hubbub[hub]'"),
    ],
)
def test_hub_without_hub_extra_names_the_extra(module: str, message: str) -> None:
    result = run_without(
        HUB_MODULES,
        f"""
        import importlib
        from hubbub import MissingExtra
        try:
            importlib.import_module({module!r})
        except ImportError as exc:  # MissingExtra is an ImportError too
            assert isinstance(exc, MissingExtra), type(exc)
            print(exc.extra, exc.name)
            print(exc)
        """,
    )
    assert result.returncode == 0, result.stderr
    extra_line, message_line = result.stdout.splitlines()
    assert extra_line.split()[0] == "hub"
    assert message_line == message


@pytest.mark.parametrize(
    ("hidden", "statement", "message"),
    [
        (
            HUB_MODULES,
            # A lazy name of the package (PEP 562). Not Node: the I/O-free core needs
            # no extra since issue 14; it is handed an Authenticator and HubMetrics.
            "from hubbub.hub import Authenticator",
            "hubbub.hub needs the hub extra: pip install 'hubbub[hub]'",
        ),
        (
            REDIS_MODULES,
            "import hubbub.hub.brokers.redis_broker",
            "the Redis broker (hubbub.hub.brokers.redis_broker) needs the redis extra: "
            "pip install 'hubbub[redis]'",
        ),
    ],
)
def test_optional_part_without_its_extra_names_the_extra(
    hidden: tuple[str, ...], statement: str, message: str
) -> None:
    result = run_without(
        hidden,
        f"""
        from hubbub import MissingExtra
        try:
            {statement}
        except MissingExtra as exc:
            print(exc)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == message


@pytest.mark.parametrize(
    ("hidden", "argv", "message"),
    [
        (
            HUB_MODULES,
            ["serve", "--dev", "--port", "0"],
            "hubbub serve needs the hub extra: pip install 'hubbub[hub]'",
        ),
        (
            HUB_MODULES,
            ["token", "alice", "--secret", "s" * 32],
            "hubbub token needs the hub extra: pip install 'hubbub[hub]'",
        ),
        (
            REDIS_MODULES,
            ["serve", "--dev", "--port", "0", "--broker", "redis://127.0.0.1:1/0"],
            "hubbub serve needs the redis extra: pip install 'hubbub[redis]'",
        ),
    ],
)
def test_cli_without_extra_prints_one_line(
    hidden: tuple[str, ...], argv: list[str], message: str
) -> None:
    result = run_without(
        hidden,
        f"""
        from hubbub.cli import main
        sys.exit(main({argv!r}))
        """,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_cli_echo_help_without_any_extra() -> None:
    result = run_without(
        THIRD_PARTY,
        """
        from hubbub.cli import main
        main(["echo", "--help"])
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "Echo every message back" in result.stdout
