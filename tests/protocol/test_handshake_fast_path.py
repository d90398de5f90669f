"""The fast paths of the server's opening handshake agree with the full checks.

``parse_request`` first tries ``_parse_common_request`` (a clean head of known
field names, parsed with few steps) and ``ServerConnection.accept`` first checks
the usual request at once; anything unusual takes the field-by-field checks,
which say what is wrong. These properties hold them to the same results: the
same request, or the same error.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.exceptions import HandshakeError, LocalProtocolError
from hubbub.protocol import Headers, Request, ServerConnection, http11
from hubbub.protocol.handshake import accept_key

USUAL = [
    b"Host: 127.0.0.1:8765",
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: aHViYnViLWxvYWRnZW4tMQ==",
    b"Sec-WebSocket-Version: 13",
]

# Field lines: the usual ones, variations of them (case, whitespace, lists,
# duplicates, bad keys and versions), unknown names and arbitrary bytes.
FIELD_LINES = st.one_of(
    st.sampled_from(USUAL),
    st.sampled_from(
        [
            b"host: example.com",
            b"Upgrade: WebSocket",
            b"Upgrade: websocket, h2c",
            b"Upgrade: h2c",
            b"Connection: keep-alive, Upgrade",
            b"Connection: close",
            b"Connection:upgrade  ",
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            b"Sec-WebSocket-Key: short",
            b"Sec-WebSocket-Key: aHViYnViLWxvYWRnZW4tMQ",
            b"Sec-WebSocket-Version: 8",
            b"Sec-WebSocket-Version: 13, 13",
            b"Sec-WebSocket-Protocol: chat, superchat",
            b"Sec-WebSocket-Protocol: superchat",
            b"Origin: https://example.com",
            b"Origin: https://evil.example",
            b"Content-Length: 0",
            b"Content-Length: 5",
            b"Transfer-Encoding: chunked",
            b"X-Unknown-Name: value",
            b"Host : bad",
            b"Host",
            b"User-Agent: caf\xe9",
            b"Cookie: a=b\x7f",
            b"Upgrade: web\x00socket",
            b"Upgrade: web\rsocket",
            b"Upgrade: web\nsocket",
        ]
    ),
    st.tuples(
        st.sampled_from([b"Host", b"Upgrade", b"Origin", b"X-Y", b"x y", b"\xe9"]),
        st.sampled_from([b":", b": ", b":\t", b""]),
        st.binary(max_size=12),
    ).map(b"".join),
)
REQUEST_LINES = st.sampled_from(
    [
        b"GET / HTTP/1.1",
        b"GET /chat?room=1 HTTP/1.1",
        b"POST / HTTP/1.1",
        b"GET / HTTP/1.0",
        b"GET / HTTP/2",
        b"GET http://example.com/ HTTP/1.1",
        b"GET  / HTTP/1.1",
        b"GET /caf\xe9 HTTP/1.1",
        b"GET /",
    ]
)


def heads() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda line, fields: b"\r\n".join([line, *fields]),
        REQUEST_LINES,
        st.lists(FIELD_LINES, max_size=8),
    )


def outcome(parse: object, *args: object) -> object:
    """The parse's result as comparable data, or the type of its error."""
    try:
        result = parse(*args)  # type: ignore[operator]
    except HandshakeError as exc:
        return type(exc)
    if result is None:
        return None
    if isinstance(result, tuple):
        result = result[0]
    assert isinstance(result, Request)
    return (result.method, result.path, result.version, result.body, result.headers.items())


class TestParseRequest:
    @given(heads())
    @settings(max_examples=1000, deadline=None)
    def test_fast_path_agrees_with_the_full_checks(self, head: bytes) -> None:
        if b"\r\n\r\n" in head or head.endswith(b"\r"):
            return  # a field line holding CRLF ends the head early: another test's case
        full = outcome(http11._parse_request_checked, head + b"\r\n\r\n", 0)
        fast = outcome(http11._parse_common_request, head)
        if fast is not None:
            assert fast == full
        assert outcome(http11.parse_request, head + b"\r\n\r\n") == full

    def test_the_usual_request_takes_the_fast_path(self) -> None:
        head = b"\r\n".join([b"GET / HTTP/1.1", *USUAL])
        request = http11._parse_common_request(head)
        assert request is not None
        assert request.headers["Sec-WebSocket-Key"] == "aHViYnViLWxvYWRnZW4tMQ=="

    @pytest.mark.parametrize(
        "line",
        [b"X-Never-Seen-Before-Name: 1", b"Host", b"Upgrade: a\x00b", b"Host: a\rb"],
    )
    def test_unusual_lines_take_the_full_checks(self, line: bytes) -> None:
        head = b"\r\n".join([b"GET / HTTP/1.1", *USUAL, line])
        assert http11._parse_common_request(head) is None


class TestAccept:
    @given(
        st.sampled_from(["GET", "POST"]),
        st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
        st.lists(FIELD_LINES, max_size=8),
        st.sampled_from([None, ("https://example.com",), ("https://example.com", None)]),
        st.sampled_from([(), ("superchat",), ("chat", "superchat")]),
        st.booleans(),
    )
    @settings(max_examples=1000, deadline=None)
    def test_fast_check_agrees_with_the_full_checks(
        self,
        method: str,
        version: str,
        lines: list[bytes],
        origins: tuple[str | None, ...] | None,
        subprotocols: tuple[str, ...],
        required: bool,
    ) -> None:
        headers = Headers()
        for line in lines:
            name, sep, value = line.decode("latin-1").partition(":")
            try:
                headers.add(name.strip(), value.strip(" \t"))
            except LocalProtocolError:
                return  # a field that no parse gives back
            if not sep:
                return
        request = Request("/", headers, method, version=version)
        options = dict(origins=origins, subprotocols=subprotocols, subprotocol_required=required)
        response = ServerConnection(**options).accept(request)  # type: ignore[arg-type]
        reference = ServerConnection(**options)  # type: ignore[arg-type]
        try:
            key = reference._check_request_fully(request)
        except HandshakeError as exc:
            error = exc
        else:
            error = None
        if error is not None:
            assert response.status == error.status
            return
        # The usual checks passed: what follows (Origin, subprotocols) is the
        # same code on both ways; the 101 carries the key's answer.
        if response.status == 101:
            assert response.headers["Sec-WebSocket-Accept"] == accept_key(key)
