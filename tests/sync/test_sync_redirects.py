"""Redirects at the handshake, followed by both clients (logic shared in hubbub.adapter)."""

from __future__ import annotations

import asyncio

import pytest

from client_peers import FAST, hubbub_server, respond
from hubbub.adapter import RedirectError, redirect_target
from hubbub.asyncio import connect as async_connect
from hubbub.exceptions import InvalidStatus
from hubbub.protocol.handshake import parse_uri
from hubbub.protocol.http11 import Headers, Response
from hubbub.sync.client import connect


def sync_echo(url: str, **options: object) -> str:
    with connect(url, **{**FAST, **options}) as ws:  # type: ignore[arg-type]
        ws.send("after redirect")
        assert ws.request is not None
        return f"{ws.recv(timeout=5)} {ws.request.path}"


def async_echo(url: str, **options: object) -> str:
    async def main() -> str:
        async with async_connect(url, **{**FAST, **options}) as ws:  # type: ignore[arg-type]
            await ws.send("after redirect")
            assert ws.request is not None
            return f"{await ws.recv()} {ws.request.path}"

    return asyncio.run(main())


CLIENTS = [sync_echo, async_echo]


@pytest.mark.parametrize("client", CLIENTS, ids=["sync", "asyncio"])
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_follows_redirect(client: object, status: int) -> None:
    with hubbub_server() as target:
        location = f"ws://127.0.0.1:{target.port}/new?x=1"
        with hubbub_server(respond(status, location)) as origin:
            answer = client(f"ws://127.0.0.1:{origin.port}/old")  # type: ignore[operator]
    assert answer == "after redirect /new?x=1"


@pytest.mark.parametrize("client", CLIENTS, ids=["sync", "asyncio"])
def test_too_many_redirects(client: object) -> None:
    # A server that redirects to itself, forever.
    with hubbub_server() as loop_server:
        loop_server.stop()
        loop_server.process_request = respond(302, "/again")
        loop_server.start()
        with pytest.raises(RedirectError, match="more than 3 redirects"):
            client(f"ws://127.0.0.1:{loop_server.port}/", max_redirects=3)  # type: ignore[operator]
        with pytest.raises(RedirectError, match="more than 10 redirects"):
            client(f"ws://127.0.0.1:{loop_server.port}/")  # type: ignore[operator]


def test_redirects_can_be_disabled() -> None:
    with hubbub_server(respond(302, "/elsewhere")) as server, pytest.raises(RedirectError):
        sync_echo(f"ws://127.0.0.1:{server.port}/", max_redirects=0)


def test_not_a_redirect() -> None:
    with hubbub_server(respond(404)) as server, pytest.raises(InvalidStatus) as info:
        sync_echo(f"ws://127.0.0.1:{server.port}/")
    assert info.value.response.status == 404


def redirect(status: int, location: str | None) -> InvalidStatus:
    headers = Headers()
    if location is not None:
        headers["Location"] = location
    return InvalidStatus(Response(status, "Redirect", headers))


def test_redirect_target_rules() -> None:
    uri = parse_uri("wss://user:pw@example.com/a/b?q")
    # Relative references resolve against the current URI (RFC 9110 section 10.2.2).
    assert redirect_target(uri, redirect(301, "c"), 0, 10) == parse_uri(
        "wss://user:pw@example.com/a/c"
    )
    # http(s) schemes map to ws(s); credentials do not follow to another host.
    target = redirect_target(uri, redirect(307, "https://other.example/x"), 0, 10)
    assert target == parse_uri("wss://other.example/x")
    with pytest.raises(RedirectError, match="from wss:// to"):
        redirect_target(uri, redirect(302, "ws://example.com/"), 0, 10)
    with pytest.raises(RedirectError, match="without a Location"):
        redirect_target(uri, redirect(302, None), 0, 10)
    with pytest.raises(RedirectError, match="invalid redirect"):
        redirect_target(uri, redirect(302, "ftp://example.com/"), 0, 10)
    assert redirect_target(uri, redirect(404, "/x"), 0, 10) is None
