"""The hub's wire protocol, ``hubbub.json.v1``, without I/O.

Theory of operation
-------------------

Every WebSocket text message from a client is one JSON object, a *request*::

    {"id": 7, "method": "publish", "params": {"channel": "chat:lobby", "data": "hi"}}

The hub answers each request with exactly one *reply* carrying the same ``id``
and either ``result`` or ``error`` (``{"code": 102, "message": "..."}``). Between
replies it sends *pushes*, objects with a ``push`` member and no ``id``. The full
specification, with every command, push and error code, is ``docs/protocol.md``;
this module is its executable half:

* :func:`parse_request` turns raw text into one of the typed command dataclasses
  below, or into a :class:`Rejected` value carrying the numbered error to answer
  with. It never raises, whatever the input, so a hostile client cannot make an
  exception escape into the hub (a property the fuzz tests check);
* :func:`decode` accepts only what the hub can send back out: strict JSON
  (RFC 8259) whose strings are valid Unicode (RFC 8259 section 8.2 allows an
  escaped lone surrogate such as ``"\\ud800"``, which no UTF-8 text frame can
  carry, RFC 6455 section 5.6) nested at most :data:`MAX_DEPTH` deep (the
  hub wraps what it relays in a push, which must still encode);
* :func:`encode_result`, :func:`encode_error` and :func:`encode_push` build the
  outgoing text. Encoding is compact and refuses NaN, so every message the hub
  sends is strict JSON that any language's parser accepts.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "INBOX",
    "MAX_DEPTH",
    "MAX_ID",
    "SUBPROTOCOL",
    "Ack",
    "Command",
    "Connect",
    "ErrorCode",
    "History",
    "InvalidText",
    "Online",
    "Ping",
    "Presence",
    "PresenceStats",
    "Publish",
    "Refresh",
    "Rejected",
    "Send",
    "Since",
    "Subscribe",
    "Unsubscribe",
    "decode",
    "encode",
    "encode_error",
    "encode_push",
    "encode_result",
    "parse_params",
    "parse_request",
    "utf8_length",
    "valid_channel",
    "valid_user",
]

#: The WebSocket subprotocol (RFC 6455 section 1.9) a client must offer.
SUBPROTOCOL = "hubbub.json.v1"

#: Name by which a client designates its own inbox stream.
INBOX = "$inbox"

#: Largest request id: 2**53 - 1, so that JavaScript numbers represent every id exactly.
MAX_ID = 2**53 - 1

#: Deepest nesting of arrays and objects in a request (the request object is level 1).
MAX_DEPTH = 64

JSON: TypeAlias = Any

# A surrogate code point in decoded text is a lone one (a valid pair decodes to
# one astral character). In raw JSON text it can also come as a \uD800-\uDFFF
# escape, the only way it gets past a UTF-8 decoder.
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")

try:
    import orjson
except ImportError:  # the hub extra installs it; without it the stdlib does it all
    _orjson_dumps: Any = None
    _orjson_loads: Any = None
else:
    _orjson_dumps = orjson.dumps
    _orjson_loads = orjson.loads

_CHANNEL_RE = re.compile(r"[A-Za-z0-9_\-.:@=/+#,]{1,255}")
_USER_RE = re.compile(r"[^\x00-\x20\x7f$][^\x00-\x1f\x7f]{0,127}")


class ErrorCode(enum.IntEnum):
    """Numbered errors of the wire protocol (table in ``docs/protocol.md``)."""

    # 1xx: the request is wrong.
    BAD_REQUEST = 100
    UNKNOWN_METHOD = 101
    INVALID_PARAMS = 102
    NOT_CONNECTED = 103
    ALREADY_CONNECTED = 104
    NOT_SUBSCRIBED = 105
    ALREADY_SUBSCRIBED = 106
    UNKNOWN_CHANNEL = 107
    EPOCH_MISMATCH = 108
    # 2xx: who you are or what you may do.
    UNAUTHORIZED = 200
    TOKEN_EXPIRED = 201
    PERMISSION_DENIED = 202
    # 3xx: a limit was reached; the request may be retried later or made smaller.
    RATE_LIMITED = 300
    BYTES_RATE_LIMITED = 301
    MESSAGE_TOO_LARGE = 302
    TOO_MANY_CHANNELS = 303
    TOO_MANY_RECIPIENTS = 304
    # 5xx: the hub failed.
    INTERNAL = 500
    BROKER_UNAVAILABLE = 501
    NOT_AVAILABLE = 502


def valid_channel(name: str) -> bool:
    """Whether ``name`` is a channel name: 1-255 of ``[A-Za-z0-9_-.:@=/+#,]``."""
    return _CHANNEL_RE.fullmatch(name) is not None


def valid_user(user: str) -> bool:
    """Whether ``user`` is a user id: 1-128 printable characters, not starting with ``$``."""
    return _USER_RE.fullmatch(user) is not None


# --- commands ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Since:
    """A stream position a client has seen: the offset of its last entry and the epoch."""

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Connect:
    """Authenticate the connection; ``token`` is a JWT, ``name`` works in development mode.

    ``inbox_epoch`` is the inbox epoch the client last knew (section 2.2), or
    None: the hub compares it, not only its own stored ack, which a broker
    that lost the inbox lost too.
    """

    id: int
    token: str | None
    name: str | None
    tick: bool
    inbox_epoch: str | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """Replace the connection's token before it expires."""

    id: int
    token: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Join a channel, optionally recovering what was published after ``since``."""

    id: int
    channel: str
    since: Since | None
    token: str | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Leave a channel."""

    id: int
    channel: str


@dataclass(slots=True)  # not frozen: see Entry in core/streams.py
class Publish:
    """Publish ``data`` (any JSON value) to a channel."""

    id: int
    channel: str
    data: JSON


@dataclass(slots=True)  # not frozen: see Entry in core/streams.py
class Send:
    """Send ``data`` to the inboxes of the users in ``to``."""

    id: int
    to: tuple[str, ...]
    data: JSON


@dataclass(frozen=True, slots=True)
class Presence:
    """Who is in a channel."""

    id: int
    channel: str


@dataclass(frozen=True, slots=True)
class PresenceStats:
    """How many users and connections are in a channel."""

    id: int
    channel: str


@dataclass(frozen=True, slots=True)
class Online:
    """Which of ``users`` have at least one live connection anywhere in the hub."""

    id: int
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class History:
    """Read a stream: entries after ``since``, or the newest ``limit`` ones."""

    id: int
    stream: str
    since: Since | None
    limit: int


@dataclass(frozen=True, slots=True)
class Ack:
    """Confirm every inbox entry up to ``offset`` (in ``epoch``, if given)."""

    id: int
    stream: str
    offset: int
    epoch: str | None


@dataclass(frozen=True, slots=True)
class Ping:
    """Application-level round trip; the result carries the server's time."""

    id: int


Command: TypeAlias = (
    Connect
    | Refresh
    | Subscribe
    | Unsubscribe
    | Publish
    | Send
    | Presence
    | PresenceStats
    | Online
    | History
    | Ack
    | Ping
)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request that cannot be executed; answer ``id`` (``None`` if unknown) with the error."""

    id: int | None
    code: ErrorCode
    message: str


class _Invalid(Exception):
    """Internal: a parameter is wrong; turned into ``INVALID_PARAMS``."""


#: Default and largest number of entries a ``history`` request returns.
DEFAULT_HISTORY_LIMIT = 100
MAX_HISTORY_LIMIT = 1000


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # float("1e400") is inf, which strict JSON cannot carry back out.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


class InvalidText(ValueError):
    """Strict JSON the hub refuses: a lone surrogate, or nesting deeper than :data:`MAX_DEPTH`."""


def utf8_length(text: str) -> int:
    """Length of ``text`` in UTF-8 bytes, the unit of every size limit of the hub."""
    if text.isascii():  # O(1) in CPython: a flag of the string object
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _check_value(value: Any) -> None:
    """Raise :class:`InvalidText` for a lone surrogate (keys included) or deep nesting."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InvalidText("strings must be valid Unicode: lone surrogate")
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise InvalidText(f"arrays and objects nest more than {MAX_DEPTH} deep")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def _needs_check(raw: str | bytes) -> bool:
    # Cheap scans (C speed) that clear almost every message: without a
    # surrogate escape and with fewer brackets than MAX_DEPTH, nothing to walk.
    # The substring tests come first: a regular expression tried at every
    # position cost more than decoding the message.
    if isinstance(raw, bytes):
        if b"\\u" in raw and _SURROGATE_ESCAPE_BYTES.search(raw):
            return True
        return raw.count(b"[") + raw.count(b"{") > MAX_DEPTH
    if "\\u" in raw and _SURROGATE_ESCAPE.search(raw):
        return True
    if not raw.isascii() and _SURROGATE.search(raw):
        return True
    return raw.count("[") + raw.count("{") > MAX_DEPTH


def _decode_json(raw: str | bytes) -> Any:
    if isinstance(raw, str):
        return _DECODER.decode(raw)  # what json.loads does, without a new decoder each call
    return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)


def decode(raw: str | bytes) -> Any:
    """Strict JSON the hub can relay.

    No NaN, no Infinity, no number that overflows to infinity; every string
    (object keys included) valid Unicode, so no lone surrogate; arrays and
    objects nested at most :data:`MAX_DEPTH` deep.

    Raises:
        InvalidText: valid JSON the hub refuses (a ``ValueError``).
        ValueError: not strict JSON (RecursionError for absurd nesting).
    """
    value = _decode_json(raw)
    if _needs_check(raw):
        _check_value(value)
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _exact(value: Any) -> bool:
    """Whether ``value`` holds no float (what orjson makes of an integer beyond 64 bits)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is dict:
        return all(map(_exact, value.values()))
    if kind is list:
        return all(map(_exact, value))
    return False


def _decode_request(raw: str) -> tuple[Any, bool]:
    """Decode a request as :data:`_DECODER` does, with orjson first when it is installed.

    Returns the value, and whether orjson decoded it: then it holds no lone
    surrogate (orjson refuses them, escaped or not), only depth is left to check.

    orjson decodes a request three to four times faster, and where it differs
    from the stdlib it is caught here so that the result and the errors stay
    the stdlib's own: anything orjson refuses (NaN, a number that overflows, a
    lone surrogate escape, a byte order mark, nesting beyond 1,024) is decoded
    again by the stdlib, which accepts or refuses it as before; and an integer
    beyond 64 bits, which orjson turns into a float, must stay exact where the
    hub relays it as it came, in ``params.data`` (every other field is checked
    as an integer in a range well inside 64 bits, or as a string, so a float
    there is refused with the very error the exact integer gets). Walking
    ``data`` costs nothing in the usual case, a string.
    """
    if _orjson_loads is None:
        return _DECODER.decode(raw), False
    try:
        obj = _orjson_loads(raw)
    except ValueError:  # orjson.JSONDecodeError
        return _DECODER.decode(raw), False
    if type(obj) is dict:
        params = obj.get("params")
        if type(params) is dict:
            data = params.get("data")
            if type(data) is not str:
                try:
                    exact = _exact(data)
                except RecursionError:  # nested deeper than the stack: the stdlib decides
                    exact = False
                if not exact:
                    # Floats, or integers beyond 64 bits.
                    return _DECODER.decode(raw), False
    return obj, True


def parse_request(raw: str | bytes) -> Command | Rejected:
    """Parse one client message.

    Args:
        raw: the message as received; binary messages are rejected (the JSON
            encoding uses text frames only).

    Returns:
        The command, or a :class:`Rejected` value saying which error to reply.
        Never raises.
    """
    if not isinstance(raw, str):
        return Rejected(None, ErrorCode.BAD_REQUEST, "binary messages are not supported")
    try:
        obj, valid_unicode = _decode_request(raw)
    except (ValueError, RecursionError):
        return Rejected(None, ErrorCode.BAD_REQUEST, "message is not valid JSON")
    if not isinstance(obj, dict):
        return Rejected(None, ErrorCode.BAD_REQUEST, "message is not a JSON object")
    req_id = obj.get("id")
    if type(req_id) is not int or not 1 <= req_id <= MAX_ID:
        return Rejected(None, ErrorCode.BAD_REQUEST, "id must be an integer in 1..2**53-1")
    if raw.count("[") + raw.count("{") > MAX_DEPTH or (not valid_unicode and _needs_check(raw)):
        # Refused here, whatever the field: text the hub could not encode back
        # into a UTF-8 frame would fail later, at delivery (issue 12).
        try:
            _check_value(obj)
        except InvalidText as exc:
            return Rejected(req_id, ErrorCode.BAD_REQUEST, str(exc))
    method = obj.get("method")
    if not isinstance(method, str):
        return Rejected(req_id, ErrorCode.BAD_REQUEST, "method must be a string")
    return parse_params(method, obj.get("params", {}), req_id)


def parse_params(method: str, params: Any, req_id: int = 0) -> Command | Rejected:
    """Validate the ``params`` of a known ``method`` (also used by the HTTP API).

    Never raises; an unknown method is rejected with ``UNKNOWN_METHOD``.
    """
    parser = _PARSERS.get(method)
    if parser is None:
        return Rejected(req_id, ErrorCode.UNKNOWN_METHOD, f"unknown method {method[:40]!r}")
    if not isinstance(params, dict):
        return Rejected(req_id, ErrorCode.INVALID_PARAMS, "params must be an object")
    try:
        return parser(req_id, params)
    except _Invalid as exc:
        return Rejected(req_id, ErrorCode.INVALID_PARAMS, str(exc))


# --- parameter helpers -------------------------------------------------------------


def _str(params: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = params.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{key} must be a non-empty string")
    return value


def _required_str(params: Mapping[str, Any], key: str) -> str:
    value = _str(params, key)
    assert value is not None
    return value


def _int(params: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = params.get(key)
    # bool is a subclass of int in Python but not a number on the wire.
    if type(value) is not int or not low <= value <= high:
        raise _Invalid(f"{key} must be an integer in {low}..{high}")
    return value


def _channel(params: Mapping[str, Any]) -> str:
    channel = _required_str(params, "channel")
    if not valid_channel(channel):
        raise _Invalid("channel must be 1-255 characters among A-Z a-z 0-9 _-.:@=/+#,")
    return channel


def _since(params: Mapping[str, Any]) -> Since | None:
    since = params.get("since")
    if since is None:
        return None
    if not isinstance(since, dict):
        raise _Invalid("since must be an object {offset, epoch}")
    return Since(_int(since, "offset", 0, MAX_ID), _required_str(since, "epoch"))


def _users(params: Mapping[str, Any], key: str) -> tuple[str, ...]:
    users = params.get(key)
    if not isinstance(users, list) or not users:
        raise _Invalid(f"{key} must be a non-empty list of user ids")
    seen: dict[str, None] = {}
    for user in users:
        if not isinstance(user, str) or not valid_user(user):
            raise _Invalid(f"{key} must contain user ids (1-128 printable characters)")
        seen[user] = None  # de-duplicates, keeping the order
    return tuple(seen)


def _has(params: Mapping[str, Any], key: str) -> JSON:
    if key not in params:
        raise _Invalid(f"{key} is required")
    return params[key]


def _connect(req_id: int, params: Mapping[str, Any]) -> Connect:
    token = _str(params, "token", optional=True)
    name = _str(params, "name", optional=True)
    # Neither: valid when the hub authenticated the handshake itself (an ASGI
    # auth hook); otherwise the node answers INVALID_PARAMS "token is required".
    if name is not None and not valid_user(name):
        raise _Invalid("name must be a valid user id")
    tick = params.get("tick", False)
    if not isinstance(tick, bool):
        raise _Invalid("tick must be a boolean")
    inbox_epoch = _str(params, "inbox_epoch", optional=True)
    return Connect(req_id, token, name, tick, inbox_epoch)


def _stream(params: Mapping[str, Any]) -> str:
    stream = _required_str(params, "stream")
    if stream != INBOX and not valid_channel(stream):
        raise _Invalid(f"stream must be {INBOX!r} or a channel name")
    return stream


def _history(req_id: int, params: Mapping[str, Any]) -> History:
    limit = DEFAULT_HISTORY_LIMIT
    if "limit" in params:
        limit = _int(params, "limit", 1, MAX_HISTORY_LIMIT)
    return History(req_id, _stream(params), _since(params), limit)


def _ack(req_id: int, params: Mapping[str, Any]) -> Ack:
    stream = _stream(params)
    if stream != INBOX:
        raise _Invalid(f"only the {INBOX!r} stream is acknowledged")
    return Ack(
        req_id, stream, _int(params, "offset", 0, MAX_ID), _str(params, "epoch", optional=True)
    )


def _subscribe(req_id: int, params: Mapping[str, Any]) -> Subscribe:
    return Subscribe(req_id, _channel(params), _since(params), _str(params, "token", optional=True))


_PARSERS: dict[str, Callable[[int, Mapping[str, Any]], Command]] = {
    "connect": _connect,
    "refresh": lambda i, p: Refresh(i, _required_str(p, "token")),
    "subscribe": _subscribe,
    "unsubscribe": lambda i, p: Unsubscribe(i, _channel(p)),
    "publish": lambda i, p: Publish(i, _channel(p), _has(p, "data")),
    "send": lambda i, p: Send(i, _users(p, "to"), _has(p, "data")),
    "presence": lambda i, p: Presence(i, _channel(p)),
    "presence_stats": lambda i, p: PresenceStats(i, _channel(p)),
    "online": lambda i, p: Online(i, _users(p, "users")),
    "history": _history,
    "ack": _ack,
    "ping": lambda i, p: Ping(i),
}


# --- encoding -------------------------------------------------------------------


def _not_json(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# json.dumps builds a new encoder object on every call; the hub encodes every
# reply and push, so the C encoder json.dumps would use is built once (about
# twice as fast per call). markers=None: no circular-reference check, as what
# the hub encodes comes from parsed JSON (a cycle ends in RecursionError).
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_encode_chunks: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
)


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


# What orjson would encode and the stdlib refuses (dataclasses, datetimes,
# subclasses of str, int, dict, list) goes to ``default`` (None: TypeError),
# and so to the stdlib, which refuses it as before.
_ORJSON_OPTIONS = (
    0
    if _orjson_dumps is None
    else orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def encode(obj: JSON) -> str:
    """Compact, strict JSON (no NaN or Infinity), UTF-8 characters kept as they are.

    The result always encodes to UTF-8: a lone surrogate (which only the
    server's own API could hand over, requests refuse them) is written as its
    ``\\uXXXX`` escape, as ``ensure_ascii`` would, rather than making the
    text frame fail for its recipients.

    With ``orjson`` installed (the ``hub`` extra) it encodes first, two to
    three times faster than the stdlib's C encoder. What it cannot take (an
    integer beyond 64 bits, a lone surrogate, a key that is not a string)
    raises, and what has a ``null`` may be a NaN or an infinity, which orjson
    writes as ``null`` where this protocol refuses them: those texts are
    encoded again by the stdlib, so the result and the errors are the
    stdlib's own.
    """
    if _orjson_dumps is not None:
        try:
            text: str = _orjson_dumps(obj, None, _ORJSON_OPTIONS).decode()
        except TypeError:
            pass
        else:
            # Searched in the str: ``in`` on bytes first tries its operand as
            # an integer, and formats an exception each time it is not one.
            if "null" not in text:
                return text
    if _encode_chunks is not None:
        text = "".join(_encode_chunks(obj, 0))
    else:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if not text.isascii() and _SURROGATE.search(text):
        # Outside strings JSON is ASCII: every surrogate is inside a string.
        text = _SURROGATE.sub(_escape_surrogate, text)
    return text


def encode_result(req_id: int, result: JSON) -> str:
    """The reply to a successful request."""
    return encode({"id": req_id, "result": result})


def encode_error(req_id: int | None, code: ErrorCode, message: str) -> str:
    """The reply to a failed request (``id`` is ``null`` when it could not be read)."""
    return encode({"id": req_id, "error": {"code": int(code), "message": message}})


def encode_push(push: str, fields: Mapping[str, JSON]) -> str:
    """A server push: ``{"push": <type>, ...fields}``."""
    return encode({"push": push, **fields})
