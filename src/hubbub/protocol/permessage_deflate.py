"""The permessage-deflate extension (RFC 7692): negotiation and options.

This module is the public face of permessage-deflate: the factories that offer,
accept and check it during the opening handshake, and
:func:`deflate_factories`, which turns the adapters' ``compression`` option into
those factories. What runs on an open connection, :class:`PerMessageDeflate`
(compressing and inflating frames, and keeping memory low between messages),
lives in :mod:`hubbub.protocol.deflate_codec`, with its own theory of
operation; it is re-exported here, so ``from hubbub.protocol.permessage_deflate
import PerMessageDeflate`` keeps working.

Negotiation (sections 5 and 7.1). A client offers ``permessage-deflate`` with
up to four parameters; the server accepts one offer, answering with the
parameters that bind both ends, or declines it (:class:`NegotiationError`, and
the next offer is tried). Each end ends up with one :class:`PerMessageDeflate`
seen from its own side: *local* parameters govern what it compresses, *remote*
ones what it decompresses. ``server_*`` parameters are local on the server and
remote on the client.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal, TypedDict, Unpack, cast, overload

from ..exceptions import NegotiationError
from .connection import Side
from .deflate_codec import (
    DEFAULT_LEVEL,
    DEFAULT_MEM_LEVEL,
    DEFAULT_MIN_SIZE,
    DEFAULT_WINDOW_BITS,
    EXTENSION_NAME,
    PerMessageDeflate,
    _check_bits,
    _check_options,
)
from .extensions import ClientExtensionFactory, Extension, ExtensionParams, ServerExtensionFactory

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "DEFAULT_MIN_SIZE",
    "DEFAULT_WINDOW_BITS",
    "ClientPerMessageDeflateFactory",
    "DeflateOptions",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
    "deflate_factories",
]

# Section 7.1.2.1: "a decimal integer value without leading zeroes between 8
# to 15, inclusive".
_WINDOW_BITS = re.compile(r"8|9|1[0-5]")
_SERVER_NCT = "server_no_context_takeover"
_CLIENT_NCT = "client_no_context_takeover"
_SERVER_MWB = "server_max_window_bits"
_CLIENT_MWB = "client_max_window_bits"
_PARAMETERS = frozenset({_SERVER_NCT, _CLIENT_NCT, _SERVER_MWB, _CLIENT_MWB})


# --- negotiation -----------------------------------------------------------------


def _parse_params(params: ExtensionParams, *, response: bool) -> dict[str, str | None]:
    """Check parameters of an offer or a response (sections 7.1.1 and 7.1.2).

    Raises:
        NegotiationError: unknown or duplicate parameter, or invalid value.
    """
    found: dict[str, str | None] = {}
    for name, value in params:
        if name not in _PARAMETERS:
            raise NegotiationError(f"unknown {EXTENSION_NAME} parameter: {name}")
        if name in found:
            raise NegotiationError(f"duplicate {EXTENSION_NAME} parameter: {name}")
        if name in (_SERVER_NCT, _CLIENT_NCT):
            if value is not None:
                raise NegotiationError(f"{name} takes no value, got {value!r}")
        elif value is None:
            # Only an offer's client_max_window_bits may come without a value
            # (section 7.1.2.2).
            if name == _SERVER_MWB or response:
                raise NegotiationError(f"{name} needs a value")
        elif _WINDOW_BITS.fullmatch(value) is None:
            raise NegotiationError(f"{name} must be an integer from 8 to 15, got {value!r}")
        found[name] = value
    return found


def _reject_duplicate(accepted: Sequence[Extension]) -> None:
    # Section 5: permessage-deflate uses RSV1 and can be negotiated once.
    if any(ext.name == EXTENSION_NAME for ext in accepted):
        raise NegotiationError(f"{EXTENSION_NAME} was already negotiated")


class _Tuning:
    """The options that are not negotiated, shared by both factories."""

    level: int
    mem_level: int
    min_size: int
    keep_zlib_objects: bool

    def _set_tuning(self, level: int, mem_level: int, min_size: int, keep: bool) -> None:
        _check_options(level, mem_level, min_size)
        self.level = level
        self.mem_level = mem_level
        self.min_size = min_size
        self.keep_zlib_objects = keep

    def _extension(
        self, local_nct: bool, remote_nct: bool, local_bits: int, remote_bits: int
    ) -> PerMessageDeflate:
        return PerMessageDeflate(
            local_no_context_takeover=local_nct,
            remote_no_context_takeover=remote_nct,
            local_max_window_bits=local_bits,
            remote_max_window_bits=remote_bits,
            level=self.level,
            mem_level=self.mem_level,
            min_size=self.min_size,
            keep_zlib_objects=self.keep_zlib_objects,
        )


class ServerPerMessageDeflateFactory(_Tuning, ServerExtensionFactory):
    """Accept a client's permessage-deflate offer.

    The defaults keep memory low: both windows limited to 12 bits when the
    client allows it (a client that does not offer ``client_max_window_bits``
    cannot be limited, section 7.1.2.2), and no zlib object between messages.

    Args:
        server_no_context_takeover: always reset our window between messages
            (we also do so whenever the client asks).
        client_no_context_takeover: always ask the client to reset its window
            (we also ask when the client offers it, which costs nothing).
        server_max_window_bits: largest window we compress with; ``None`` for
            15 unless the client asks for less.
        client_max_window_bits: largest window we let the client compress with,
            if it offers to be limited; ``None`` for no limit.
        level: see :class:`PerMessageDeflate`.
        mem_level: see :class:`PerMessageDeflate`.
        min_size: see :class:`PerMessageDeflate`.
        keep_zlib_objects: see :class:`PerMessageDeflate`.
    """

    name = EXTENSION_NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = DEFAULT_WINDOW_BITS,
        client_max_window_bits: int | None = DEFAULT_WINDOW_BITS,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        min_size: int = DEFAULT_MIN_SIZE,
        keep_zlib_objects: bool = False,
    ) -> None:
        if server_max_window_bits is not None:
            _check_bits("server_max_window_bits", server_max_window_bits)
        if client_max_window_bits is not None:
            _check_bits("client_max_window_bits", client_max_window_bits)
        self._set_tuning(level, mem_level, min_size, keep_zlib_objects)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits

    def process_request_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> tuple[ExtensionParams, PerMessageDeflate]:
        """Accept one offer, or decline it with :class:`NegotiationError` (section 7.1)."""
        _reject_duplicate(accepted)
        offer = _parse_params(params, response=False)
        answer: ExtensionParams = []
        # Section 7.1.1.1: accepting an offer with server_no_context_takeover
        # means answering it; the server may also answer it unasked.
        server_nct = self.server_no_context_takeover or _SERVER_NCT in offer
        if server_nct:
            answer.append((_SERVER_NCT, None))
        # Section 7.1.1.2: the server may always answer client_no_context_takeover;
        # when the client offered it, answering lets us drop its window for free.
        client_nct = self.client_no_context_takeover or _CLIENT_NCT in offer
        if client_nct:
            answer.append((_CLIENT_NCT, None))
        # Section 7.1.2.1: answer the same or a smaller value than requested;
        # the server may also limit its window unasked.
        server_bits = 15 if self.server_max_window_bits is None else self.server_max_window_bits
        requested = offer.get(_SERVER_MWB)
        if requested is not None:
            server_bits = min(server_bits, int(requested))
        if requested is not None or server_bits < 15:
            answer.append((_SERVER_MWB, str(server_bits)))
        # Section 7.1.2.2: the client's window may only be limited if the client
        # offered client_max_window_bits, to its value at most.
        client_bits = 15
        if _CLIENT_MWB in offer:
            allowed = offer[_CLIENT_MWB]
            client_bits = 15 if allowed is None else int(allowed)
            if self.client_max_window_bits is not None:
                client_bits = min(client_bits, self.client_max_window_bits)
            if allowed is not None or client_bits < 15:
                answer.append((_CLIENT_MWB, str(client_bits)))
        return answer, self._extension(server_nct, client_nct, server_bits, client_bits)


class ClientPerMessageDeflateFactory(_Tuning, ClientExtensionFactory):
    """Offer permessage-deflate and check the server's answer.

    The default offer is ``permessage-deflate; client_max_window_bits``, as
    browsers send it: the server may limit our window, and asks for nothing it
    could have to decline. Whatever the server allows, our compressor uses at
    most ``window_bits`` (12: a 4 KiB window, cheap to rebuild and cheap for
    the server to inflate); a smaller window than allowed is always valid,
    since any inflater reads a stream made with a smaller window. (Offering
    ``client_max_window_bits=12`` instead would bind the server too, but some
    servers, Autobahn's among them, then answer 15 and must be refused.)

    Args:
        server_no_context_takeover: ask the server to reset its window.
        client_no_context_takeover: tell the server we reset ours (section
            7.1.1.2: a hint that holds even if the server does not answer it).
        server_max_window_bits: ask the server for at most this window.
        client_max_window_bits: ``True`` offers the parameter without a value
            (the server may then limit our window), an integer offers it with
            that value (our largest window), ``None`` does not offer it.
        window_bits: the largest window our compressor uses, within what the
            server allows; by default the numeric ``client_max_window_bits``
            offered, else 12.
        level: see :class:`PerMessageDeflate`.
        mem_level: see :class:`PerMessageDeflate`.
        min_size: see :class:`PerMessageDeflate`.
        keep_zlib_objects: see :class:`PerMessageDeflate`.
    """

    name = EXTENSION_NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | Literal[True] | None = True,
        window_bits: int | None = None,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        min_size: int = DEFAULT_MIN_SIZE,
        keep_zlib_objects: bool = False,
    ) -> None:
        if server_max_window_bits is not None:
            _check_bits("server_max_window_bits", server_max_window_bits)
        if client_max_window_bits is not None and client_max_window_bits is not True:
            _check_bits("client_max_window_bits", client_max_window_bits)
        if window_bits is None:
            # An explicit numeric offer is also our compressor's window.
            window_bits = (
                client_max_window_bits
                if isinstance(client_max_window_bits, int) and client_max_window_bits is not True
                else DEFAULT_WINDOW_BITS
            )
        _check_bits("window_bits", window_bits)
        self.window_bits = window_bits
        self._set_tuning(level, mem_level, min_size, keep_zlib_objects)
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits

    def get_request_params(self) -> ExtensionParams:
        params: ExtensionParams = []
        if self.server_no_context_takeover:
            params.append((_SERVER_NCT, None))
        if self.client_no_context_takeover:
            params.append((_CLIENT_NCT, None))
        if self.server_max_window_bits is not None:
            params.append((_SERVER_MWB, str(self.server_max_window_bits)))
        bits = self.client_max_window_bits
        if bits is True:
            params.append((_CLIENT_MWB, None))
        elif bits is not None:
            params.append((_CLIENT_MWB, str(bits)))
        return params

    def process_response_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> PerMessageDeflate:
        """Check the server's answer (section 7.1); :class:`NegotiationError` fails it."""
        _reject_duplicate(accepted)
        answer = _parse_params(params, response=True)
        server_nct = _SERVER_NCT in answer
        if self.server_no_context_takeover and not server_nct:
            raise NegotiationError(f"server accepted {EXTENSION_NAME} without {_SERVER_NCT}")
        client_nct = self.client_no_context_takeover or _CLIENT_NCT in answer
        server_value = answer.get(_SERVER_MWB)
        if server_value is None:
            if self.server_max_window_bits is not None:
                raise NegotiationError(f"server accepted {EXTENSION_NAME} without {_SERVER_MWB}")
            server_bits = 15
        else:
            server_bits = int(server_value)
            limit = self.server_max_window_bits
            if limit is not None and server_bits > limit:
                raise NegotiationError(
                    f"server answered {_SERVER_MWB}={server_bits}, more than requested"
                )
        offered = self.client_max_window_bits
        client_value = answer.get(_CLIENT_MWB)
        if client_value is None:
            client_bits = 15 if offered is None or offered is True else offered
        else:
            # Section 7.1.2.2: the server may answer it only if it was offered,
            # with a value no larger than the offered one.
            if offered is None:
                raise NegotiationError(f"server answered {_CLIENT_MWB}, which was not offered")
            client_bits = int(client_value)
            if offered is not True and client_bits > offered:
                raise NegotiationError(
                    f"server answered {_CLIENT_MWB}={client_bits}, more than offered"
                )
        client_bits = min(client_bits, self.window_bits)
        return self._extension(client_nct, server_nct, client_bits, server_bits)


# --- the adapters' ``compression`` option ------------------------------------------


class DeflateOptions(TypedDict, total=False):
    """Options of both factories; window bits default per side (see each factory)."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int | None
    client_max_window_bits: int | Literal[True] | None  # True: client only
    window_bits: int  # client only
    level: int
    mem_level: int
    min_size: int
    keep_zlib_objects: bool


@overload
def deflate_factories(
    side: Literal[Side.SERVER], compression: str | None = ..., **options: Unpack[DeflateOptions]
) -> list[ServerPerMessageDeflateFactory]: ...
@overload
def deflate_factories(
    side: Literal[Side.CLIENT], compression: str | None = ..., **options: Unpack[DeflateOptions]
) -> list[ClientPerMessageDeflateFactory]: ...
@overload
def deflate_factories(
    side: Side, compression: str | None = ..., **options: Unpack[DeflateOptions]
) -> list[ServerPerMessageDeflateFactory] | list[ClientPerMessageDeflateFactory]: ...
def deflate_factories(
    side: Side, compression: str | None = "deflate", **options: Unpack[DeflateOptions]
) -> list[ServerPerMessageDeflateFactory] | list[ClientPerMessageDeflateFactory]:
    """Turn an adapter's ``compression`` option into extension factories.

    ``compression="deflate"`` (the adapters' default) enables permessage-deflate
    with the given options, ``None`` disables it (an empty list). For example
    ``ServerConnection(extensions=deflate_factories(Side.SERVER, "deflate",
    level=9))``.

    Raises:
        ValueError: unknown compression or invalid option value.
    """
    if compression is None:
        if options:
            raise ValueError("compression options given with compression=None")
        return []
    if compression != "deflate":
        raise ValueError(f"unsupported compression: {compression!r}; use 'deflate' or None")
    if side is Side.SERVER:
        if "window_bits" in options:
            raise ValueError("window_bits is a client option; servers use *_max_window_bits")
        return [ServerPerMessageDeflateFactory(**cast(Any, options))]
    return [ClientPerMessageDeflateFactory(**options)]
