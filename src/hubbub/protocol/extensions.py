"""The plug-in point for WebSocket extensions (RFC 6455 section 9).

An extension transforms frames between the wire and the message layer. The
connection state machine knows nothing of any particular extension: it calls
:meth:`Extension.decode` on every received data frame and
:meth:`Extension.encode` on every sent data frame, in the order negotiated
(section 9.1: "the order of extensions ... MUST be used in the order listed by
the server"; encode goes through them in that order, decode in reverse).

Negotiation is done by factories, one per extension offered or supported:

* a :class:`ClientExtensionFactory` says what the client offers in
  ``Sec-WebSocket-Extensions`` and turns the server's answer into an
  :class:`Extension`;
* a :class:`ServerExtensionFactory` looks at one offer of the client and either
  accepts it (returning the parameters to answer with and the
  :class:`Extension`) or declines it by raising :class:`NegotiationError`.

Header syntax (section 9.1)::

    Sec-WebSocket-Extensions = extension-list
    extension-list = 1#extension
    extension = extension-token *( ";" extension-param )
    extension-param = token [ "=" (token | quoted-string) ]
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..exceptions import InvalidHeader
from .frames import Frame

__all__ = [
    "ClientExtensionFactory",
    "Extension",
    "ExtensionParams",
    "ServerExtensionFactory",
    "build_extension_header",
    "parse_extension_header",
]

ExtensionParams = list[tuple[str, str | None]]
"""An extension's parameters in order: ``(name, value or None)``."""


class Extension(ABC):
    """A negotiated extension, one per connection (it may keep state)."""

    name: str
    """The extension token, for example ``"permessage-deflate"``."""

    @abstractmethod
    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Transform a received data frame.

        Args:
            frame: the frame as received; the extension clears the RSV bits it
                owns.
            max_size: how many more bytes the current message may have once
                decoded; exceeding it must raise
                :class:`~hubbub.exceptions.PayloadTooBig` before using more
                memory than that.
        """

    partial_decoding = False
    """Whether :meth:`decode` takes a ``limit`` and may leave part of a frame
    for :meth:`decode_rest` (permessage-deflate does: see the connection's
    ``decode_limit``, which bounds what one parsing step inflates)."""

    @property
    def decode_pending(self) -> bool:
        """Whether part of the last frame decoded with a ``limit`` waits for :meth:`decode_rest`."""
        return False

    def decode_rest(self, *, max_size: int | None = None, limit: int | None = None) -> Frame:
        """Decode the next part of a frame left pending (only if :attr:`partial_decoding`).

        Returns a continuation frame, FIN set on the last part of a final frame.
        """
        raise NotImplementedError("this extension decodes whole frames only")

    @abstractmethod
    def encode(self, frame: Frame) -> Frame:
        """Transform a data frame about to be sent."""

    def is_transformed(self, frame: Frame) -> bool:
        """Tell whether a message starting with ``frame`` is transformed.

        The connection validates UTF-8 of text messages while they arrive,
        before a frame is complete; it only does so for messages that no
        extension transforms. By default a set RSV1 bit means transformed.
        """
        return frame.rsv1

    def release(self) -> None:  # noqa: B027 (optional hook, empty by default)
        """Free what the extension holds (called when the connection closes)."""


class ClientExtensionFactory(ABC):
    """Offers an extension from the client and accepts the server's answer."""

    name: str

    @abstractmethod
    def get_request_params(self) -> ExtensionParams:
        """The parameters to offer."""

    @abstractmethod
    def process_response_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> Extension:
        """Build the extension from the server's answer.

        Raises:
            NegotiationError: the answer is not acceptable; the client fails
                the connection (section 9.1).
        """


class ServerExtensionFactory(ABC):
    """Accepts or declines a client's offer of an extension."""

    name: str

    @abstractmethod
    def process_request_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> tuple[ExtensionParams, Extension]:
        """Accept an offer: the parameters to answer with, and the extension.

        Raises:
            NegotiationError: this offer is declined; the next one is tried.
        """


_TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_PARAM = re.compile(rf"\s*({_TOKEN})\s*(?:=\s*({_TOKEN}|\"(?:[^\"\\]|\\.)*\"))?\s*")


def parse_extension_header(value: str) -> list[tuple[str, ExtensionParams]]:
    """Parse a ``Sec-WebSocket-Extensions`` value into ``[(name, params), ...]``.

    Quoted parameter values are unquoted (section 9.1: "the value ... MUST
    conform to the token ABNF" once unquoted, which the extension checks).

    Raises:
        InvalidHeader: the value does not follow the grammar.
    """
    result: list[tuple[str, ExtensionParams]] = []
    for item in _split_outside_quotes(value, ","):
        if not item.strip():
            continue
        parts = _split_outside_quotes(item, ";")
        name_match = re.fullmatch(rf"\s*({_TOKEN})\s*", parts[0])
        if name_match is None:
            raise InvalidHeader("Sec-WebSocket-Extensions", value)
        params: ExtensionParams = []
        for part in parts[1:]:
            m = _PARAM.fullmatch(part)
            if m is None:
                raise InvalidHeader("Sec-WebSocket-Extensions", value)
            pvalue = m.group(2)
            if pvalue is not None and pvalue.startswith('"'):
                pvalue = re.sub(r"\\(.)", r"\1", pvalue[1:-1])
            params.append((m.group(1), pvalue))
        result.append((name_match.group(1), params))
    return result


def _split_outside_quotes(value: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if quoted:
        raise InvalidHeader("Sec-WebSocket-Extensions", value, "unterminated quoted string")
    parts.append("".join(current))
    return parts


def build_extension_header(extensions: Sequence[tuple[str, ExtensionParams]]) -> str:
    """Build a ``Sec-WebSocket-Extensions`` value."""
    items = []
    for name, params in extensions:
        items.append("; ".join([name, *(p if v is None else f"{p}={v}" for p, v in params)]))
    return ", ".join(items)
