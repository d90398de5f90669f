"""The Origin check of the hub and of ``hubbub echo`` (issue 12, finding 8)."""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys

import pytest
from hub_helpers import SECRET
from raw_client import RawClient

from hubbub.hub.server import start_hub
from hubbub.hub.server.origins import OriginPolicy
from hubbub.hub.settings import settings


@pytest.mark.parametrize(
    ("origins", "host", "allowed"),
    [
        ([], "hub.example:8765", True),  # not a browser
        (["http://hub.example:8765"], "hub.example:8765", True),  # same origin
        (["HTTP://Hub.Example:8765"], "hub.example:8765", True),
        (["https://hub.example"], "hub.example", True),  # default ports
        (["https://hub.example:443"], "hub.example", True),
        (["http://hub.example"], "hub.example:80", True),
        (["https://hub.example"], "hub.example:8443", False),  # another port
        (["http://evil.example"], "hub.example", False),  # another site
        (["http://hub.example.evil.example"], "hub.example", False),
        (["http://evil.example@hub.example"], "hub.example", False),
        (["null"], "hub.example", False),  # sandboxed page, file://
        (["http://hub.example"], None, False),
        (["http://hub.example", "http://hub.example"], "hub.example", False),
        (["http://[::1]:8765"], "[::1]:8765", True),
        (["http://hub.example/path"], "hub.example", False),
    ],
)
def test_default_policy(origins: list[str], host: str | None, allowed: bool) -> None:
    assert OriginPolicy().allows(origins, host) is allowed


def test_listed_and_any() -> None:
    policy = OriginPolicy(["https://app.example/", "http://localhost:3000"])
    assert policy.allows(["https://APP.example"], "hub.example")
    assert policy.allows(["http://localhost:3000"], "hub.example")
    assert not policy.allows(["http://localhost:3001"], "hub.example")
    assert OriginPolicy(["*"]).allows(["http://evil.example"], "hub.example")


async def test_hub_refuses_another_site_over_a_real_socket() -> None:
    async with start_hub("127.0.0.1", 0, secret=SECRET) as hub:
        own = f"http://127.0.0.1:{hub.port}"
        for origin, status in [
            (None, 101),
            (own, 101),
            ("https://evil.example", 403),
            ("null", 403),
        ]:
            client = await RawClient.open(hub.port, origin=origin)
            assert client.status == status, origin
            client.close()
    async with start_hub("127.0.0.1", 0, secret=SECRET, origins=["https://app.example"]) as hub:
        for origin, status in [("https://app.example", 101), ("https://evil.example", 403)]:
            client = await RawClient.open(hub.port, origin=origin)
            assert client.status == status, origin
            client.close()


def test_serve_origins_from_flags_environment_and_file() -> None:
    flags = argparse.Namespace(origins=["https://a.example", "https://b.example"])
    assert settings(flags, {})[0]["origins"] == ["https://a.example", "https://b.example"]
    env = {"HUBBUB_ORIGINS": "https://a.example, https://c.example"}
    assert settings(argparse.Namespace(), env)[0]["origins"] == [
        "https://a.example",
        "https://c.example",
    ]
    assert settings(argparse.Namespace(), {})[0]["origins"] == []


async def test_echo_origin_flag() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubbub",
        "echo",
        "--port",
        "0",
        "--origin",
        "https://app.example",
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        match = re.search(r":(\d+)$", line.strip())
        assert match, line
        port = int(match.group(1))
        for origin, status in [
            ("https://app.example", 101),
            (None, 101),
            ("https://evil.example", 403),
        ]:
            client = await RawClient.open(port, origin=origin)
            assert client.status == status, origin
            client.close()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
