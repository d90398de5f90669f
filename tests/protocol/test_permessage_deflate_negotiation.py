"""permessage-deflate negotiation (RFC 7692 sections 5 and 7.1).

The factories are tested on their own with parameter lists, and through real
``ServerConnection`` / ``ClientConnection`` handshakes for what involves the
whole ``Sec-WebSocket-Extensions`` header (several offers, quoting, failing).
"""

from __future__ import annotations

import pytest
from protocol_testing import CLIENT_KEY, request_bytes, response_bytes, server_handshake

from hubbub.exceptions import NegotiationError
from hubbub.protocol import ClientConnection, ServerConnection, Side, State
from hubbub.protocol.extensions import ExtensionParams, parse_extension_header
from hubbub.protocol.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    deflate_factories,
)

SNCT, CNCT = "server_no_context_takeover", "client_no_context_takeover"
SMWB, CMWB = "server_max_window_bits", "client_max_window_bits"


def server_accepts(
    params: ExtensionParams, **options: object
) -> tuple[ExtensionParams, PerMessageDeflate]:
    factory = ServerPerMessageDeflateFactory(**options)  # type: ignore[arg-type]
    return factory.process_request_params(params, [])


def client_accepts(params: ExtensionParams, **options: object) -> PerMessageDeflate:
    factory = ClientPerMessageDeflateFactory(**options)  # type: ignore[arg-type]
    return factory.process_response_params(params, [])


def sides(ext: PerMessageDeflate) -> tuple[bool, bool, int, int]:
    return (
        ext.local_no_context_takeover,
        ext.remote_no_context_takeover,
        ext.local_max_window_bits,
        ext.remote_max_window_bits,
    )


# --- server: accepting an offer -------------------------------------------------------


def test_server_answers_browser_offer_with_low_memory_windows() -> None:
    # What Chrome and Node's ws offer.
    answer, ext = server_accepts([(CMWB, None)])
    assert answer == [(SMWB, "12"), (CMWB, "12")]
    assert sides(ext) == (False, False, 12, 12)


def test_server_cannot_limit_client_that_did_not_offer_client_max_window_bits() -> None:
    # Section 7.1.2.2: "MUST NOT include" it then; the client may use 15 bits.
    answer, ext = server_accepts([])
    assert answer == [(SMWB, "12")]
    assert sides(ext) == (False, False, 12, 15)


def test_server_without_limits_answers_empty_offer_with_no_parameter() -> None:
    answer, ext = server_accepts([], server_max_window_bits=None, client_max_window_bits=None)
    assert answer == []
    assert sides(ext) == (False, False, 15, 15)


def test_server_no_context_takeover_requested_is_answered() -> None:
    # Section 7.1.1.1: accepting it means including it in the response.
    answer, ext = server_accepts([(SNCT, None)])
    assert (SNCT, None) in answer
    assert ext.local_no_context_takeover


def test_server_no_context_takeover_may_be_answered_unasked() -> None:
    answer, ext = server_accepts([], server_no_context_takeover=True)
    assert (SNCT, None) in answer
    assert ext.local_no_context_takeover


def test_client_no_context_takeover_offered_is_answered_and_used() -> None:
    # Section 7.1.1.2: answering it lets the server drop the client's window.
    answer, ext = server_accepts([(CNCT, None)])
    assert (CNCT, None) in answer
    assert ext.remote_no_context_takeover


def test_client_no_context_takeover_may_be_answered_unasked() -> None:
    answer, ext = server_accepts([], client_no_context_takeover=True)
    assert (CNCT, None) in answer
    assert ext.remote_no_context_takeover


@pytest.mark.parametrize(
    ("requested", "configured", "answered"),
    [
        ("10", 12, "10"),  # smaller than our limit: granted
        ("14", 12, "12"),  # "the same or smaller value as the offer"
        ("14", None, "14"),
        ("15", None, "15"),
        ("8", 12, "8"),  # compressed with zlib's 9 bits, see the compression tests
    ],
)
def test_server_max_window_bits(requested: str, configured: int | None, answered: str) -> None:
    answer, ext = server_accepts([(SMWB, requested)], server_max_window_bits=configured)
    assert (SMWB, answered) in answer
    assert ext.local_max_window_bits == int(answered)


@pytest.mark.parametrize(
    ("offered", "configured", "answered", "bits"),
    [
        (None, 12, "12", 12),
        (None, 9, "9", 9),
        (None, None, None, 15),  # value-less offer, no limit: nothing to answer
        ("10", 12, "10", 10),
        ("14", 12, "12", 12),
        ("9", None, "9", 9),
    ],
)
def test_client_max_window_bits(
    offered: str | None, configured: int | None, answered: str | None, bits: int
) -> None:
    answer, ext = server_accepts([(CMWB, offered)], client_max_window_bits=configured)
    assert [v for n, v in answer if n == CMWB] == ([] if answered is None else [answered])
    assert ext.remote_max_window_bits == bits


def test_server_accepts_all_four_parameters_at_once() -> None:
    answer, ext = server_accepts([(SNCT, None), (CNCT, None), (SMWB, "10"), (CMWB, "11")])
    assert answer == [(SNCT, None), (CNCT, None), (SMWB, "10"), (CMWB, "11")]
    assert sides(ext) == (True, True, 10, 11)


INVALID_OFFERS = {
    "unknown parameter": [("foo", None)],
    "unknown parameter with value": [("mux", "1")],
    "parameter name is case-sensitive": [("Server_No_Context_Takeover", None)],
    "duplicate server_no_context_takeover": [(SNCT, None), (SNCT, None)],
    "duplicate client_no_context_takeover": [(CNCT, None), (CNCT, None)],
    "duplicate server_max_window_bits": [(SMWB, "10"), (SMWB, "10")],
    "duplicate client_max_window_bits": [(CMWB, None), (CMWB, "10")],
    "value on server_no_context_takeover": [(SNCT, "true")],
    "value on client_no_context_takeover": [(CNCT, "1")],
    "server_max_window_bits without value": [(SMWB, None)],
    "server_max_window_bits 7": [(SMWB, "7")],
    "server_max_window_bits 16": [(SMWB, "16")],
    "server_max_window_bits 0": [(SMWB, "0")],
    "server_max_window_bits leading zero": [(SMWB, "09")],
    "server_max_window_bits sign": [(SMWB, "+9")],
    "server_max_window_bits non-numeric": [(SMWB, "ten")],
    "server_max_window_bits empty": [(SMWB, "")],
    "server_max_window_bits decimal": [(SMWB, "9.0")],
    "client_max_window_bits 7": [(CMWB, "7")],
    "client_max_window_bits 16": [(CMWB, "16")],
    "client_max_window_bits non-numeric": [(CMWB, "abc")],
    "client_max_window_bits negative": [(CMWB, "-10")],
    "client_max_window_bits non-ASCII digits": [(CMWB, "\uff11\uff10")],
}


@pytest.mark.parametrize("params", INVALID_OFFERS.values(), ids=INVALID_OFFERS.keys())
def test_server_declines_invalid_offer(params: ExtensionParams) -> None:
    # Section 7.1: "A server MUST decline an extension negotiation offer ..."
    with pytest.raises(NegotiationError):
        server_accepts(params)


def test_server_declines_second_permessage_deflate() -> None:
    _, first = server_accepts([])
    with pytest.raises(NegotiationError):
        ServerPerMessageDeflateFactory().process_request_params([], [first])


# --- client: offering and checking the answer ------------------------------------------


def test_client_default_offer_is_value_less_like_browsers() -> None:
    # The server may limit our window; our compressor still uses at most 12 bits.
    factory = ClientPerMessageDeflateFactory()
    assert factory.get_request_params() == [(CMWB, None)]
    assert factory.window_bits == 12


def test_client_compresses_with_less_than_the_server_allows() -> None:
    # Autobahn 13.4/13.6: the server answers client_max_window_bits=15. Accepted,
    # and the client still compresses with its own 12-bit window (any inflater
    # reads a stream made with a smaller window).
    assert sides(client_accepts([(CMWB, "15")])) == (False, False, 12, 15)
    assert sides(client_accepts([(CMWB, "10")])) == (False, False, 10, 15)
    assert sides(client_accepts([(CMWB, "15")], window_bits=15)) == (False, False, 15, 15)


def test_client_numeric_offer_binds_its_compressor() -> None:
    assert ClientPerMessageDeflateFactory(client_max_window_bits=11).window_bits == 11
    with pytest.raises(NegotiationError, match="more than offered"):
        client_accepts([(CMWB, "12")], client_max_window_bits=11)


def test_client_may_offer_client_max_window_bits_without_value() -> None:
    factory = ClientPerMessageDeflateFactory(client_max_window_bits=True)
    assert factory.get_request_params() == [(CMWB, None)]


def test_client_offers_every_parameter() -> None:
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=11,
    )
    assert factory.get_request_params() == [(SNCT, None), (CNCT, None), (SMWB, "10"), (CMWB, "11")]


def test_client_may_leave_client_max_window_bits_out() -> None:
    assert ClientPerMessageDeflateFactory(client_max_window_bits=None).get_request_params() == []


def test_client_accepts_empty_answer() -> None:
    assert sides(client_accepts([])) == (False, False, 12, 15)
    assert sides(client_accepts([], window_bits=15)) == (False, False, 15, 15)


def test_client_accepts_answer_limiting_both_windows() -> None:
    ext = client_accepts([(SMWB, "12"), (CMWB, "12")])
    # The client compresses with client_max_window_bits: its local window.
    assert sides(ext) == (False, False, 12, 12)


def test_client_accepts_unrequested_server_no_context_takeover() -> None:
    assert client_accepts([(SNCT, None)]).remote_no_context_takeover


def test_client_honours_client_no_context_takeover_answered() -> None:
    assert client_accepts([(CNCT, None)]).local_no_context_takeover


def test_client_keeps_its_client_no_context_takeover_hint_unanswered() -> None:
    # Section 7.1.1.2: the offer is a promise, answered or not.
    assert client_accepts([], client_no_context_takeover=True).local_no_context_takeover


def test_client_uses_offered_client_max_window_bits_when_unanswered() -> None:
    assert client_accepts([], client_max_window_bits=10).local_max_window_bits == 10


def test_client_accepts_smaller_server_max_window_bits_than_requested() -> None:
    assert client_accepts([(SMWB, "9")], server_max_window_bits=12).remote_max_window_bits == 9


INVALID_ANSWERS: dict[str, tuple[ExtensionParams, dict[str, object]]] = {
    "unknown parameter": ([("foo", "bar")], {}),
    "duplicate parameter": ([(SNCT, None), (SNCT, None)], {}),
    "duplicate window bits": ([(SMWB, "10"), (SMWB, "11")], {}),
    "value on server_no_context_takeover": ([(SNCT, "1")], {}),
    "value on client_no_context_takeover": ([(CNCT, "1")], {}),
    "client_max_window_bits without value": ([(CMWB, None)], {}),
    "server_max_window_bits without value": ([(SMWB, None)], {}),
    "server_max_window_bits 16": ([(SMWB, "16")], {}),
    "client_max_window_bits 7": ([(CMWB, "7")], {}),
    "non-numeric window bits": ([(CMWB, "x")], {}),
    "client_max_window_bits not offered": ([(CMWB, "10")], {"client_max_window_bits": None}),
    "client_max_window_bits above offer": ([(CMWB, "12")], {"client_max_window_bits": 11}),
    "server_max_window_bits above request": ([(SMWB, "13")], {"server_max_window_bits": 12}),
    "server_max_window_bits request ignored": ([], {"server_max_window_bits": 12}),
    "server_no_context_takeover request ignored": ([], {"server_no_context_takeover": True}),
}


@pytest.mark.parametrize(
    ("params", "options"), INVALID_ANSWERS.values(), ids=INVALID_ANSWERS.keys()
)
def test_client_rejects_invalid_answer(params: ExtensionParams, options: dict[str, object]) -> None:
    with pytest.raises(NegotiationError):
        client_accepts(params, **options)


def test_client_rejects_second_permessage_deflate() -> None:
    with pytest.raises(NegotiationError):
        ClientPerMessageDeflateFactory().process_response_params([], [client_accepts([])])


# --- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"server_max_window_bits": 7},
        {"server_max_window_bits": 16},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": True},  # True is a client-side spelling only
        {"level": 10},
        {"level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
        {"min_size": -1},
    ],
)
def test_server_factory_rejects_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ServerPerMessageDeflateFactory(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"server_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"client_max_window_bits": False},
    ],
)
def test_client_factory_rejects_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ClientPerMessageDeflateFactory(**options)  # type: ignore[arg-type]


def test_deflate_factories_builds_one_factory_per_side() -> None:
    (server,) = deflate_factories(Side.SERVER, "deflate", level=9, server_max_window_bits=10)
    assert isinstance(server, ServerPerMessageDeflateFactory)
    assert (server.level, server.server_max_window_bits) == (9, 10)
    (client,) = deflate_factories(Side.CLIENT)
    assert isinstance(client, ClientPerMessageDeflateFactory)
    assert client.get_request_params() == [(CMWB, None)]


def test_deflate_factories_none_disables_compression() -> None:
    assert deflate_factories(Side.SERVER, None) == []
    assert deflate_factories(Side.CLIENT, None) == []


def test_deflate_factories_rejects_unknown_compression_and_stray_options() -> None:
    with pytest.raises(ValueError, match="unsupported compression"):
        deflate_factories(Side.SERVER, "gzip")
    with pytest.raises(ValueError, match="compression=None"):
        deflate_factories(Side.CLIENT, None, level=1)


# --- whole handshakes -------------------------------------------------------------------


def negotiate(*offers: str, **options: object) -> ServerConnection:
    """Run a server handshake with these ``Sec-WebSocket-Extensions`` header values."""
    server = ServerConnection(extensions=[ServerPerMessageDeflateFactory(**options)])  # type: ignore[arg-type]
    server_handshake(server, request_bytes(extra=[("Sec-WebSocket-Extensions", o) for o in offers]))
    assert server.state is State.OPEN
    return server


def answered(server: ServerConnection) -> list[tuple[str, ExtensionParams]]:
    assert server.response is not None
    value = server.response.headers.get("Sec-WebSocket-Extensions")
    return [] if value is None else parse_extension_header(value)


def test_server_tries_offers_in_order_and_first_acceptable_wins() -> None:
    server = negotiate(
        "permessage-deflate; foo, permessage-deflate; server_max_window_bits=10, "
        "permessage-deflate; server_max_window_bits=9"
    )
    assert answered(server) == [("permessage-deflate", [(SMWB, "10")])]
    (ext,) = server.extensions
    assert isinstance(ext, PerMessageDeflate)
    assert ext.local_max_window_bits == 10


def test_server_reads_offers_across_header_lines() -> None:
    server = negotiate("permessage-deflate; client_max_window_bits=99", "permessage-deflate")
    assert answered(server) == [("permessage-deflate", [(SMWB, "12")])]


def test_server_accepts_quoted_value() -> None:
    # RFC 6455 section 9.1: a quoted-string value is the token once unquoted.
    server = negotiate('permessage-deflate; server_max_window_bits="10"')
    assert answered(server) == [("permessage-deflate", [(SMWB, "10")])]


def test_server_opens_uncompressed_when_every_offer_is_invalid() -> None:
    server = negotiate("permessage-deflate; server_max_window_bits", "permessage-deflate; x=1")
    assert answered(server) == []
    assert server.extensions == []


def test_server_ignores_other_extensions() -> None:
    server = negotiate("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits")
    assert answered(server) == [("permessage-deflate", [(SMWB, "12"), (CMWB, "12")])]


def client_with_answer(answer: str, **options: object) -> ClientConnection:
    client = ClientConnection(
        "ws://example.com/",
        extensions=[ClientPerMessageDeflateFactory(**options)],  # type: ignore[arg-type]
    )
    client.key = CLIENT_KEY
    client.send_request()
    client.data_to_send()
    client.receive_data(response_bytes(CLIENT_KEY, extra=[("Sec-WebSocket-Extensions", answer)]))
    return client


def test_client_opens_with_valid_answer() -> None:
    client = client_with_answer(
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"
    )
    assert client.state is State.OPEN
    (ext,) = client.extensions
    assert isinstance(ext, PerMessageDeflate)
    assert (ext.local_max_window_bits, ext.remote_max_window_bits) == (10, 12)


@pytest.mark.parametrize(
    ("answer", "options"),
    [
        ("permessage-deflate; foo=1", {}),
        ("permessage-deflate; client_max_window_bits=10", {"client_max_window_bits": None}),
        ("permessage-deflate; server_max_window_bits=16", {}),
        ("permessage-deflate, permessage-deflate", {}),
    ],
    ids=["unknown parameter", "client_max_window_bits not offered", "out of range", "twice"],
)
def test_client_fails_connection_on_invalid_answer(answer: str, options: dict[str, object]) -> None:
    # RFC 6455 section 9.1 and RFC 7692 section 7.1: _Fail the WebSocket Connection_.
    client = client_with_answer(answer, **options)
    assert isinstance(client.handshake_exc, NegotiationError)
    assert client.state is State.CLOSED
    assert client.eof_sent
