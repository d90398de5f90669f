"""The hub in a Django ASGI project: mounted at /hub, published to from Django views.

A real uvicorn (hubbub's WebSocket implementation, lifespan on) serves
``with_hub(get_asgi_application(), hub)``; the clients are ``websockets`` and ``httpx``.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import websockets
from asgi_helpers import WAIT, Peer, running

from hubbub.hub import SUBPROTOCOL

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project")


async def test_django_views_publish_and_send_to_hub_clients() -> None:
    import django_project

    app: Any = django_project.application()
    async with running(app, lifespan="on") as port:
        base = f"http://127.0.0.1:{port}"
        uri = f"ws://127.0.0.1:{port}/hub/"
        async with (
            httpx.AsyncClient(base_url=base, timeout=WAIT) as http,
            websockets.connect(uri, subprotocols=[SUBPROTOCOL]) as ws,
        ):
            health = await http.get("/hub/healthz")
            assert health.json()["ok"] is True  # the hub answered the lifespan
            peer = Peer(ws)
            assert (await peer.call("connect", name="dora"))["result"]["user"] == "dora"
            assert "result" in await peer.call("subscribe", channel="chat:lobby")
            answer = await http.post("/announce", json={"text": "hello from django"})
            assert answer.status_code == 200
            pub = await peer.push("pub")
            assert pub["data"] == {"text": "hello from django", "via": "async view"}
            assert pub["offset"] == answer.json()["offset"]
            sent = await http.post("/notify/dora")
            assert sent.status_code == 200
            assert (await peer.push("message"))["data"] == {"text": "from a sync view"}
            # Everything else is Django's: its own 404.
            assert (await http.get("/elsewhere")).status_code == 404
