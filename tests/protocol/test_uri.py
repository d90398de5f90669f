"""RFC 6455 section 3: WebSocket URIs."""

from __future__ import annotations

import pytest
from protocol_testing import parse_http_request

from hubbub.exceptions import InvalidURI
from hubbub.protocol import ClientConnection
from hubbub.protocol.handshake import WebSocketURI, parse_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ws://example.com", WebSocketURI(False, "example.com", 80, "/")),
        ("ws://example.com/", WebSocketURI(False, "example.com", 80, "/")),
        ("wss://example.com", WebSocketURI(True, "example.com", 443, "/")),
        ("ws://example.com:8080/a/b", WebSocketURI(False, "example.com", 8080, "/a/b")),
        ("wss://EXAMPLE.com:443/?x=1", WebSocketURI(True, "example.com", 443, "/?x=1")),
        ("ws://example.com?q", WebSocketURI(False, "example.com", 80, "/?q")),
        ("ws://[::1]:9000/p", WebSocketURI(False, "::1", 9000, "/p")),
        ("ws://10.0.0.1/", WebSocketURI(False, "10.0.0.1", 80, "/")),
        ("ws://u@h/", WebSocketURI(False, "h", 80, "/", ("u", ""))),
        ("ws://u:p@h/", WebSocketURI(False, "h", 80, "/", ("u", "p"))),
        ("ws://u%3Ax:p%40y@h/", WebSocketURI(False, "h", 80, "/", ("u:x", "p@y"))),
        ("ws://h/already%20encoded", WebSocketURI(False, "h", 80, "/already%20encoded")),
    ],
)
def test_valid(uri: str, expected: WebSocketURI) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/",
        "https://example.com/",
        "example.com",
        "//example.com/",
        "ws:///path",
        "ws://:80/",
        "ws://example.com/#fragment",
        "ws://example.com:99999/",
        "ws://example.com:abc/",
        "ws://example.com:0/",
        "ws://[::1/",
        "ws://" + "a" * 64 + "é.example/",  # an IDNA label is at most 63 characters
    ],
)
def test_invalid(uri: str) -> None:
    with pytest.raises(InvalidURI) as info:
        parse_uri(uri)
    assert info.value.uri == uri
    assert uri in str(info.value)


@pytest.mark.parametrize(
    ("uri", "resource"),
    [
        ("ws://h/a b", "/a%20b"),
        ("ws://h/é?q=ü", "/%C3%A9?q=%C3%BC"),
        ('ws://h/"<>`{}|\\^', "/%22%3C%3E%60%7B%7D%7C%5C%5E"),
        ("ws://h/ok-._~!$&'()*+,;=:@/x?y=/?", "/ok-._~!$&'()*+,;=:@/x?y=/?"),
    ],
)
def test_resource_name_is_safe_in_a_request_line(uri: str, resource: str) -> None:
    # Anything that cannot appear in an HTTP request-target is percent-encoded:
    # a raw space would split the request line.
    assert parse_uri(uri).resource_name == resource
    client = ClientConnection(uri)
    client.send_request()
    _, target, _ = parse_http_request(b"".join(client.data_to_send()))
    assert target == resource


def test_control_characters_do_not_reach_the_request() -> None:
    uri = parse_uri("ws://h/a\r\nEvil: 1")
    assert "\r" not in uri.resource_name
    assert "\n" not in uri.resource_name


def test_internationalized_host_is_idna() -> None:
    uri = parse_uri("ws://bücher.example/")
    assert uri.host == "xn--bcher-kva.example"
    assert uri.host_header == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("uri", "host_header", "origin"),
    [
        ("ws://h/", "h", "http://h"),
        ("ws://h:81/", "h:81", "http://h:81"),
        ("wss://h/", "h", "https://h"),
        ("wss://h:80/", "h:80", "https://h:80"),
        ("ws://[::1]/", "[::1]", "http://[::1]"),
        ("ws://[::1]:81/", "[::1]:81", "http://[::1]:81"),
    ],
)
def test_host_header_and_origin(uri: str, host_header: str, origin: str) -> None:
    parsed = parse_uri(uri)
    assert parsed.host_header == host_header
    assert parsed.origin_url == origin
