"""The wire protocol: parsing every command, rejecting bad input with numbered errors."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.hub.core import protocol as p
from hubbub.hub.core.protocol import ErrorCode, Since


def req(method: str, params: object = None, req_id: object = 1) -> str:
    obj: dict[str, object] = {"id": req_id, "method": method}
    if params is not None:
        obj["params"] = params
    return json.dumps(obj)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (req("connect", {"token": "t"}), p.Connect(1, "t", None, False)),
        (req("connect", {"name": "bob", "tick": True}), p.Connect(1, None, "bob", True)),
        (
            req("connect", {"token": "t", "inbox_epoch": "e1"}),
            p.Connect(1, "t", None, False, "e1"),
        ),
        (req("refresh", {"token": "t2"}), p.Refresh(1, "t2")),
        (req("subscribe", {"channel": "chat:a"}), p.Subscribe(1, "chat:a", None, None)),
        (
            req("subscribe", {"channel": "c", "since": {"offset": 3, "epoch": "e"}, "token": "s"}),
            p.Subscribe(1, "c", p.Since(3, "e"), "s"),
        ),
        (req("unsubscribe", {"channel": "c"}), p.Unsubscribe(1, "c")),
        (req("publish", {"channel": "c", "data": {"x": [1]}}), p.Publish(1, "c", {"x": [1]})),
        (req("publish", {"channel": "c", "data": None}), p.Publish(1, "c", None)),
        (req("send", {"to": ["a", "b", "a"], "data": "hi"}), p.Send(1, ("a", "b"), "hi")),
        (req("presence", {"channel": "c"}), p.Presence(1, "c")),
        (req("presence_stats", {"channel": "c"}), p.PresenceStats(1, "c")),
        (req("online", {"users": ["a"]}), p.Online(1, ("a",))),
        (req("history", {"stream": "c"}), p.History(1, "c", None, p.DEFAULT_HISTORY_LIMIT)),
        (
            req("history", {"stream": "$inbox", "since": {"offset": 0, "epoch": "e"}, "limit": 5}),
            p.History(1, "$inbox", p.Since(0, "e"), 5),
        ),
        (req("ack", {"stream": "$inbox", "offset": 9}), p.Ack(1, "$inbox", 9, None)),
        (req("ping"), p.Ping(1)),
        (req("ping", {}, p.MAX_ID), p.Ping(p.MAX_ID)),
    ],
)
def test_parse_valid(raw: str, expected: p.Command) -> None:
    assert p.parse_request(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "req_id"),
    [
        (b'{"id":1,"method":"ping"}', ErrorCode.BAD_REQUEST, None),
        ("not json", ErrorCode.BAD_REQUEST, None),
        ('{"id":1,"method":"ping","x":NaN}', ErrorCode.BAD_REQUEST, None),
        ("[1,2]", ErrorCode.BAD_REQUEST, None),
        ('{"id":1,"method":"publish","params":{"channel":"c","data":1e400}}', 100, None),
        ('{"id":1,"method":"publish","params":{"channel":"c","data":-1E999}}', 100, None),
        ("[" * 100_000, ErrorCode.BAD_REQUEST, None),
        (req("ping", req_id=0), ErrorCode.BAD_REQUEST, None),
        (req("ping", req_id=p.MAX_ID + 1), ErrorCode.BAD_REQUEST, None),
        (req("ping", req_id=True), ErrorCode.BAD_REQUEST, None),
        (req("ping", req_id="1"), ErrorCode.BAD_REQUEST, None),
        (req("ping", req_id=1.0), ErrorCode.BAD_REQUEST, None),
        ('{"id":4}', ErrorCode.BAD_REQUEST, 4),
        (req("fly"), ErrorCode.UNKNOWN_METHOD, 1),
        (req("ping", [1]), ErrorCode.INVALID_PARAMS, 1),
        (req("connect", {"name": "$bad"}), ErrorCode.INVALID_PARAMS, 1),
        (req("connect", {"token": "t", "tick": 1}), ErrorCode.INVALID_PARAMS, 1),
        (req("connect", {"token": "t", "inbox_epoch": 7}), ErrorCode.INVALID_PARAMS, 1),
        (req("subscribe", {"channel": ""}), ErrorCode.INVALID_PARAMS, 1),
        (req("subscribe", {"channel": "a b"}), ErrorCode.INVALID_PARAMS, 1),
        (req("subscribe", {"channel": "$inbox"}), ErrorCode.INVALID_PARAMS, 1),
        (req("subscribe", {"channel": "x" * 256}), ErrorCode.INVALID_PARAMS, 1),
        (req("subscribe", {"channel": "c", "since": 3}), ErrorCode.INVALID_PARAMS, 1),
        (req("subscribe", {"channel": "c", "since": {"offset": -1, "epoch": "e"}}), 102, 1),
        (req("subscribe", {"channel": "c", "since": {"offset": True, "epoch": "e"}}), 102, 1),
        (req("subscribe", {"channel": "c", "since": {"offset": 1}}), 102, 1),
        (req("publish", {"channel": "c"}), ErrorCode.INVALID_PARAMS, 1),
        (req("send", {"to": [], "data": 1}), ErrorCode.INVALID_PARAMS, 1),
        (req("send", {"to": "bob", "data": 1}), ErrorCode.INVALID_PARAMS, 1),
        (req("send", {"to": [1], "data": 1}), ErrorCode.INVALID_PARAMS, 1),
        (req("send", {"to": ["ok", "no\nnewline"], "data": 1}), ErrorCode.INVALID_PARAMS, 1),
        (req("history", {"stream": "c", "limit": 0}), ErrorCode.INVALID_PARAMS, 1),
        (req("history", {"stream": "c", "limit": p.MAX_HISTORY_LIMIT + 1}), 102, 1),
        (req("ack", {"stream": "chat:a", "offset": 1}), ErrorCode.INVALID_PARAMS, 1),
        (req("ack", {"stream": "$inbox"}), ErrorCode.INVALID_PARAMS, 1),
    ],
)
def test_parse_invalid(raw: str | bytes, code: int, req_id: int | None) -> None:
    result = p.parse_request(raw)
    assert isinstance(result, p.Rejected)
    assert (result.code, result.id) == (code, req_id)
    assert result.message


def test_encoding_is_strict_compact_json() -> None:
    assert p.encode_result(3, {"a": "é"}) == '{"id":3,"result":{"a":"é"}}'
    assert json.loads(p.encode_error(None, ErrorCode.RATE_LIMITED, "slow down")) == {
        "id": None,
        "error": {"code": 300, "message": "slow down"},
    }
    assert json.loads(p.encode_push("tick", {"time": 5})) == {"push": "tick", "time": 5}
    with pytest.raises(ValueError, match="JSON"):
        p.encode_result(1, float("nan"))


def test_encoding_refuses_what_the_stdlib_refuses() -> None:
    # orjson (the hub extra) writes NaN and infinity as null and encodes
    # dataclasses and datetimes: encode() must refuse them all the same.
    assert p._orjson_dumps is not None  # the fast path is the one under test
    for value in (float("nan"), float("-inf"), [1.0, float("inf")]):
        with pytest.raises(ValueError, match="JSON"):
            p.encode_push("message", {"data": value})
    for value in (datetime.datetime(2026, 1, 1), Since(1, "e"), object()):
        with pytest.raises(TypeError, match="not JSON serializable"):
            p.encode_push("message", {"data": value})
    # What orjson cannot take is the stdlib's to encode: exact big integers,
    # lone surrogates escaped (so that the text encodes to UTF-8), int keys.
    assert p.encode({"n": 2**70}) == '{"n":1180591620717411303424}'
    assert p.encode({"s": "\ud800x"}) == '{"s":"\\ud800x"}'
    assert p.encode({1: None}) == '{"1":null}'


def test_encoding_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stdlib alone (the hub extra not installed): the same text, the same refusals.
    monkeypatch.setattr(p, "_orjson_dumps", None)
    assert p.encode_result(3, {"a": "é", "n": None}) == '{"id":3,"result":{"a":"é","n":null}}'
    with pytest.raises(ValueError, match="JSON"):
        p.encode_push("message", {"data": float("nan")})


finite_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(finite_json)
def test_encoding_is_the_stdlib_json(value: object) -> None:
    # orjson's text and the stdlib's may differ in form (1e+16 and 1e16),
    # never in the value they carry.
    text = p.encode({"data": value})
    assert json.loads(text) == {"data": value}
    assert text.encode()  # UTF-8, as a text frame needs


def test_error_codes_are_grouped() -> None:
    groups = {code.value // 100 for code in ErrorCode}
    assert groups == {1, 2, 3, 5}
    assert ErrorCode.PERMISSION_DENIED // 100 == 2
    assert ErrorCode.MESSAGE_TOO_LARGE // 100 == 3


def test_names() -> None:
    assert p.valid_channel("chat:room-1/a.b@c=d")
    assert p.valid_channel("dm:x#alice,bob")
    assert not p.valid_channel("$online")
    assert not p.valid_channel("ünïcode")
    assert p.valid_user("alice")
    assert p.valid_user("Ada Lovelace")
    assert not p.valid_user(" lead")
    assert not p.valid_user("$inbox")
    assert not p.valid_user("x" * 129)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(st.text())
def test_parse_never_raises_on_text(raw: str) -> None:
    result = p.parse_request(raw)
    assert isinstance(result, p.Rejected)


@given(
    st.sampled_from([*p._PARSERS, "nope"]),
    st.one_of(st.integers(-2, 2**60), json_values),
    st.one_of(
        json_values,
        st.dictionaries(
            st.sampled_from(
                [
                    "token",
                    "name",
                    "channel",
                    "since",
                    "data",
                    "to",
                    "users",
                    "stream",
                    "limit",
                    "offset",
                    "epoch",
                    "tick",
                ]
            ),
            json_values,
        ),
    ),
)
def test_parse_never_raises_on_json(method: str, req_id: object, params: object) -> None:
    raw = json.dumps({"id": req_id, "method": method, "params": params})
    result = p.parse_request(raw)
    if isinstance(result, p.Rejected):
        assert isinstance(result.code, ErrorCode)
        # An id is echoed only when it was a valid one.
        assert result.id is None or result.id == req_id
    else:
        assert result.id == req_id
        assert type(result).__name__.lower() == method.replace("_", "")


def _parse_with_stdlib(raw: str) -> p.Command | p.Rejected:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(p, "_orjson_loads", None)
        return p.parse_request(raw)


@pytest.mark.parametrize(
    "raw",
    [
        # Integers orjson would turn into floats: data keeps them exact.
        '{"id":1,"method":"send","params":{"to":["a"],"data":123456789012345678901234567890}}',
        '{"id":1,"method":"publish","params":{"channel":"c","data":{"n":[1.5,18446744073709551616]}}}',
        '{"id":1,"method":"publish","params":{"channel":"c","data":-9223372036854775809}}',
        # What orjson refuses: the stdlib's answer, id included.
        '{"id":1,"method":"publish","params":{"channel":"c","data":1e400}}',
        '{"id":1,"method":"publish","params":{"channel":"c","data":"\\ud800"}}',
        '{"id":1,"method":"publish","params":{"channel":"c","data":NaN}}',
        '\ufeff{"id":1,"method":"ping"}',
        '{"id":1,"method":"publish","params":{"channel":"c","data":' + "[" * 900 + "]" * 900 + "}}",
        # Out-of-range numbers elsewhere: the same refusal either way.
        '{"id":123456789012345678901234567890,"method":"ping"}',
        '{"id":1,"method":"history","params":{"stream":"c","limit":1e2}}',
    ],
)
def test_orjson_decoding_is_the_stdlib_decoding(raw: str) -> None:
    assert p._orjson_loads is not None  # the fast path is the one under test
    result = p.parse_request(raw)
    assert repr(result) == repr(_parse_with_stdlib(raw))  # repr: 1 and 1.0 differ


@given(
    st.sampled_from(["send", "publish", "history", "ack"]),
    st.one_of(st.integers(), json_values),
    st.dictionaries(
        st.sampled_from(["channel", "data", "to", "stream", "limit", "offset", "since"]),
        st.one_of(st.integers(), st.just("c"), st.just(["u"]), json_values),
    ),
)
def test_orjson_decoding_is_the_stdlib_decoding_on_any_json(
    method: str, req_id: object, params: object
) -> None:
    raw = json.dumps({"id": req_id, "method": method, "params": params})
    assert repr(p.parse_request(raw)) == repr(_parse_with_stdlib(raw))
