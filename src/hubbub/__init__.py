"""hubbub: real-time, two-way communication over WebSocket.

The sans-I/O protocol core lives in :mod:`hubbub.protocol`, the asyncio adapter
in :mod:`hubbub.asyncio`, the blocking one in :mod:`hubbub.sync`.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

from .exceptions import *  # noqa: E402, F403
from .exceptions import __all__ as _exceptions_all  # noqa: E402
from .protocol.connection import State  # noqa: E402
from .protocol.frames import CloseCode, Opcode  # noqa: E402

__all__ = ["CloseCode", "Opcode", "State", "__version__", *_exceptions_all]
