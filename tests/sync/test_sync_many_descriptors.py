"""The blocking adapter in a process that already holds more than 1024 descriptors.

``select()`` cannot watch a descriptor above FD_SETSIZE (1024) and raises
``ValueError``; a busy server process passes that number early. These tests run
in a subprocess that first opens 1,100 descriptors, so every socket the client,
the server and ``hubbub.WebSocket`` open lands above 1024 (issue 18, finding 2).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    assert max(held) > 1024, max(held)

    import hubbub
    from hubbub.sync.client import connect
    from hubbub.sync.server import serve

    def echo(ws):
        for message in ws:
            ws.send(message)

    server = serve(echo, "127.0.0.1", 0, ping_interval=None, close_timeout=1.0)
    assert server.socket.fileno() > 1024
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    url = f"ws://127.0.0.1:{server.port}/"
    try:
        with connect(url, ping_interval=None, open_timeout=5) as ws:
            assert ws.socket.fileno() > 1024
            ws.send("sync")
            print("sync:", ws.recv(timeout=5))
        print("sync close:", ws.close_code)

        got = []
        done = threading.Event()
        # The listeners use event.target: the connection may open before the
        # constructor returns (and before a name is bound to it).
        hubbub.WebSocket(
            url,
            on_open=lambda event: event.target.send("browser"),
            on_message=lambda event: (got.append(event.data), event.target.close()),
            on_close=lambda event: (got.append(int(event.code)), done.set()),
        )
        assert done.wait(10), "hubbub.WebSocket did not close"
        print("browser:", got)
    finally:
        server.close()
        thread.join(5)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="descriptor numbers are POSIX")
def test_sync_client_server_and_browser_api_above_descriptor_1024() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1300:
        pytest.skip(f"RLIMIT_NOFILE is {soft}")
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 0, result.stderr
    assert "filedescriptor out of range" not in result.stderr
    assert result.stdout.splitlines() == [
        "sync: sync",
        "sync close: 1000",
        "browser: ['browser', 1005]",
    ]
