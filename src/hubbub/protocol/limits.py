"""What a connection accepts from its peer: one object, one owner of each check.

:class:`Limits` carries every bound the core enforces on what it receives, and
is the only place that compares a message's size with ``max_size`` (RFC 6455
section 7.4.1, code 1009 "Message Too Big"). The connection hands the same
object to its parts: the frame reader asks :meth:`Limits.check_frame` before
a payload is buffered, the message assembler asks :meth:`Limits.check_message`
when a frame's data joins a message and :meth:`Limits.inflate_budget` before an
extension decodes one (RFC 7692). The compiled fast path
(:func:`hubbub.speedups.parse_messages`) is handed :attr:`Limits.parse_max_size`
and leaves any frame over it to the frame reader, which raises.

Limits are frozen, so that one object may serve every connection of a server;
change them with :func:`dataclasses.replace` and ``Connection.limits = ...``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ..exceptions import PayloadTooBig

__all__ = ["DEFAULT_MAX_SIZE", "Limits", "shared_limits"]

DEFAULT_MAX_SIZE = 2**20
"""Default limit on the size of a received message: 1 MiB."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds a connection enforces on what it receives.

    Args:
        max_size: largest message accepted, in bytes, once extensions decoded
            it; ``None`` for no limit. Over it the connection fails with 1009.
        decode_limit: bytes that extensions may decode (inflate) in one call
            to ``receive_data()`` or ``resume_parsing()``; ``None`` for no
            limit. Once reached, parsing stops at the next frame boundary,
            or inside a frame that inflates past it once 64 KiB of it were
            inflated, when the extension can (permessage-deflate): a step
            inflates at most ``decode_limit`` + 64 KiB (see
            ``Connection.parsing_paused``).

    Raises:
        ValueError: a negative bound.
    """

    max_size: int | None = DEFAULT_MAX_SIZE
    decode_limit: int | None = None
    parse_max_size: int = field(init=False, repr=False, compare=False)
    """``max_size`` for the compiled fast path, which takes -1 for no limit."""

    def __post_init__(self) -> None:
        for name in ("max_size", "decode_limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be at least 0 or None, not {value}")
        # Frozen: computed once here rather than per read.
        object.__setattr__(self, "parse_max_size", -1 if self.max_size is None else self.max_size)

    def check_message(self, size: int) -> None:
        """Refuse a message that holds ``size`` bytes once decoded.

        Raises:
            PayloadTooBig: over ``max_size`` (close code 1009, section 7.4.1).
        """
        max_size = self.max_size
        if max_size is not None and size > max_size:
            raise PayloadTooBig(size, max_size)

    def check_frame(self, size: int, transformed: bool) -> None:
        """Refuse a frame announcing that its message will hold ``size`` bytes.

        Called with the frame's header, before its payload is buffered.
        ``transformed``: an extension will decode the payload (RFC 7692), so
        ``size`` counts compressed bytes, which may exceed the inflated size by
        a few bytes per block: that slack is allowed, so that only the decoded
        size really counts (:meth:`check_message` judges it). An untransformed
        message gets none, so that it fails here whether its frames arrive
        whole or in pieces.

        Raises:
            PayloadTooBig: over the limit (close code 1009).
        """
        max_size = self.max_size
        if max_size is None:
            return
        limit = max_size + (max_size >> 6) + 64 if transformed else max_size
        if size > limit:
            raise PayloadTooBig(size, max_size)

    def inflate_budget(self, size: int) -> int | None:
        """How many more bytes a message holding ``size`` may decode to, or None."""
        return None if self.max_size is None else self.max_size - size


@functools.lru_cache(maxsize=64)
def shared_limits(max_size: int | None, decode_limit: int | None) -> Limits:
    """The :class:`Limits` with these bounds, one object for all who ask.

    A server holds thousands of idle connections, nearly all with the same
    bounds: they share one object rather than own one each.
    """
    return Limits(max_size, decode_limit)
