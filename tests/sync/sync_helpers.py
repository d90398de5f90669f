"""Helpers of the blocking adapter's tests: a server running on its own thread.

(The module has a unique name instead of ``helpers`` because test directories
are not packages: every one of them lands on ``sys.path``.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from hubbub.sync.server import Server, ServerConnection, serve


@contextlib.contextmanager
def running(handler: Callable[[ServerConnection], Any], **options: Any) -> Iterator[Server]:
    """A :func:`hubbub.sync.server.serve` server on 127.0.0.1, stopped on exit."""
    options.setdefault("ping_interval", None)
    options.setdefault("close_timeout", 1.0)
    server = serve(handler, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server
    finally:
        server.close()
        thread.join(5)
        assert not thread.is_alive()
