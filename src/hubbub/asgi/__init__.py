"""hubbub inside ASGI servers: the WebSocket half of an ASGI app, on hubbub's core.

* :mod:`hubbub.asgi.uvicorn`: :class:`~hubbub.asgi.uvicorn.HubbubProtocol`, a
  WebSocket implementation for uvicorn (``uvicorn.run(app, ws=HubbubProtocol)``);
  needs the ``asgi`` extra (``pip install 'hubbub[asgi]'``).
* :mod:`hubbub.asgi.scope`: the server-independent part, turning a handshake
  :class:`~hubbub.protocol.Request` into an ASGI ``websocket`` scope and the
  ASGI messages of a denial into a :class:`~hubbub.protocol.Response`.

This package imports uvicorn only in :mod:`hubbub.asgi.uvicorn`. See docs/asgi.md.
"""

from __future__ import annotations

from .scope import ASGI_SPEC_VERSION, denial_response, websocket_scope

__all__ = ["ASGI_SPEC_VERSION", "denial_response", "websocket_scope"]
