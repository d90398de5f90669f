"""What an open connection keeps: a server holds thousands of idle ones.

After the 101 the server core keeps the handshake as the bytes of its heads
(``request`` and ``response`` parse them again when read), and the cores have
``__slots__``: no instance dictionary, no list per idle connection.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
import weakref

import pytest

from hubbub.adapter import ServerPolicy
from hubbub.protocol import ClientConnection, Connection, Headers, ServerConnection, Side, State
from hubbub.protocol.http11 import Response, parse_response

REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nX-Custom: a, b\r\nCookie: x=1\r\n\r\n"
)


def opened(policy: ServerPolicy | None = None, request: bytes = REQUEST) -> ServerConnection:
    policy = policy or ServerPolicy(compression=None)
    server = policy.new_core()
    server.receive_data(request)
    (event,) = server.events_received()
    server.send_response(policy.answer(server, event))
    assert server.state is State.OPEN
    return server


class TestHandshakeKeptAsBytes:
    def test_request_reads_the_same_after_the_handshake(self) -> None:
        server = ServerConnection()
        server.receive_data(REQUEST)
        (before,) = server.events_received()
        assert server.request is before  # the same object during the handshake
        seen = (before.path, before.headers.items(), before.method, before.version)
        server.send_response(server.accept(before))
        after = server.request
        assert after is not None
        assert (after.path, after.headers.items(), after.method, after.version) == seen
        assert after.query == {"room": "1"}
        assert after.headers["X-Custom"] == "a, b"

    def test_the_parsed_objects_are_dropped_once_open(self) -> None:
        server = ServerConnection()
        server.receive_data(REQUEST)
        (request,) = server.events_received()
        response = server.accept(request)
        server.send_response(response)
        dead = weakref.ref(request), weakref.ref(response)
        del request, response
        gc.collect()
        assert dead[0]() is None
        assert dead[1]() is None

    def test_a_result_lives_while_the_application_keeps_it(self) -> None:
        server = opened()
        first = server.request
        assert server.request is first  # not parsed again while referenced
        assert server.response is server.response
        ref = weakref.ref(first)  # type: ignore[arg-type]
        del first
        gc.collect()
        assert ref() is None
        assert server.request is not None  # parsed again

    def test_response_reads_the_same_after_the_handshake(self) -> None:
        policy = ServerPolicy(compression=None, extra_headers=[("X-Served-By", "node 1")])
        server = ServerConnection(server_header="test")
        server.receive_data(REQUEST)
        (request,) = server.events_received()
        built = policy.answer(server, request)
        items = built.headers.items()
        server.send_response(built)
        wire = b"".join(server.data_to_send())
        del built
        gc.collect()
        response = server.response
        assert response is not None
        assert (response.status, response.reason) == (101, "Switching Protocols")
        assert response.headers.items() == items
        assert ("X-Served-By", "node 1") in items
        found = parse_response(wire)
        assert found is not None
        assert found[0] == response

    def test_a_response_that_would_not_parse_back_is_kept_as_it_is(self) -> None:
        # Parsing strips the whitespace around a value: the object is kept.
        server = ServerConnection()
        server.receive_data(REQUEST)
        (request,) = server.events_received()
        response = server.accept(request)
        response.headers["X-Odd"] = " padded "
        server.send_response(response)
        del response
        gc.collect()
        assert server.response is not None
        assert server.response.headers["X-Odd"] == " padded "

    def test_a_request_with_a_body_is_kept_as_it_is(self) -> None:
        body_request = REQUEST.replace(b"\r\n\r\n", b"\r\nContent-Length: 3\r\n\r\nabc")
        server = opened(request=body_request)
        gc.collect()
        assert server.request is not None
        assert server.request.body == b"abc"

    def test_a_rejected_handshake_keeps_its_objects(self) -> None:
        server = ServerConnection(origins=["https://good.example"])
        server.receive_data(REQUEST)
        (request,) = server.events_received()
        response = server.accept(request)
        server.send_response(response)
        assert server.state is State.CLOSED
        assert server.request is request
        assert server.response is response
        assert isinstance(response, Response)
        assert response.status == 403

    def test_before_any_request_there_is_none(self) -> None:
        server = ServerConnection()
        assert server.request is None
        assert server.response is None


class TestParsesBack:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("websocket", True),
            ("", True),
            ("a b\tc", True),
            ("caf\xe9", True),  # obs-text, latin-1 on the wire
            (" lead", False),
            ("trail\t", False),
            ("ctl\x01", False),
            ("euro \u20ac", False),  # not latin-1: no byte for it
        ],
    )
    def test_values(self, value: str, expected: bool) -> None:
        assert Headers([("X", value)]).parses_back() is expected

    def test_every_field_counts(self) -> None:
        assert not Headers([("A", "ok"), ("B", "bad ")]).parses_back()


class TestSlots:
    @pytest.mark.parametrize(
        "conn",
        [Connection(Side.SERVER), ServerConnection(), ClientConnection("ws://example.com/")],
        ids=["connection", "server", "client"],
    )
    def test_no_instance_dictionary(self, conn: Connection) -> None:
        assert not hasattr(conn, "__dict__")
        with pytest.raises(AttributeError):
            conn.not_an_attribute = 1  # type: ignore[attr-defined]

    def test_server_options_are_shared_not_copied(self) -> None:
        policy = ServerPolicy(subprotocols=["chat"], origins=["https://a.example"])
        one, two = policy.new_core(), policy.new_core()
        assert one.available_subprotocols is two.available_subprotocols
        assert one.origins is two.origins
        assert one.extension_factories is two.extension_factories

    def test_an_idle_connection_owns_no_message_lists(self) -> None:
        server = opened()
        server.receive_data(bytes([0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2]))
        assert server.events_received() == ["hi"]
        # Shared empty placeholders until a fragmented message or a large frame.
        assert server.assembler.idle
        assert server.large_frame is None
        assert server.extensions == []


def test_python_heap_per_open_server_core() -> None:
    """A bound on what an open, idle core costs (it was ~6 KB with the parsed handshake)."""
    if sys.implementation.name != "cpython":
        pytest.skip("object sizes are CPython's")
    policy = ServerPolicy(compression=None)
    opened(policy)  # warm caches up
    count = 200
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cores = [opened(policy) for _ in range(count)]
        for core in cores:
            core.data_to_send()
        gc.collect()
        per_core = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    # The slots and the parts (reader, assembler, writer: ~300 bytes), the request
    # and response heads (~500 bytes), the handshake buffer. It was 1036 bytes
    # before the parts were objects of their own, 1236 after.
    assert per_core < 1500, per_core
