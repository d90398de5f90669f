"""End to end: a hub on a loopback port, real hubbub.asyncio clients, the HTTP endpoints."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from hub_helpers import SECRET, WireClient

from hubbub.asyncio import connect
from hubbub.exceptions import ConnectionClosed, InvalidStatus
from hubbub.hub import SUBPROTOCOL, mint_token
from hubbub.hub.server import Hub, start_hub

API_KEY = "api-key-for-tests"


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with start_hub(
        "127.0.0.1", 0, secret=SECRET, api_key=API_KEY, tick_interval=0.05
    ) as running:
        yield running


def uri(hub: Hub) -> str:
    return f"ws://127.0.0.1:{hub.port}/"


async def test_two_clients_chat(hub: Hub) -> None:
    async with (
        connect(uri(hub), subprotocols=[SUBPROTOCOL]) as ws_a,
        connect(uri(hub), subprotocols=[SUBPROTOCOL]) as ws_b,
    ):
        assert ws_a.subprotocol == SUBPROTOCOL
        ann, bob = WireClient(ws_a), WireClient(ws_b)
        assert (await ann.ok("connect", token=mint_token("ann", SECRET)))["user"] == "ann"
        await bob.ok("connect", token=mint_token("bob", SECRET), tick=True)
        sub = await ann.ok("subscribe", channel="lobby")
        await bob.ok("subscribe", channel="lobby")
        assert (await ann.push("join"))["user"] == "bob"
        await bob.ok("publish", channel="lobby", data={"text": "hi"})
        pub = await ann.push("pub")
        assert (pub["from"], pub["data"], pub["epoch"]) == ("bob", {"text": "hi"}, sub["epoch"])
        result = await ann.ok("send", to=["bob", "cid"], data="direct")
        assert result["results"]["bob"]["status"] == "live"
        assert result["results"]["cid"]["status"] == "queued"
        message = await bob.push("message")
        assert (message["from"], message["data"]) == ("ann", "direct")
        tick = await bob.push("tick")
        assert isinstance(tick["time"], int)
        assert (await ann.ok("online", users=["bob", "cid"]))["online"] == {
            "bob": True,
            "cid": False,
        }
        await ws_b.close()
        leave = await ann.push("leave")
        assert leave["user"] == "bob"


async def test_reconnect_recovers(hub: Hub) -> None:
    token = mint_token("ann", SECRET)
    async with connect(uri(hub), subprotocols=[SUBPROTOCOL]) as ws:
        ann = WireClient(ws)
        await ann.ok("connect", token=token)
        sub = await ann.ok("subscribe", channel="lobby")
    await hub.node.publish("lobby", "while away 1")
    await hub.node.publish("lobby", "while away 2")
    await hub.node.send(["ann"], "queued")
    async with connect(uri(hub), subprotocols=[SUBPROTOCOL]) as ws:
        ann = WireClient(ws)
        inbox = (await ann.ok("connect", token=token))["inbox"]
        assert [m["data"] for m in inbox["messages"]] == ["queued"]
        result = await ann.ok(
            "subscribe", channel="lobby", since={"offset": sub["offset"], "epoch": sub["epoch"]}
        )
        assert result["recovered"] is True
        assert [p["data"] for p in result["publications"]] == ["while away 1", "while away 2"]


async def test_subprotocol_required(hub: Hub) -> None:
    with pytest.raises(InvalidStatus):
        async with connect(uri(hub)):
            pass


async def test_bad_input_gets_error_replies_not_a_close(hub: Hub) -> None:
    async with connect(uri(hub), subprotocols=[SUBPROTOCOL]) as ws:
        await ws.send("not json")
        assert json.loads(await ws.recv())["error"]["code"] == 100
        await ws.send(b"\x00binary")
        assert json.loads(await ws.recv())["error"]["code"] == 100
        await ws.send('{"id":1,"method":"ping"}')
        assert "time" in json.loads(await ws.recv())["result"]


async def test_expired_token_closes_with_4001(hub: Hub) -> None:
    async with connect(uri(hub), subprotocols=[SUBPROTOCOL]) as ws:
        ann = WireClient(ws)
        await ann.ok("connect", token=mint_token("ann", SECRET, ttl=1))
        disconnect = await ann.push("disconnect")
        assert disconnect["code"] == 4001
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4001


async def http(
    port: int, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", "Host: x"]
    if "Content_Length" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload.decode()


async def test_healthz_and_metrics(hub: Hub) -> None:
    status, body = await http(hub.port, "GET", "/healthz")
    assert status == 200
    health = json.loads(body)
    assert health["ok"] is True
    assert health["broker"]["type"] == "memory"
    status, body = await http(hub.port, "GET", "/metrics")
    assert status == 200
    assert "hubbub_connections " in body
    assert "hubbub_outbox_messages 0.0" in body
    await hub.node.publish("lobby", "kept")
    assert "hubbub_broker_entries 1.0" in (await http(hub.port, "GET", "/metrics"))[1]
    assert (await http(hub.port, "GET", "/nope"))[0] == 404
    await hub.node.broker.close()
    status, body = await http(hub.port, "GET", "/healthz")
    assert status == 503
    assert json.loads(body)["broker"]["ok"] is False


async def test_metrics_token_and_versions_in_healthz() -> None:
    from hubbub import speedups

    async with start_hub("127.0.0.1", 0, secret=SECRET, metrics_token="scrape-me") as hub:
        assert (await http(hub.port, "GET", "/metrics"))[0] == 401
        wrong = await http(hub.port, "GET", "/metrics", Authorization="Bearer nope")
        assert wrong[0] == 401
        status, body = await http(hub.port, "GET", "/metrics", Authorization="Bearer scrape-me")
        assert status == 200
        assert "hubbub_connections " in body
        # /healthz stays open, and tells which code runs.
        status, body = await http(hub.port, "GET", "/healthz")
        assert status == 200
        versions = json.loads(body)["versions"]
        assert (versions["accelerator"] == "C") is speedups.ACCELERATED
    with pytest.raises(ValueError, match="metrics token"):
        async with start_hub("127.0.0.1", 0, secret=SECRET, metrics_token=""):
            pass


async def test_http_api(hub: Hub) -> None:
    assert hub.api is not None
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with connect(uri(hub), subprotocols=[SUBPROTOCOL]) as ws:
        ann = WireClient(ws)
        await ann.ok("connect", token=mint_token("ann", SECRET))
        await ann.ok("subscribe", channel="lobby")
        body = json.dumps({"channel": "lobby", "data": "from the server"}).encode()
        status, text = await http(hub.port, "POST", "/api/publish", body, **auth)
        assert status == 200, text
        assert json.loads(text)["offset"] == 1
        pub = await ann.push("pub")
        assert (pub["from"], pub["data"]) == (None, "from the server")
        body = json.dumps({"to": ["ann"], "data": "psst"}).encode()
        status, text = await http(hub.port, "POST", "/api/send", body, X_API_Key=API_KEY)
        assert json.loads(text)["results"]["ann"]["status"] == "live"
        assert (await ann.push("message"))["data"] == "psst"
        status, text = await http(hub.port, "POST", "/api/presence", b'{"channel":"lobby"}', **auth)
        assert json.loads(text)["users"] == {"ann": 1}
        status, text = await http(hub.port, "POST", "/api/history", b'{"stream":"lobby"}', **auth)
        assert [p["data"] for p in json.loads(text)["publications"]] == ["from the server"]
    cases = [
        ("POST", "/api/publish", b'{"channel":"lobby","data":1}', {}, 401, 200),
        (
            "POST",
            "/api/publish",
            b'{"channel":"lobby","data":1}',
            {"Authorization": "Bearer wrong"},
            401,
            200,
        ),
        ("GET", "/api/publish", b"", auth, 405, 100),
        ("POST", "/api/fly", b"{}", auth, 404, 101),
        ("POST", "/api/publish", b"{", auth, 400, 100),
        ("POST", "/api/publish", b'{"channel":"a b","data":1}', auth, 400, 102),
        ("POST", "/api/publish", b'{"channel":"zz:a","data":1}', auth, 400, 107),
        ("POST", "/api/history", b'{"stream":"$inbox"}', auth, 400, 102),
        # Issue 12: a lone surrogate or deep nesting, as on the WebSocket.
        ("POST", "/api/publish", b'{"channel":"lobby","data":"\\ud800"}', auth, 400, 100),
        (
            "POST",
            "/api/send",
            b'{"to":["ann"],"data":' + b"[" * 70 + b"]" * 70 + b"}",
            auth,
            400,
            100,
        ),
        (
            "POST",
            "/api/publish",
            b'{"channel":"lobby","data":"' + "é".encode() * 40000 + b'"}',
            auth,
            400,
            302,
        ),
    ]
    # Bodies are read by the adapter: too large (over MAX_BODY) or malformed
    # lengths are refused before the API sees them.
    status, _ = await http(hub.port, "POST", "/api/publish", b"", Content_Length=str(2**21))
    assert status == 413
    status, _ = await http(hub.port, "POST", "/api/publish", b"", Content_Length="abc")
    assert status == 400
    for method, path, body, headers, status, code in cases:
        got_status, text = await http(hub.port, method, path, body, **headers)
        assert (got_status, json.loads(text)["error"]["code"]) == (status, code), path


class StuckConnection:
    """A connection whose peer never reads: every send waits forever."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.never = asyncio.Event()
        self.close_timeout = 0.05

    async def send(self, text: str) -> None:
        self.sent.append(text)
        await self.never.wait()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_slow_consumer_is_closed_with_4011() -> None:
    from hubbub.hub.server import _Outbox

    ws = StuckConnection()
    outbox = _Outbox(ws, max_pending=3)  # type: ignore[arg-type]
    assert outbox.writer is None  # started only when something is queued
    for i in range(3):
        outbox.send(f"m{i}")
    writer = outbox.writer
    assert writer is not None
    await asyncio.sleep(0)
    assert ws.sent == ["m0"]  # the writer is stuck on the first one
    outbox.send("m3")
    outbox.send("m4")  # over the limit: the queue is dropped, close requested
    assert outbox.closing == (4011, "slow consumer")
    assert len(outbox.queue) == 0
    outbox.send("m5")
    assert len(outbox.queue) == 0
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer


async def test_close_does_not_wait_for_a_peer_that_never_reads() -> None:
    # Issue 12, finding 1: the close (4002, 4011, 4000...) is written after at
    # most close_timeout, even while the writer waits on a peer that never reads.
    from hubbub.hub.server import _Outbox

    ws = StuckConnection()
    outbox = _Outbox(ws, max_pending=10)  # type: ignore[arg-type]
    outbox.send("m0")
    outbox.send("m1")
    await asyncio.sleep(0)
    outbox.close(4002, "connect timeout")
    for _ in range(200):
        if ws.closed is not None:
            break
        await asyncio.sleep(0.01)
    assert ws.closed == (4002, "connect timeout")
    assert ws.sent == ["m0"]
    writer = outbox.writer
    assert writer is not None
    await asyncio.wait_for(writer, 5)


async def test_outbox_sends_in_order_then_closes() -> None:
    from hubbub.hub.server import _Outbox

    class Recorder(StuckConnection):
        async def send(self, text: str) -> None:
            self.sent.append(text)
            await asyncio.sleep(0)

    ws = Recorder()
    outbox = _Outbox(ws, max_pending=100)  # type: ignore[arg-type]
    for i in range(10):
        outbox.send(str(i))
    outbox.close(4000, "bye")
    writer = outbox.writer
    assert writer is not None
    await asyncio.wait_for(writer, 5)
    assert ws.sent == [str(i) for i in range(10)]
    assert ws.closed == (4000, "bye")


async def test_backlog_of_a_slow_reader_is_written_in_order_in_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hubbub.hub import server

    batches: list[int] = []
    write_backlog = server._Outbox._write_backlog

    def spy(self: server._Outbox) -> bool:
        queued = len(self.queue)
        written = write_backlog(self)
        if written:
            batches.append(queued)
        return written

    monkeypatch.setattr(server._Outbox, "_write_backlog", spy)
    # No compression: frames go straight to the transport only without an
    # extension (RFC 7692 compresses per connection).
    async with (
        start_hub("127.0.0.1", 0, secret=SECRET, write_limit=4096) as hub,
        connect(uri(hub), subprotocols=[SUBPROTOCOL], max_size=None, compression=None) as ws,
    ):
        client = WireClient(ws)
        await client.ok("connect", token=mint_token("ann", SECRET))
        await client.ok("subscribe", channel="room")
        # The client stops reading: the kernel's buffers, then the hub's
        # transport fill up, and the hub queues what follows.
        ws.transport.pause_reading()
        count, data = 2000, "x" * 2000
        for i in range(count):
            await hub.node.publish("room", f"{i} {data}")
        assert len(batches) == 0  # nothing written from the queue yet
        ws.transport.resume_reading()
        offsets = []
        for _ in range(count):
            push = await asyncio.wait_for(client.push("pub"), 10)
            offsets.append(push["offset"])
            assert push["data"] == f"{len(offsets) - 1} {data}"
        assert offsets == sorted(offsets)
        assert len(set(offsets)) == count
        # The queue was drained with writes of many frames each, not one by one.
        assert batches
        assert max(batches) > 1


async def test_two_nodes_on_one_broker_end_to_end() -> None:
    from hubbub.hub import Authenticator, MemoryBroker
    from hubbub.hub.server import new_node

    broker = MemoryBroker()
    auth = Authenticator(secret=SECRET)
    node_a, node_b = new_node(broker=broker, auth=auth), new_node(broker=broker, auth=auth)
    async with (
        start_hub("127.0.0.1", 0, node=node_a, tick_interval=0.05) as hub_a,
        start_hub("127.0.0.1", 0, node=node_b, tick_interval=0.05) as hub_b,
    ):
        async with (
            connect(uri(hub_a), subprotocols=[SUBPROTOCOL]) as ws_a,
            connect(uri(hub_b), subprotocols=[SUBPROTOCOL]) as ws_b,
        ):
            ann, bob = WireClient(ws_a), WireClient(ws_b)
            assert (await ann.ok("connect", token=mint_token("ann", SECRET)))["node"] == (
                node_a.node_id
            )
            assert (await bob.ok("connect", token=mint_token("bob", SECRET)))["node"] == (
                node_b.node_id
            )
            sub = await ann.ok("subscribe", channel="lobby")
            await bob.ok("subscribe", channel="lobby")
            await bob.ok("publish", channel="lobby", data="across nodes")
            assert (await ann.push("pub"))["data"] == "across nodes"
            result = await ann.ok("send", to=["bob"], data="direct")
            assert result["results"]["bob"]["status"] == "live"
            assert (await bob.push("message"))["data"] == "direct"
        # ann reconnects to the other node and recovers there.
        await node_a.publish("lobby", "missed")
        async with connect(uri(hub_b), subprotocols=[SUBPROTOCOL]) as ws:
            ann = WireClient(ws)
            await ann.ok("connect", token=mint_token("ann", SECRET))
            since = {"offset": sub["offset"], "epoch": sub["epoch"]}
            result = await ann.ok("subscribe", channel="lobby", since=since)
            assert result["recovered"] is True
            assert [p["data"] for p in result["publications"]] == ["across nodes", "missed"]


async def test_http_api_is_off_without_a_key() -> None:
    async with start_hub("127.0.0.1", 0, secret=SECRET, tick_interval=0.05) as hub:
        assert hub.api is None
        status, text = await http(hub.port, "POST", "/api/publish", b'{"channel":"a","data":1}')
        assert status == 404
        assert "API key" in text


async def test_the_websocket_endpoint_is_at_slash_only(hub: Hub) -> None:
    # Issue 18, finding 7: a client pointed at the wrong path is told so.
    base = f"ws://127.0.0.1:{hub.port}"
    for path in ("/", "", "/?client=x"):
        async with connect(base + path, subprotocols=[SUBPROTOCOL]) as ws:
            assert ws.subprotocol == SUBPROTOCOL
    for path in ("/chat", "/ws", "/api/publish", "/healthz"):
        with pytest.raises(InvalidStatus) as info:
            await connect(base + path, subprotocols=[SUBPROTOCOL])
        assert info.value.response.status == 404
        assert b"no WebSocket endpoint at " + path.encode() in info.value.response.body


async def test_a_configured_ws_path_is_accepted_too() -> None:
    async with start_hub("127.0.0.1", 0, secret=SECRET, ws_path="/hub/ws") as hub:
        base = f"ws://127.0.0.1:{hub.port}"
        for path in ("/", "/hub/ws", "/hub/ws?x=1"):
            async with connect(base + path, subprotocols=[SUBPROTOCOL]) as ws:
                assert ws.subprotocol == SUBPROTOCOL
        with pytest.raises(InvalidStatus) as info:
            await connect(base + "/hub", subprotocols=[SUBPROTOCOL])
        assert info.value.response.status == 404
        assert b"/ and /hub/ws" in info.value.response.body
    with pytest.raises(ValueError, match="ws_path"):
        async with start_hub("127.0.0.1", 0, secret=SECRET, ws_path="ws"):
            pass
