"""RFC 6455 section 5.4: the frames of a fragmented message reported as they complete.

With ``stream_fragments`` on, the core reports each frame of a fragmented
message as a :class:`Fragment` event instead of assembling it; adapters build
``recv_streaming()`` on it.
"""

from __future__ import annotations

import pytest
from protocol_testing import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    assert_failed,
    feed,
    fragments,
    frame_to,
)

from hubbub.protocol import Connection, Fragment, Ping
from hubbub.protocol.permessage_deflate import PerMessageDeflate


@pytest.mark.parametrize("chunk_size", [None, 1, 5])
def test_binary_frames_become_fragments(conn: Connection, chunk_size: int | None) -> None:
    conn.stream_fragments = True
    data = fragments(conn, OP_BINARY, [b"ab", b"", b"cde"])
    assert feed(conn, data, chunk_size) == [
        Fragment(b"ab", False),
        Fragment(b"", False),
        Fragment(b"cde", True),
    ]


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_text_fragments_hold_whole_characters(conn: Connection, chunk_size: int | None) -> None:
    conn.stream_fragments = True
    raw = "añ€😀".encode()
    parts = [raw[:2], raw[2:4], raw[4:7], raw[7:8], raw[8:]]
    events = feed(conn, fragments(conn, OP_TEXT, parts), chunk_size)
    assert all(isinstance(e, Fragment) for e in events)
    assert "".join(e.data for e in events) == "añ€😀"  # type: ignore[attr-defined]
    assert [e.fin for e in events] == [False, False, False, False, True]  # type: ignore[attr-defined]
    assert events[0] == Fragment("a", False)  # "ñ" is cut: it comes with the next frame
    assert events[1] == Fragment("ñ", False)


def test_single_frame_messages_and_control_frames_stay_as_they_are(conn: Connection) -> None:
    conn.stream_fragments = True
    data = frame_to(conn, OP_TEXT, b"whole") + frame_to(conn, OP_TEXT, b"a", fin=False)
    data += frame_to(conn, OP_PING, b"p") + frame_to(conn, OP_CONT, b"b")  # a ping between
    events = feed(conn, data)
    assert events == ["whole", Fragment("a", False), Ping(b"p"), Fragment("b", True)]


def test_turned_on_mid_message_reports_what_was_assembled_first(conn: Connection) -> None:
    data = fragments(conn, OP_BINARY, [b"a", b"b", b"c"])
    first = len(frame_to(conn, OP_BINARY, b"a", fin=False))
    assert feed(conn, data[:first]) == []
    conn.stream_fragments = True
    assert feed(conn, data[first:]) == [Fragment(b"ab", False), Fragment(b"c", True)]


def test_a_streamed_message_streams_to_its_end(conn: Connection) -> None:
    conn.stream_fragments = True
    data = fragments(conn, OP_BINARY, [b"a", b"b"])
    first = len(frame_to(conn, OP_BINARY, b"a", fin=False))
    assert feed(conn, data[:first]) == [Fragment(b"a", False)]
    conn.stream_fragments = False
    assert feed(conn, data[first:]) == [Fragment(b"b", True)]
    # The next message is assembled again.
    assert feed(conn, fragments(conn, OP_BINARY, [b"c", b"d"])) == [b"cd"]


def test_max_size_bounds_the_whole_streamed_message(conn: Connection) -> None:
    conn.max_size = 4
    conn.stream_fragments = True
    data = fragments(conn, OP_BINARY, [b"abc", b"de"])
    assert feed(conn, data) == [Fragment(b"abc", False)]
    assert_failed(conn, 1009)


def test_invalid_utf8_fails_at_its_frame(conn: Connection) -> None:
    conn.stream_fragments = True
    data = fragments(conn, OP_TEXT, [b"ok", b"\xff", b"x"])
    assert feed(conn, data) == [Fragment("ok", False)]
    assert_failed(conn, 1007)


def test_compressed_fragments() -> None:
    from hubbub.protocol import Side

    sender = Connection(Side.CLIENT, extensions=[PerMessageDeflate(min_size=0)])
    receiver = Connection(Side.SERVER, extensions=[PerMessageDeflate(min_size=0)])
    receiver.stream_fragments = True
    sender.send_data_frame(OP_TEXT, b"hello " * 50, False)
    sender.send_data_frame(OP_CONT, b"world", True)
    receiver.receive_data(b"".join(sender.data_to_send()))
    events = receiver.events_received()
    assert events == [Fragment("hello " * 50, False), Fragment("world", True)]


@pytest.mark.parametrize("chunk_size", [None, 8192])
def test_large_frames_are_fragments_too(conn: Connection, chunk_size: int | None) -> None:
    conn.stream_fragments = True
    big = [bytes([i]) * 200_000 for i in range(3)]
    events = feed(conn, fragments(conn, OP_BINARY, big), chunk_size)
    assert events == [Fragment(big[0], False), Fragment(big[1], False), Fragment(big[2], True)]


def test_report_fragment_hands_over_what_is_assembled(conn: Connection) -> None:
    data = fragments(conn, OP_TEXT, [b"a", b"b", b"c"])
    second_end = len(frame_to(conn, OP_TEXT, b"a", fin=False)) * 2
    assert feed(conn, data[:second_end]) == []
    conn.report_fragment()  # without stream_fragments: reported, then streamed to its end
    assert conn.events_received() == [Fragment("ab", False)]
    assert feed(conn, data[second_end:]) == [Fragment("c", True)]
    conn.report_fragment()  # nothing in progress: nothing reported
    assert conn.events_received() == []
