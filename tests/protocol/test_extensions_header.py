"""RFC 6455 section 9: the extension header, negotiation, and the frame hooks.

A toy extension that XORs payloads and flags its messages with RSV1 exercises
the connection's extension path without depending on permessage-deflate.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    assert_failed,
    feed,
    frame_to,
    open_pair,
    parse_http_response,
    request_bytes,
    response_bytes,
    sent_frames,
    server_handshake,
    transfer,
)

from hubbub.exceptions import InvalidHeader, NegotiationError, PayloadTooBig
from hubbub.protocol import ClientConnection, Connection, ServerConnection, Side, State
from hubbub.protocol.extensions import (
    ClientExtensionFactory,
    Extension,
    ExtensionParams,
    ServerExtensionFactory,
    build_extension_header,
    parse_extension_header,
)
from hubbub.protocol.frames import Frame, Opcode

XOR = 0xAA  # turns ASCII into bytes >= 0x80: invalid UTF-8 if left undecoded


def xor(data: bytes) -> bytes:
    return bytes(b ^ XOR for b in data)


class XorExtension(Extension):
    name = "x-xor"

    def __init__(self) -> None:
        self.released = False
        self.decoded = 0

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        if max_size is not None and len(frame.data) > max_size:
            raise PayloadTooBig(len(frame.data), max_size)
        self.decoded += 1
        return Frame(frame.opcode, xor(frame.data), frame.fin, False, frame.rsv2, frame.rsv3)

    def encode(self, frame: Frame) -> Frame:
        return Frame(frame.opcode, xor(frame.data), frame.fin, frame.opcode != Opcode.CONTINUATION)

    def release(self) -> None:
        self.released = True


class XorClientFactory(ClientExtensionFactory):
    name = "x-xor"

    def __init__(self, params: ExtensionParams | None = None) -> None:
        self.params = params or []
        self.answers: list[ExtensionParams] = []

    def get_request_params(self) -> ExtensionParams:
        return self.params

    def process_response_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> Extension:
        if ("refuse", None) in params:
            raise NegotiationError("the server asked for something unsupported")
        self.answers.append(params)
        return XorExtension()


class XorServerFactory(ServerExtensionFactory):
    name = "x-xor"

    def process_request_params(
        self, params: ExtensionParams, accepted: Sequence[Extension]
    ) -> tuple[ExtensionParams, Extension]:
        if ("decline", None) in params:
            raise NegotiationError("declined")
        return [("chosen", dict(params).get("mode") or "default")], XorExtension()


def xor_frame(conn: Connection, opcode: int, text: bytes, **kwargs: object) -> bytes:
    """A frame carrying ``text`` XORed, flagged with RSV1 when it starts a message."""
    rsv1 = opcode != OP_CONT
    return frame_to(conn, opcode, xor(text), rsv1=rsv1, **kwargs)


class TestHeaderSyntax:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("foo", [("foo", [])]),
            ("foo, bar", [("foo", []), ("bar", [])]),
            ("foo; a; b=1", [("foo", [("a", None), ("b", "1")])]),
            ('foo; a="1"', [("foo", [("a", "1")])]),
            ('foo; a="x,y;z"', [("foo", [("a", "x,y;z")])]),
            ('foo; a="q\\"q"', [("foo", [("a", 'q"q')])]),
            (" foo ;  a = 1 ,  , bar ", [("foo", [("a", "1")]), ("bar", [])]),
            (
                "permessage-deflate; client_max_window_bits, permessage-deflate",
                [
                    ("permessage-deflate", [("client_max_window_bits", None)]),
                    ("permessage-deflate", []),
                ],
            ),
            ("", []),
        ],
    )
    def test_parse(self, value: str, expected: list[tuple[str, ExtensionParams]]) -> None:
        assert parse_extension_header(value) == expected

    @pytest.mark.parametrize(
        "value",
        [
            "foo;",
            "foo; =1",
            "foo; a=",
            'foo; a="unterminated',
            "f@o",
            "foo; a=b c",
            ";a",
            "foo; a=1=2",
            'foo; a="x"y',
        ],
    )
    def test_invalid(self, value: str) -> None:
        with pytest.raises(InvalidHeader):
            parse_extension_header(value)

    def test_build(self) -> None:
        assert build_extension_header([]) == ""
        value = build_extension_header([("a", [("x", None), ("y", "1")]), ("b", [])])
        assert value == "a; x; y=1, b"
        assert parse_extension_header(value) == [("a", [("x", None), ("y", "1")]), ("b", [])]


class TestNegotiation:
    def test_accepted(self) -> None:
        client_factory = XorClientFactory([("mode", "fast")])
        client = ClientConnection("ws://h/", extensions=[client_factory])
        server = ServerConnection(extensions=[XorServerFactory()])
        client, server = open_pair(client, server)
        assert [e.name for e in client.extensions] == ["x-xor"]
        assert [e.name for e in server.extensions] == ["x-xor"]
        assert client_factory.answers == [[("chosen", "fast")]]
        # Messages go through the extension both ways.
        client.send_text("hello")
        server.send_binary(b"world")
        transfer(client, server)
        transfer(server, client)
        assert server.events_received() == ["hello"]
        assert client.events_received() == [b"world"]

    def test_declined_offer_falls_back_to_the_next(self) -> None:
        server = ServerConnection(extensions=[XorServerFactory()])
        offers = "x-xor; decline, x-xor; mode=second, x-xor; mode=third"
        server_handshake(server, request_bytes(extra=[("Sec-WebSocket-Extensions", offers)]))
        _, headers, _ = parse_http_response(b"".join(server.data_to_send()))
        # One answer per extension, for the first acceptable offer.
        assert headers["sec-websocket-extensions"] == ["x-xor; chosen=second"]
        assert len(server.extensions) == 1

    def test_all_declined(self) -> None:
        server = ServerConnection(extensions=[XorServerFactory()])
        extra = [("Sec-WebSocket-Extensions", "x-xor; decline, unknown")]
        server_handshake(server, request_bytes(extra=extra))
        status, headers, _ = parse_http_response(b"".join(server.data_to_send()))
        assert status == 101
        assert "sec-websocket-extensions" not in headers
        assert server.extensions == []

    def test_invalid_offer_is_400(self) -> None:
        server = ServerConnection(extensions=[XorServerFactory()])
        extra = [("Sec-WebSocket-Extensions", 'x-xor; a="')]
        server_handshake(server, request_bytes(extra=extra))
        status, _, _ = parse_http_response(b"".join(server.data_to_send()))
        assert status == 400
        assert isinstance(server.handshake_exc, InvalidHeader)

    def test_offers_are_ignored_without_factories(self) -> None:
        server = ServerConnection()
        extra = [("Sec-WebSocket-Extensions", 'garbage; a="')]
        server_handshake(server, request_bytes(extra=extra))
        assert server.state is State.OPEN

    def test_client_offer_header(self) -> None:
        client = ClientConnection(
            "ws://h/", extensions=[XorClientFactory([("a", "1"), ("b", None)])]
        )
        request = client.build_request()
        assert request.headers["Sec-WebSocket-Extensions"] == "x-xor; a=1; b"

    @pytest.mark.parametrize(
        "answer",
        ["x-xor; refuse", "x-xor, x-xor", "other", 'x-xor; a="'],
    )
    def test_client_refuses_the_answer(self, answer: str) -> None:
        client = ClientConnection("ws://h/", extensions=[XorClientFactory()])
        client.send_request()
        extra = [("Sec-WebSocket-Extensions", answer)]
        client.receive_data(response_bytes(client.key, extra=extra))
        assert client.handshake_exc is not None
        assert client.state is State.CLOSED
        assert client.eof_sent


class TestFrameHooks:
    def make(self, side: Side = Side.SERVER, **kwargs: object) -> tuple[Connection, XorExtension]:
        ext = XorExtension()
        return Connection(side, extensions=[ext], **kwargs), ext  # type: ignore[arg-type]

    @pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
    @pytest.mark.parametrize("chunk_size", [None, 1, 3])
    def test_transformed_messages(self, side: Side, chunk_size: int | None) -> None:
        conn, _ = self.make(side)
        data = xor_frame(conn, OP_TEXT, b"whole")
        data += xor_frame(conn, OP_BINARY, b"bin")
        data += frame_to(conn, OP_TEXT, b"plain")  # RSV1 clear: not transformed
        assert feed(conn, data, chunk_size) == ["whole", b"bin", "plain"]

    @pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
    @pytest.mark.parametrize("chunk_size", [None, 1, 2, 5])
    def test_fragmented_transformed_text(self, side: Side, chunk_size: int | None) -> None:
        # The continuation frames of a transformed message arrive in pieces:
        # they must not be validated as UTF-8 before the extension decoded them.
        conn, ext = self.make(side)
        data = xor_frame(conn, OP_TEXT, b"first ", fin=False)
        data += xor_frame(conn, OP_CONT, b"second ", fin=False)
        data += frame_to(conn, OP_PING, b"p")
        data += xor_frame(conn, OP_CONT, b"third", fin=True)
        events = feed(conn, data, chunk_size)
        assert events[-1] == "first second third", events
        assert ext.decoded == 3

    @pytest.mark.parametrize("chunk_size", [None, 1])
    def test_fragmented_untransformed_text(self, chunk_size: int | None) -> None:
        conn, ext = self.make()
        data = frame_to(conn, OP_TEXT, "é".encode()[:1], fin=False)
        data += frame_to(conn, OP_CONT, "é".encode()[1:], fin=True)
        assert feed(conn, data, chunk_size) == ["é"]
        assert ext.decoded == 0

    @pytest.mark.parametrize("chunk_size", [None, 1])
    @pytest.mark.parametrize("bit", ["rsv2", "rsv3"])
    def test_bits_no_extension_uses(self, chunk_size: int | None, bit: str) -> None:
        # With an extension negotiated, RSV bits it does not use are still
        # errors (section 5.2), including on frames validated as they arrive.
        conn, _ = self.make()
        assert feed(conn, frame_to(conn, OP_TEXT, b"x" * 20, **{bit: True}), chunk_size) == []
        assert_failed(conn, 1002)

    @pytest.mark.parametrize("chunk_size", [None, 1])
    def test_bits_on_a_continuation_of_an_untransformed_message(
        self, chunk_size: int | None
    ) -> None:
        conn, _ = self.make()
        data = frame_to(conn, OP_TEXT, b"a", fin=False) + frame_to(conn, OP_CONT, b"b", rsv2=True)
        assert feed(conn, data, chunk_size) == []
        assert_failed(conn, 1002)

    def test_bits_on_control_frames(self) -> None:
        conn, _ = self.make()
        assert feed(conn, frame_to(conn, OP_PING, b"", rsv1=True)) == []
        assert_failed(conn, 1002)

    def test_invalid_utf8_after_decoding(self) -> None:
        conn, _ = self.make()
        assert feed(conn, xor_frame(conn, OP_TEXT, b"\xff")) == []
        assert_failed(conn, 1007)

    def test_max_size_is_passed_to_the_extension(self) -> None:
        conn, _ = self.make(max_size=10)
        data = xor_frame(conn, OP_BINARY, b"a" * 6, fin=False)
        data += xor_frame(conn, OP_CONT, b"b" * 5)
        assert feed(conn, data) == []
        assert_failed(conn, 1009)

    def test_max_size_holds_even_if_the_extension_ignores_it(self) -> None:
        class Careless(XorExtension):
            def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
                return super().decode(frame)  # never checks the budget

        conn = Connection(Side.SERVER, max_size=10, extensions=[Careless()])
        data = xor_frame(conn, OP_BINARY, b"a" * 6, fin=False)
        data += xor_frame(conn, OP_CONT, b"b" * 5)
        assert feed(conn, data) == []
        assert_failed(conn, 1009)

    def test_outgoing_frames_are_encoded(self) -> None:
        conn, _ = self.make(Side.CLIENT)
        conn.send_text("ab", fin=False)
        conn.send_continuation("cd", fin=True)
        frames = sent_frames(conn)
        assert [(f.opcode, f.rsv1, f.payload) for f in frames] == [
            (OP_TEXT, True, xor(b"ab")),
            (OP_CONT, False, xor(b"cd")),
        ]

    def test_released_on_eof(self) -> None:
        conn, ext = self.make()
        conn.receive_eof()
        assert ext.released
