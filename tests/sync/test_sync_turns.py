"""Who reads a blocking connection (hubbub.sync.turns), seen from the peer, over real sockets.

A thread waiting in ``recv()`` reads the socket itself; the reader thread reads
whenever no thread receives. Either way pings are answered, the keepalive runs
and the closing handshake completes.
"""

from __future__ import annotations

import threading

import sync_helpers

from client_peers import FAST
from hubbub.sync.client import connect
from hubbub.sync.server import ServerConnection


def test_a_handler_busy_elsewhere_after_receiving_still_answers_pings() -> None:
    # The handler took the turn to receive, then stops receiving: the reader
    # thread takes the turn back (after a lease) and answers the ping.
    busy = threading.Event()
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        ws.send(ws.recv())
        busy.set()
        done.wait(30)

    with (
        sync_helpers.running(handler) as server,
        connect(f"ws://127.0.0.1:{server.port}/", **FAST) as ws,
    ):
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        assert busy.wait(10)
        for _ in range(3):
            assert ws.ping(timeout=10) >= 0
        done.set()


def test_a_handler_waiting_in_recv_runs_the_keepalive_and_answers_pings() -> None:
    # The handler holds the turn while it waits in recv() on an idle
    # connection: it sends the keepalive pings and reads their pongs itself.
    connections: list[ServerConnection] = []
    pinged = threading.Event()

    def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        assert ws.recv(timeout=30) == "stop"

    options = dict(ping_interval=0.05, ping_timeout=10.0)
    with sync_helpers.running(handler, **options) as server:
        ws = connect(f"ws://127.0.0.1:{server.port}/", **FAST)
        with ws:
            for _ in range(3000):  # the client answers the server's pings
                if connections and connections[0].latency > 0:
                    break
                pinged.wait(0.01)
            assert connections[0].latency > 0
            assert ws.ping(timeout=10) >= 0  # and the server answers ours
            ws.send("stop")
        assert ws.close_code == 1000


def test_two_threads_one_receiving_one_closing() -> None:
    # The receiving thread holds the turn; another thread closes: the close
    # frame's answer is read by whoever has the turn and both threads end.
    with (
        sync_helpers.running(echo) as server,
        connect(f"ws://127.0.0.1:{server.port}/", **FAST) as ws,
    ):
        ended: list[BaseException] = []

        def receive() -> None:
            try:
                ws.recv(timeout=30)
            except BaseException as exc:
                ended.append(exc)

        receiver = threading.Thread(target=receive)
        receiver.start()
        ws.close()
        receiver.join(10)
        assert not receiver.is_alive()
        assert [type(exc).__name__ for exc in ended] == ["ConnectionClosedOK"]
        assert ws.close_code == 1000


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)
