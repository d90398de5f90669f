"""hubbub as uvicorn's WebSocket implementation, under a real uvicorn, against real clients.

Each test states one point of the ASGI WebSocket spec (2.4, with the
``websocket.http.response`` extension) or of uvicorn's behaviour that apps rely on.
Raw ASGI apps where the point is the exact messages; Starlette/FastAPI where it is
what users write.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from asgi_helpers import (
    WAIT,
    masked_frame,
    raw_handshake,
    read_frame,
    received_close,
    running,
    upgrade_request,
)
from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from client_peers import tls_contexts

Scope = dict[str, Any]


def recorder() -> tuple[asyncio.Queue[Any], Any]:
    """A queue and a raw ASGI app factory feeding it what the app saw."""
    seen: asyncio.Queue[Any] = asyncio.Queue()
    return seen, seen.put_nowait


async def starlette_echo(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(
        subprotocol="chat" if "chat" in offered else None, headers=[(b"x-app", b"yes")]
    )
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


ECHO = Starlette(routes=[WebSocketRoute("/ws", starlette_echo)])


async def test_starlette_echo_text_bytes_subprotocol_and_headers() -> None:
    async with running(ECHO) as port:
        uri = f"ws://127.0.0.1:{port}/ws"
        async with websockets.connect(uri, subprotocols=["other", "chat"]) as ws:
            assert ws.subprotocol == "chat"
            headers = ws.response.headers
            assert headers["x-app"] == "yes"
            assert headers["server"] == "uvicorn"  # uvicorn's default headers
            assert "date" in headers
            assert "permessage-deflate" in headers["sec-websocket-extensions"]
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\xff" * 40000)
            assert await ws.recv() == b"\x00\xff" * 40000
            await ws.send("")
            assert await ws.recv() == ""


async def test_deflate_off_with_ws_per_message_deflate_false() -> None:
    async with running(ECHO, ws_per_message_deflate=False) as port:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
        async with ws:
            assert "sec-websocket-extensions" not in ws.response.headers
            await ws.send("plain")
            assert await ws.recv() == "plain"


async def test_scope_follows_the_asgi_spec() -> None:
    seen: asyncio.Queue[Scope] = asyncio.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.put_nowait(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})

    async with running(app, root_path="/mount") as port:
        uri = f"ws://127.0.0.1:{port}/a%20b/c?x=1&y=%C3%A9"
        async with websockets.connect(
            uri, subprotocols=["one", "two"], additional_headers={"X-Custom": "V"}
        ) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        scope = seen.get_nowait()
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["root_path"] == "/mount"
    assert scope["path"] == "/mount/a b/c"
    assert scope["raw_path"] == b"/mount/a%20b/c"
    assert scope["query_string"] == b"x=1&y=%C3%A9"
    assert scope["subprotocols"] == ["one", "two"]
    assert scope["server"] == ("127.0.0.1", port)
    assert scope["client"][0] == "127.0.0.1"
    assert (b"x-custom", b"V") in scope["headers"]
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert scope["extensions"] == {"websocket.http.response": {}}


async def test_app_closes_with_code_and_reason() -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
        seen.put_nowait(await receive())

    async with running(app) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
        assert received_close(caught.value) == (4001, "bye now")
        async with asyncio.timeout(WAIT):
            event = await seen.get()
    assert event == {"type": "websocket.disconnect", "code": 4001, "reason": "bye now"}


async def test_client_close_reaches_the_app_after_its_messages() -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(0)  # the client's messages and close pile up meanwhile
        while True:
            message = await receive()
            seen.put_nowait(message)
            if message["type"] == "websocket.disconnect":
                # Reading again after the disconnect returns it again, never hangs.
                seen.put_nowait(await receive())
                try:
                    await send({"type": "websocket.send", "text": "too late"})
                except OSError as exc:  # the spec: an OSError subclass
                    seen.put_nowait(type(exc).__name__)
                return

    async with running(app) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("one")
            await ws.send(b"two")
            await ws.close(4002, "client done")
        async with asyncio.timeout(WAIT):
            got = [await seen.get() for _ in range(5)]
    disconnect = {"type": "websocket.disconnect", "code": 4002, "reason": "client done"}
    assert got == [
        {"type": "websocket.receive", "text": "one"},
        {"type": "websocket.receive", "bytes": b"two"},
        disconnect,
        disconnect,
        "ClientDisconnected",
    ]


async def test_close_before_accept_is_a_403() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close"})

    async with running(app) as port:
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(f"ws://127.0.0.1:{port}/"):
                pass
    assert caught.value.response.status_code == 403
    assert caught.value.response.headers["server"] == "uvicorn"


async def test_denial_response_extension() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"X")],
            }
        )
        body = {"type": "websocket.http.response.body", "body": b'{"error":', "more_body": True}
        await send(body)
        await send({"type": "websocket.http.response.body", "body": b' "sign in"}'})

    async with running(app) as port:
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(f"ws://127.0.0.1:{port}/"):
                pass
    response = caught.value.response
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"] == "X"
    assert json.loads(response.body) == {"error": "sign in"}


async def test_ws_max_size_closes_with_1009() -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        seen.put_nowait(await receive())
        seen.put_nowait(await receive())

    async with running(app, ws_max_size=1000) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(b"x" * 1000)  # exactly the limit: accepted
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
        reason = "message of at least 1001 bytes exceeds limit of 1000"
        assert received_close(caught.value) == (1009, reason)
        async with asyncio.timeout(WAIT):
            assert await seen.get() == {"type": "websocket.receive", "bytes": b"x" * 1000}
            event = await seen.get()
    assert event["type"] == "websocket.disconnect"
    assert event["code"] == 1009
    assert event["reason"] == "message of at least 1001 bytes exceeds limit of 1000"


async def test_messages_before_a_protocol_error_reach_the_app_first() -> None:
    # RFC 6455 section 5.1: an unmasked client frame fails the connection (1002),
    # but the valid message before it is delivered (and echoed) first.
    async with running(ECHO) as port:
        reader, writer, head = await raw_handshake(port, upgrade_request())
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(masked_frame(0x1, b"valid") + b"\x81\x03bad")
        assert await read_frame(reader) == (0x1, b"valid")
        opcode, payload = await read_frame(reader)
        assert opcode == 0x8
        assert int.from_bytes(payload[:2]) == 1002
        writer.close()


async def test_answers_to_a_burst_come_back_in_order_in_fewer_writes() -> None:
    # 50 messages in one TCP segment: the app answers each while more wait to be
    # read, and those small answers are written together (fewer system calls).
    async with running(ECHO) as port:
        reader, writer, head = await raw_handshake(port, upgrade_request())
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(b"".join(masked_frame(0x1, b"m%d" % i) for i in range(50)))
        got = [await read_frame(reader) for _ in range(50)]
        assert got == [(0x1, b"m%d" % i) for i in range(50)]
        writer.close()


async def test_answer_held_back_for_a_burst_is_written_when_the_app_stops_reading() -> None:
    # The app answers the first of two queued messages, then neither reads nor
    # sends again: the answer held back for the next one must still go out.
    release = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        while not message.get("text"):
            message = await receive()
        await send({"type": "websocket.send", "text": "answer to " + message["text"]})
        await release.wait()  # blocked elsewhere: nothing may stay held back meanwhile

    async with running(app) as port:
        reader, writer, head = await raw_handshake(port, upgrade_request())
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(masked_frame(0x1, b"one") + masked_frame(0x1, b"two"))
        assert await read_frame(reader) == (0x1, b"answer to one")
        release.set()
        writer.close()


async def test_invalid_handshake_is_refused_before_the_app() -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        called.append(scope)

    async with running(app) as port:
        # Section 4.4: an unsupported version gets 426 with the versions we speak.
        _, writer, head = await raw_handshake(port, upgrade_request(version="8"))
        writer.close()
        assert head.startswith(b"HTTP/1.1 426 ")
        assert b"Sec-WebSocket-Version: 13" in head
        assert b"server: uvicorn" in head
    assert called == []


async def test_app_error_after_accept_closes_with_1011_and_before_with_500() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/late":
            await send({"type": "websocket.accept"})
        raise RuntimeError("the app broke (expected by the test)")

    async with running(app, log_level="critical") as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/late") as ws:
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
        assert received_close(caught.value) == (1011, "")
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(f"ws://127.0.0.1:{port}/early"):
                pass
        assert refused.value.response.status_code == 500


async def test_app_returning_after_accept_closes_normally() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "last words"})

    async with running(app) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
            assert await ws.recv() == "last words"
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
        assert received_close(caught.value) == (1000, "")


async def test_invalid_accept_subprotocol_is_the_apps_error() -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        try:
            await send({"type": "websocket.accept", "subprotocol": "not-offered"})
        except ValueError as exc:
            seen.put_nowait(str(exc))
            raise

    async with running(app, log_level="critical") as port:
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(f"ws://127.0.0.1:{port}/", subprotocols=["chat"]):
                pass
        assert caught.value.response.status_code == 500
    assert "'not-offered' was not offered" in seen.get_nowait()


async def test_server_shutdown_closes_with_1012() -> None:
    seen: asyncio.Queue[Any] = asyncio.Queue()
    accepted = asyncio.Event()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        accepted.set()
        seen.put_nowait(await receive())

    client_saw: list[tuple[int, str] | None] = []
    async with running(app) as port:
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/")
        async with asyncio.timeout(WAIT):
            await accepted.wait()

        async def read() -> None:
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                client_saw.append(received_close(exc))

        reading = asyncio.create_task(read())
    # running() ended: uvicorn shut down, waiting for the connection to close.
    await asyncio.wait_for(reading, WAIT)
    assert client_saw == [(1012, "")]
    assert seen.get_nowait()["code"] == 1012


async def test_keepalive_ping_timeout_closes_with_1011() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    async with running(app, ws_ping_interval=0.05, ws_ping_timeout=0.05) as port:
        reader, writer, head = await raw_handshake(port, upgrade_request())
        assert head.startswith(b"HTTP/1.1 101 ")
        opcode, data = await read_frame(reader)  # this client never answers it
        assert opcode == 0x9
        assert len(data) == 4
        while opcode != 0x8:
            opcode, data = await read_frame(reader)
        assert int.from_bytes(data[:2]) == 1011
        assert data[2:] == b"keepalive ping timeout"
        writer.close()


async def test_keepalive_ping_answered_keeps_the_connection() -> None:
    async with running(ECHO, ws_ping_interval=0.05, ws_ping_timeout=0.5) as port:
        reader, writer, _ = await raw_handshake(port, upgrade_request())
        for _ in range(3):
            opcode, data = await read_frame(reader)
            assert opcode == 0x9
            writer.write(masked_frame(0xA, data))
        writer.write(masked_frame(0x1, b"still here"))
        opcode, data = await read_frame(reader)
        while opcode == 0x9:
            opcode, data = await read_frame(reader)
        assert (opcode, data) == (0x1, b"still here")
        writer.close()


async def test_fastapi_endpoint() -> None:
    app = FastAPI()

    @app.websocket("/items/{item}")
    async def endpoint(websocket: FastAPIWebSocket, item: str, q: str = "") -> None:
        await websocket.accept()
        await websocket.send_json({"item": item, "q": q})
        data = await websocket.receive_json()
        await websocket.send_json({"got": data})
        await websocket.close(code=4000, reason="done")

    async with running(app) as port:
        async with websockets.connect(f"ws://127.0.0.1:{port}/items/7?q=z") as ws:
            assert json.loads(await ws.recv()) == {"item": "7", "q": "z"}
            await ws.send(json.dumps([1, 2]))
            assert json.loads(await ws.recv()) == {"got": [1, 2]}
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
        assert received_close(caught.value) == (4000, "done")


async def test_fastapi_validation_error_before_accept_is_a_403() -> None:
    # FastAPI closes with a list of errors as the "reason": still a clean 403,
    # not a dropped connection.
    app = FastAPI()

    @app.websocket("/needs")
    async def endpoint(websocket: FastAPIWebSocket, token: str) -> None:
        await websocket.accept()

    async with running(app) as port:
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(f"ws://127.0.0.1:{port}/needs"):
                pass
    assert caught.value.response.status_code == 403
    assert b"token" in caught.value.response.body


async def test_wss_scheme_and_echo_over_tls(tmp_path: Path) -> None:
    _, client_context = tls_contexts(tmp_path)  # writes cert.pem and key.pem there
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.put_nowait(scope["scheme"])
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"]})

    certificate = {"ssl_certfile": tmp_path / "cert.pem", "ssl_keyfile": tmp_path / "key.pem"}
    async with running(app, **certificate) as port:
        ws = await websockets.connect(f"wss://127.0.0.1:{port}/", ssl=client_context)
        async with ws:
            await ws.send("over TLS")
            assert await ws.recv() == "over TLS"
    assert seen.get_nowait() == "wss"
