"""The hub as an ASGI app (hubbub.hub.server.asgi) mounted in FastAPI, under a real uvicorn.

Clients are real: ``websockets`` speaking ``hubbub.json.v1`` and ``httpx`` over
loopback; uvicorn runs hubbub's WebSocket implementation, with the app's lifespan.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgpack
import pytest
import websockets
from asgi_helpers import WAIT, Peer, received_close, running
from fastapi import FastAPI
from websockets.exceptions import InvalidStatus

from hubbub.hub import SUBPROTOCOL
from hubbub.hub.core.binary import MSGPACK_SUBPROTOCOL
from hubbub.hub.server.asgi import HandshakeInfo, HubApp, asgi_app


@asynccontextmanager
async def fastapi_with_hub(hub: HubApp) -> AsyncIterator[tuple[int, httpx.AsyncClient]]:
    app = FastAPI(lifespan=hub.lifespan)
    app.mount("/hub", hub)

    @app.post("/announce")
    async def announce(text: str) -> dict[str, Any]:
        return await hub.publish("chat:lobby", {"text": text})

    @app.post("/notify/{user}")
    async def notify(user: str) -> Any:
        return await hub.send([user], {"text": "for you"})

    async with running(app, lifespan="on") as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
            yield port, http


async def test_mounted_hub_serves_page_health_metrics_and_websocket() -> None:
    hub = asgi_app(insecure_dev_mode=True)
    async with fastapi_with_hub(hub) as (port, http):
        # Starlette's Mount (307) or the hub itself (308): the page needs its slash.
        redirect = await http.get("/hub")
        assert redirect.status_code in (307, 308)
        assert redirect.headers["location"].endswith("/hub/")
        page = await http.get("/hub/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert 'src="chat.js"' in page.text  # relative: works under the mount
        assert (await http.get("/hub/hubbub.js")).text.startswith("//")
        health = await http.get("/hub/healthz")
        assert health.status_code == 200
        assert health.json()["ok"] is True  # the lifespan started the broker
        assert "hubbub_connections" in (await http.get("/hub/metrics")).text
        assert (await http.get("/hub/nothing")).status_code == 404

        uri = f"ws://127.0.0.1:{port}/hub/"
        async with websockets.connect(uri, subprotocols=[SUBPROTOCOL]) as ws:
            alice = Peer(ws)
            assert (await alice.call("connect", name="alice"))["result"]["user"] == "alice"
            assert "result" in await alice.call("subscribe", channel="chat:lobby")
            # A FastAPI handler publishes through the in-process Python API.
            published = await http.post("/announce", params={"text": "from the app"})
            assert published.status_code == 200
            pub = await alice.push("pub")
            assert (pub["channel"], pub["data"]) == ("chat:lobby", {"text": "from the app"})
            assert pub["offset"] == published.json()["offset"]
            sent = await http.post("/notify/alice")
            assert sent.status_code == 200
            message = await alice.push("message")
            assert message["data"] == {"text": "for you"}


async def test_shutdown_closes_clients_then_drains_the_hub() -> None:
    hub = asgi_app(insecure_dev_mode=True)
    async with fastapi_with_hub(hub) as (port, _):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/hub/", subprotocols=[SUBPROTOCOL])
        await Peer(ws).call("connect", name="bob")
        assert hub.node.health()["sessions"] == 1
    # uvicorn closes connections first (1012, Service Restart: clients reconnect),
    # then runs the lifespan's shutdown, which stops the hub.
    async with asyncio.timeout(WAIT):
        await ws.wait_closed()
    assert received_close(ws.protocol.close_exc) == (1012, "")
    assert hub.started is False
    assert hub.node.health()["sessions"] == 0


async def test_websocket_needs_the_subprotocol() -> None:
    hub = asgi_app(insecure_dev_mode=True)
    async with fastapi_with_hub(hub) as (port, _):
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(f"ws://127.0.0.1:{port}/hub/"):
                pass
    assert caught.value.response.status_code == 400
    assert SUBPROTOCOL.encode() in caught.value.response.body


async def test_auth_hook_identifies_connections_from_the_cookie() -> None:
    seen: list[HandshakeInfo] = []

    async def authenticate(info: HandshakeInfo) -> str | None:
        seen.append(info)
        return {"s3cret-session": "carol"}.get(info.cookies.get("session", ""))

    hub = asgi_app(authenticate=authenticate)
    async with fastapi_with_hub(hub) as (port, _):
        uri = f"ws://127.0.0.1:{port}/hub/"
        cookie = {"Cookie": "theme=dark; session=s3cret-session"}
        async with websockets.connect(
            uri, subprotocols=[SUBPROTOCOL], additional_headers=cookie
        ) as ws:
            reply = await Peer(ws).call("connect")  # no token: the handshake said who
            assert reply["result"]["user"] == "carol"
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(uri, subprotocols=[SUBPROTOCOL]):
                pass
        assert caught.value.response.status_code == 401
    assert seen[0].cookies == {"theme": "dark", "session": "s3cret-session"}
    assert seen[0].scope["root_path"] == "/hub"


async def test_pages_of_other_sites_cannot_connect_with_the_users_cookie() -> None:
    # Cross-site WebSocket hijacking (RFC 6455 section 10.2): the browser sends
    # the signed-in user's cookie with a handshake opened by any page.
    async def authenticate(info: HandshakeInfo) -> str | None:
        return {"s3cret-session": "carol"}.get(info.cookies.get("session", ""))

    hub = asgi_app(authenticate=authenticate, origins=["https://app.example.com"])
    async with fastapi_with_hub(hub) as (port, _):
        uri = f"ws://127.0.0.1:{port}/hub/"
        cookie = {"Cookie": "session=s3cret-session"}
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(
                uri,
                subprotocols=[SUBPROTOCOL],
                additional_headers=cookie,
                origin="https://evil.example",  # type: ignore[arg-type]
            ):
                pass
        assert caught.value.response.status_code == 403
        assert b"origin not allowed" in caught.value.response.body
        for origin in (f"http://127.0.0.1:{port}", "https://app.example.com"):
            async with websockets.connect(
                uri,
                subprotocols=[SUBPROTOCOL],
                additional_headers=cookie,
                origin=origin,  # type: ignore[arg-type]
            ) as ws:
                reply = await Peer(ws).call("connect")
                assert reply["result"]["user"] == "carol"


async def test_metrics_token_protects_metrics_under_the_mount() -> None:
    hub = asgi_app(insecure_dev_mode=True, metrics_token="m" * 32)
    async with fastapi_with_hub(hub) as (_, http):
        refused = await http.get("/hub/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = await http.get("/hub/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        allowed = await http.get("/hub/metrics", headers={"Authorization": "Bearer " + "m" * 32})
        assert allowed.status_code == 200
        assert "hubbub_connections" in allowed.text
    with pytest.raises(ValueError, match="must not be empty"):
        asgi_app(insecure_dev_mode=True, metrics_token="")


async def test_without_auth_hook_connect_needs_credentials() -> None:
    hub = asgi_app(secret="s" * 32)
    async with fastapi_with_hub(hub) as (port, _):
        uri = f"ws://127.0.0.1:{port}/hub/"
        async with websockets.connect(uri, subprotocols=[SUBPROTOCOL]) as ws:
            peer = Peer(ws)
            assert (await peer.call("connect"))["error"]["code"] == 102  # INVALID_PARAMS
            assert (await peer.call("connect", name="eve"))["error"]["code"] == 200


async def test_http_api_under_the_mount() -> None:
    hub = asgi_app(insecure_dev_mode=True, api_key="k" * 20)
    async with fastapi_with_hub(hub) as (_, http):
        refused = await http.post("/hub/api/publish", json={"channel": "news", "data": 1})
        assert refused.status_code == 401
        answer = await http.post(
            "/hub/api/publish",
            json={"channel": "news", "data": {"n": 1}},
            headers={"Authorization": "Bearer " + "k" * 20},
        )
        assert answer.status_code == 200
        assert answer.json()["offset"] == 1


async def test_hub_without_lifespan_says_so() -> None:
    hub = asgi_app(insecure_dev_mode=True)
    app = FastAPI()  # the lifespan was forgotten
    app.mount("/hub", hub)
    async with running(app, lifespan="on") as port, httpx.AsyncClient(timeout=WAIT) as http:
        answer = await http.get(f"http://127.0.0.1:{port}/hub/healthz")
    assert answer.status_code == 503
    assert "hub.lifespan" in answer.json()["error"]


def test_asgi_app_needs_some_authentication() -> None:
    with pytest.raises(ValueError, match="authenticate, a secret"):
        asgi_app()


async def test_msgpack_and_json_sessions_under_the_mount() -> None:
    """hubbub.msgpack.v1 through the ASGI app: binary frames, the same pushes as JSON."""
    hub = asgi_app(insecure_dev_mode=True)
    async with fastapi_with_hub(hub) as (port, http):
        uri = f"ws://127.0.0.1:{port}/hub/"
        async with (
            websockets.connect(uri, subprotocols=[MSGPACK_SUBPROTOCOL]) as binary_ws,
            websockets.connect(uri, subprotocols=[SUBPROTOCOL]) as text_ws,
        ):
            assert binary_ws.subprotocol == MSGPACK_SUBPROTOCOL
            ids = 0

            async def call(method: str, **params: Any) -> Any:
                nonlocal ids
                ids += 1
                await binary_ws.send(msgpack.packb({"id": ids, "method": method, "params": params}))
                while True:
                    raw = await asyncio.wait_for(binary_ws.recv(), WAIT)
                    assert isinstance(raw, bytes)  # binary frames only
                    message = msgpack.unpackb(raw)
                    if message.get("id") in (ids, None):
                        return message

            assert (await call("connect", name="mp"))["result"]["user"] == "mp"
            assert "result" in await call("subscribe", channel="chat:lobby")
            json_peer = Peer(text_ws)
            await json_peer.call("connect", name="js")
            await json_peer.call("subscribe", channel="chat:lobby")
            await call("publish", channel="chat:lobby", data={"n": [1, 2.5]})
            assert (await json_peer.push("pub"))["data"] == {"n": [1, 2.5]}
            await http.post("/announce", params={"text": "from the app"})
            raw = await asyncio.wait_for(binary_ws.recv(), WAIT)
            while msgpack.unpackb(raw).get("push") != "pub" or b"from the app" not in raw:
                raw = await asyncio.wait_for(binary_ws.recv(), WAIT)
            assert msgpack.unpackb(raw)["data"] == {"text": "from the app"}
            refused = await call("ping", bad=b"bytes")  # a bin value: refused, id null
            assert refused["error"]["code"] == 100
            assert "bin values are not supported" in refused["error"]["message"]
