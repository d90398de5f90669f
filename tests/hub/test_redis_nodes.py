"""Several ``hubbub serve`` processes on one real Redis behave as one hub.

Each node is a separate process (``python -m hubbub serve --broker redis://...``)
and clients are the SDK (:class:`hubbub.hub.client.HubClient`). Presence uses a
1.5 s TTL (heartbeats every 0.5 s) so that dead nodes' users vanish quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hub_helpers import SECRET
from redis_helpers import REDIS_SERVER, RedisServer, free_port

from hubbub.asyncio import connect
from hubbub.backoff import Backoff
from hubbub.hub import mint_token
from hubbub.hub.client import INBOX, HubClient, HubError, Push, State

pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="redis-server is not installed"),
]

TOML = """
[limits]
presence_ttl = 1.5
command_rate = 1000  # the load tests publish faster than a chat user
command_burst = 1000

[namespaces.chat]
publish = "all"
history_size = 1000
history_ttl = 600
"""


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class HubNode:
    """One ``hubbub serve`` process."""

    def __init__(self, workdir: Path, redis_url: str, port: int | None = None) -> None:
        self.port = port or free_port()
        config = workdir / "hub.toml"
        config.write_text(TOML)
        self.log = workdir / f"node-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hubbub", "serve", "--broker", redis_url,
                 "--port", str(self.port), "--secret", SECRET, "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while True:
            try:
                if healthz(self.port)[0] == 200:
                    break
            except OSError:
                pass
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_node(tmp_path: Path, redis_server: RedisServer) -> Iterator[Callable[[], HubNode]]:
    nodes: list[HubNode] = []

    def start() -> HubNode:
        node = HubNode(tmp_path, redis_server.url)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


def client(node: HubNode, user: str, **kwargs: Any) -> HubClient:
    return HubClient(node.uri, token=mint_token(user, SECRET, 3600), **kwargs)


async def next_push(c: HubClient, kind: str, timeout: float = 5.0) -> Push:
    """The next push of ``kind`` (others, like join/leave, are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            push = await c.recv()
            if push.kind == kind:
                return push


async def take(c: HubClient, counts: dict[str, int], timeout: float = 5.0) -> dict[str, list[Push]]:
    """Pushes until ``counts[kind]`` of each kind arrived (other kinds skipped)."""
    got: dict[str, list[Push]] = {kind: [] for kind in counts}
    async with asyncio.timeout(timeout):
        while any(len(got[k]) < n for k, n in counts.items()):
            push = await c.recv()
            if push.kind in got:
                got[push.kind].append(push)
    return got


async def eventually(check: Callable[[], Any], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except (HubError, OSError):
            pass
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_direct_events_channels_and_presence_across_nodes(
    start_node: Callable[[], HubNode],
) -> None:
    a, b, c = start_node(), start_node(), start_node()
    async with (
        client(a, "alice") as alice_a,
        client(b, "alice") as alice_b,
        client(c, "bob") as bob,
    ):
        # A user's connections on different nodes all get a direct event.
        result = await bob.send(["alice"], {"text": "hi"})
        assert result["results"]["alice"]["status"] == "live"
        for conn in (alice_a, alice_b):
            push = await next_push(conn, "message")
            assert (push.data, push.sender) == ({"text": "hi"}, "bob")
        # Channel messages cross nodes, one order everywhere.
        await alice_a.subscribe("chat:room")
        await alice_b.subscribe("chat:room")
        for i in range(5):
            await bob.publish("chat:room", i)
        for conn in (alice_a, alice_b):
            got = [await next_push(conn, "pub") for _ in range(5)]
            assert [(p.data, p.offset) for p in got] == [(i, i + 1) for i in range(5)]
        # Presence and online answered the same by every node.
        presence = await bob.presence("chat:room")
        assert presence["users"] == {"alice": 2}
        assert await bob.online(["alice", "carol"]) == {"alice": True, "carol": False}
        assert (await alice_a.presence("chat:room")) == presence


async def test_a_killed_node_its_clients_recover_on_another(
    start_node: Callable[[], HubNode],
) -> None:
    a, b = start_node(), start_node()
    async with client(b, "bob") as bob:
        alice = client(a, "alice", auto_ack=False)
        await alice.start()
        sub = await alice.subscribe("chat:room")
        for i in range(3):
            await bob.publish("chat:room", i)
            await bob.send(["alice"], {"n": i})
        got = await take(alice, {"pub": 3, "message": 3})
        pubs, msgs = got["pub"], got["message"]
        alice.ack(msgs[0].offset or 0)  # only the first is acknowledged
        await eventually(lambda: _acked(bob, alice, 1))
        a.kill()  # SIGKILL: no goodbye, presence left behind in Redis
        await alice.close()
        # Its users vanish within the presence TTL (1.5 s).
        await eventually(lambda: _offline(bob, "alice"))
        for i in range(3, 5):
            await bob.publish("chat:room", i)
            await bob.send(["alice"], {"n": i})
        # Alice comes back on node b with the position she had.
        last = pubs[-1]
        async with client(b, "alice") as again:
            inbox = again.connect_result
            assert inbox is not None
            assert inbox["inbox"]["acked"] == 1
            assert inbox["inbox"]["recovered"]
            redelivered = [await next_push(again, "message") for _ in range(4)]
            assert [m.data["n"] for m in redelivered] == [1, 2, 3, 4]
            result = await again.subscribe(
                "chat:room", since={"offset": last.offset, "epoch": sub["epoch"]}
            )
            assert result["recovered"] is True
            recovered = [await next_push(again, "pub") for _ in range(2)]
            assert [(p.data, p.offset) for p in recovered] == [(3, 4), (4, 5)]


async def _acked(bob: HubClient, alice: HubClient, offset: int) -> bool:
    return bool(alice._ack_wanted >= offset and alice._ack_task and alice._ack_task.done())


async def _offline(asker: HubClient, user: str) -> bool:
    return (await asker.online([user]))[user] is False


async def test_redis_killed_nodes_keep_serving_then_recover(
    start_node: Callable[[], HubNode], redis_server: RedisServer
) -> None:
    a, b = start_node(), start_node()
    async with client(a, "alice") as alice, client(b, "bob") as bob:
        sub = await alice.subscribe("chat:room")
        await bob.publish("chat:room", "before")
        first = await next_push(alice, "pub")
        redis_server.kill()
        # The nodes keep running and say so: /healthz 503, a log line, 501 errors.
        await eventually(lambda: _status(a.port, 503))
        await eventually(lambda: _status(b.port, 503))
        with pytest.raises(HubError) as failure:
            await bob.publish("chat:room", "during")
        assert failure.value.code == 501
        assert await alice.ping() > 0  # local connections are still served
        redis_server.start()  # empty: no persistence
        await eventually(lambda: _status(a.port, 200), timeout=15)
        await eventually(lambda: _status(b.port, 200), timeout=15)
        assert "DOWN" in a.log.read_text()
        # Live fan-out works again: the node re-subscribed.
        await eventually(lambda: _published(bob, "after"))
        after = await next_push(alice, "pub")
        assert after.data == "after"
        assert after.epoch != first.epoch
        # A client recovering from the old position is told it is impossible.
        async with client(b, "carol") as carol:
            since = {"offset": first.offset, "epoch": sub["epoch"]}
            result = await carol.subscribe("chat:room", since=since)
            assert result["recovered"] is False
            assert result["reason"] == "epoch"


async def test_redis_killed_under_load_nothing_acknowledged_is_lost(
    start_node: Callable[[], HubNode], redis_server: RedisServer
) -> None:
    a, b = start_node(), start_node()
    async with client(a, "alice") as alice, client(b, "bob") as bob:
        await alice.subscribe("chat:load")
        acked: list[tuple[str, int]] = []  # publishes the hub confirmed
        received: list[tuple[str, int]] = []
        refused: list[int] = []  # error codes of publishes refused
        stop = asyncio.Event()

        async def load() -> None:
            i = 0
            while not stop.is_set():
                try:
                    result = await bob.publish("chat:load", i)
                    acked.append((result["epoch"], result["offset"]))
                except HubError as exc:
                    refused.append(exc.code)
                i += 1
                await asyncio.sleep(0.005)

        async def consume() -> None:
            while True:
                push = await alice.recv()
                if push.kind == "pub":
                    assert push.epoch is not None
                    assert push.offset is not None
                    received.append((push.epoch, push.offset))

        publisher = asyncio.create_task(load())
        consumer = asyncio.create_task(consume())
        try:
            await eventually(lambda: _count(acked, 20))
            redis_server.kill()
            await eventually(lambda: _status(a.port, 503))
            await asyncio.sleep(0.3)  # the load meets a dead Redis
            redis_server.start()
            await eventually(lambda: _status(a.port, 200), timeout=15)
            await eventually(lambda: _status(b.port, 200), timeout=15)
            new_epoch = len(acked)
            await eventually(lambda: _count(acked, new_epoch + 20))
            stop.set()
            await publisher
            # Every publish confirmed after the restart reached alice, in order, once.
            epoch = acked[-1][0]
            wanted = [e for e in acked if e[0] == epoch]
            await eventually(lambda: _count([r for r in received if r[0] == epoch], len(wanted)))
            assert [r for r in received if r[0] == epoch] == wanted
            assert wanted[0][1] == 1  # a new epoch starts at offset 1
            assert len(received) == len(set(received))
            assert refused  # some publishes met the dead Redis ...
            assert set(refused) == {501}  # ... and were refused as "broker unavailable"
        finally:
            stop.set()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            if not publisher.done():
                publisher.cancel()


async def _recovery_notices(
    c: HubClient, streams: set[str], timeout: float = 15.0
) -> dict[str, Push]:
    """The live ``recovery`` notice of each of ``streams`` (entries are not expected first)."""
    got: dict[str, Push] = {}
    async with asyncio.timeout(timeout):
        while set(got) != streams:
            push = await c.recv()
            assert push.kind not in {"pub", "message"}, push  # the notice comes first
            if push.kind == "recovery":
                assert push.channel is not None
                got[push.channel] = push
    return got


async def test_redis_restarted_empty_connected_clients_are_told_and_continue(
    start_node: Callable[[], HubNode], redis_server: RedisServer
) -> None:
    a, b = start_node(), start_node()
    async with (
        client(a, "alice") as alice,
        client(b, "alice") as alice_b,
        client(b, "bob") as bob,
    ):
        for c in (alice, alice_b, bob):
            await c.subscribe("chat:room")
        await bob.publish("chat:room", "before")
        old = (await bob.send(["alice", "bob"], "before"))["results"]
        for c in (alice, alice_b, bob):
            await take(c, {"pub": 1, "message": 1})
        redis_server.kill()
        await eventually(lambda: _status(a.port, 503))
        await eventually(lambda: _status(b.port, 503))
        redis_server.start()  # empty: no persistence
        # Without anything published, every connection on both nodes is told
        # that its channel and its inbox were lost, when its node reconnects.
        notices = {}
        for name, c in (("alice", alice), ("alice_b", alice_b), ("bob", bob)):
            notices[name] = await _recovery_notices(c, {"chat:room", "$inbox"})
        for got in notices.values():
            for notice in got.values():
                assert (notice.raw["reason"], notice.raw["live"], notice.offset) == (
                    "epoch",
                    True,
                    0,
                )
        room = notices["alice"]["chat:room"].epoch
        assert room != old["alice"]["epoch"]
        assert {n["chat:room"].epoch for n in notices.values()} == {room}  # one new epoch
        assert notices["alice"]["$inbox"].epoch == notices["alice_b"]["$inbox"].epoch
        assert notices["alice"]["$inbox"].epoch != old["alice"]["epoch"]
        assert notices["bob"]["$inbox"].epoch != old["bob"]["epoch"]
        # The SDK keeps the new position (a reconnection asks for no impossible
        # recovery), and new entries keep coming in the new epoch.
        assert alice._streams.channels["chat:room"].epoch == room
        await eventually(lambda: _published(bob, "after"))
        sent = (await bob.send(["alice", "bob"], "after"))["results"]
        for name, c in (("alice", alice), ("alice_b", alice_b), ("bob", bob)):
            entries = await take(c, {"pub": 1, "message": 1})
            (pub,), (message,) = entries["pub"], entries["message"]
            assert (pub.data, pub.epoch, pub.offset) == ("after", room, 1)
            user = "bob" if name == "bob" else "alice"
            inbox = notices[name]["$inbox"].epoch
            assert (message.data, message.epoch, message.offset) == ("after", inbox, 1)
            assert sent[user]["epoch"] == inbox


async def test_redis_flushed_the_next_entry_comes_after_the_notice_on_every_node(
    start_node: Callable[[], HubNode], redis_server: RedisServer
) -> None:
    a, b = start_node(), start_node()
    async with client(a, "alice") as alice, client(b, "bob") as bob:
        await alice.subscribe("chat:room")
        await bob.subscribe("chat:room")
        first = await bob.publish("chat:room", "before")
        for c in (alice, bob):
            await next_push(c, "pub")
        flusher = aioredis.Redis.from_url(redis_server.url)
        try:
            await flusher.flushall()  # the nodes stay connected to Redis
        finally:
            await flusher.aclose()
        result = await bob.publish("chat:room", "after")
        assert result["epoch"] != first["epoch"]
        assert result["offset"] == 1
        for c in (alice, bob):  # alice's node only saw the entry arrive
            notices = await _recovery_notices(c, {"chat:room"})
            assert notices["chat:room"].epoch == result["epoch"]
            pub = await next_push(c, "pub")
            assert (pub.data, pub.epoch, pub.offset) == ("after", result["epoch"], 1)


async def _count(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def _status(port: int, status: int) -> bool:
    return (await asyncio.to_thread(healthz, port))[0] == status


async def _published(bob: HubClient, data: Any) -> bool:
    await bob.publish("chat:room", data)
    return True


# --- behind nginx, with the configuration of docs/redis.md --------------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "redis.md"


def nginx_config(workdir: Path, listen: int, upstreams: list[int]) -> str:
    """The documented nginx configuration, pointed at test ports and a temp dir."""
    text = DOCS.read_text()
    config = text.split("```nginx\n", 1)[1].split("```", 1)[0]
    lines = [line for line in config.splitlines() if "server 127.0.0.1:800" not in line]
    config = "\n".join(lines)
    servers = "".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstreams
    )
    config = config.replace("least_conn;\n", "least_conn;\n" + servers)
    config = config.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    config = config.replace("worker_processes auto;", "")
    config = config.replace("worker_connections 65536;", "worker_connections 256;")
    temp = "".join(
        f"    {kind}_temp_path {workdir / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return config.replace("http {\n", f"http {{\n    access_log off;\n{temp}", 1)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[list[int]], int]]:
    """Start nginx (no daemon, one process) in front of the given node ports."""
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    processes: list[subprocess.Popen[bytes]] = []

    def start(upstreams: list[int]) -> int:
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_config(tmp_path, port, upstreams))
        directives = f"daemon off; master_process off; pid {tmp_path / 'nginx.pid'};"
        log = (tmp_path / "nginx.log").open("wb")
        processes.append(
            subprocess.Popen(
                [NGINX, "-c", str(conf), "-p", str(tmp_path), "-g", directives],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                if healthz(port)[0] == 200:
                    return port
            except OSError:
                pass
            assert processes[-1].poll() is None, (tmp_path / "nginx.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "nginx.log").read_text()
            time.sleep(0.05)

    yield start
    for process in processes:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(10)


async def test_through_nginx_without_sticky_sessions(
    start_node: Callable[[], HubNode], nginx: Callable[[list[int]], int]
) -> None:
    a, b = start_node(), start_node()
    port = nginx([a.port, b.port])
    uri = f"ws://127.0.0.1:{port}/"
    clients = [HubClient(uri, token=mint_token(f"u{i}", SECRET, 3600)) for i in range(4)]
    for c in clients:
        await c.start()
    try:
        nodes = {c.connect_result["node"] for c in clients if c.connect_result}
        assert len(nodes) == 2  # least_conn spread them over both nodes
        for c in clients:
            await c.subscribe("chat:all")
        await clients[0].publish("chat:all", "hello")
        for c in clients:
            assert (await next_push(c, "pub")).data == "hello"
        await clients[1].send(["u2", "u3"], {"to": "you"})
        for c in clients[2:]:
            assert (await next_push(c, "message")).data == {"to": "you"}
    finally:
        for c in clients:
            await c.close()


async def test_node_killed_behind_nginx_the_sdk_reconnects_to_another_and_recovers(
    start_node: Callable[[], HubNode], nginx: Callable[[list[int]], int]
) -> None:
    a, b = start_node(), start_node()
    port = nginx([a.port, b.port])
    backoff = Backoff(initial_delay=0.05, max_delay=0.5)
    alice = HubClient(
        f"ws://127.0.0.1:{port}/", token=mint_token("alice", SECRET, 3600), backoff=backoff
    )
    await alice.start()
    try:
        assert alice.connect_result is not None
        ids = {healthz(n.port)[1]["node"]: n for n in (a, b)}
        doomed = ids[alice.connect_result["node"]]
        survivor = b if doomed is a else a
        async with client(survivor, "bob") as bob:
            await alice.subscribe("chat:room")
            for i in range(3):
                await bob.publish("chat:room", i)
                await bob.send(["alice"], {"n": i})
            got = await take(alice, {"pub": 3, "message": 3})
            doomed.kill()  # SIGKILL: alice's connection just drops
            for i in range(3, 6):
                await bob.publish("chat:room", i)
                await bob.send(["alice"], {"n": i})
            # The SDK reconnects through nginx, lands on the survivor, recovers.
            more = await take(alice, {"pub": 3, "message": 3, "recovery": 0}, timeout=15)
            assert more["recovery"] == []
            live = await alice.wait_live()  # set once the re-joins are done
            assert live["node"] == healthz(survivor.port)[1]["node"]
            pubs = got["pub"] + more["pub"]
            assert [(p.data, p.offset) for p in pubs] == [(i, i + 1) for i in range(6)]
            msgs = got["message"] + more["message"]
            assert [m.data["n"] for m in msgs] == list(range(6))  # each once, in order
    finally:
        await alice.close()


async def test_redis_restarted_empty_an_offline_users_lost_inbox_is_not_reported_recovered(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # Issue 18, finding 1: carol is offline (her node is down) while Redis
    # restarts empty, losing her partly acknowledged inbox and the stored ack.
    # Only the epoch the client sends on reconnecting can reveal the loss.
    node = HubNode(tmp_path, redis_server.url)
    carol = client(node, "carol", auto_ack=False, backoff=Backoff(0.05, 2.0, 0.2))
    try:
        first = await carol.start()
        async with client(node, "dave") as dave:
            await dave.send(["carol"], "one")
            await dave.send(["carol"], "two")
        one = await next_push(carol, "message")
        await next_push(carol, "message")  # "two": seen, never acknowledged
        epoch = first["inbox"]["epoch"]
        await carol.call("ack", stream=INBOX, offset=one.offset, epoch=epoch)
        node.stop()
        await asyncio.wait_for(carol.wait_state(State.RECONNECTING), 5)
        redis_server.kill()
        redis_server.start()  # empty: no persistence
        node = HubNode(tmp_path, redis_server.url, port=node.port)
        again = await asyncio.wait_for(carol.wait_live(), 15)
        inbox = again["inbox"]
        assert inbox["epoch"] != epoch
        assert (inbox["recovered"], inbox.get("reason")) == (False, "epoch")
        assert (inbox["acked"], inbox["messages"]) == (0, [])
        notices = await _recovery_notices(carol, {INBOX})
        assert notices[INBOX].raw["reason"] == "epoch"
        # A client that does not send its epoch (protocol before this field)
        # still connects; the hub can only report what it knows.
        async with connect(node.uri, subprotocols=["hubbub.json.v1"]) as ws:
            token = mint_token("carol", SECRET, 3600)
            await ws.send(json.dumps({"id": 1, "method": "connect", "params": {"token": token}}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["result"]["inbox"]["epoch"] == inbox["epoch"]
    finally:
        await carol.close()
        node.stop()
