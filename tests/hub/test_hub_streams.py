"""Bounded ordered streams: offsets, epochs, trimming by count and by age."""

from __future__ import annotations

from hub_helpers import FakeClock

from hubbub.hub.core.streams import Stream, StreamLimits, new_epoch


def test_offsets_start_at_one_and_increase() -> None:
    clock = FakeClock()
    stream = Stream(StreamLimits(10, None), clock)
    entries = [stream.append(i, "u") for i in range(3)]
    assert [e.offset for e in entries] == [1, 2, 3]
    assert {e.epoch for e in entries} == {stream.epoch}
    assert [e.data for e in stream.read(0, 10).entries] == [0, 1, 2]
    assert stream.read(0, 10).complete


def test_epochs_differ() -> None:
    assert len({new_epoch() for _ in range(100)}) == 100
    clock = FakeClock()
    assert Stream(StreamLimits(), clock).epoch != Stream(StreamLimits(), clock).epoch


def test_read_after_and_limit() -> None:
    stream = Stream(StreamLimits(10, None), FakeClock())
    for i in range(1, 8):
        stream.append(i)
    result = stream.read(3, 2)
    assert [e.offset for e in result.entries] == [4, 5]
    assert result.complete
    assert result.offset == 7
    assert stream.read(7, 5).entries == []
    assert stream.read(7, 5).complete


def test_tail_read() -> None:
    stream = Stream(StreamLimits(10, None), FakeClock())
    for i in range(1, 8):
        stream.append(i)
    assert [e.offset for e in stream.read(None, 3).entries] == [5, 6, 7]
    assert [e.offset for e in stream.read(None, 30).entries] == list(range(1, 8))
    assert stream.read(None, 0).entries == []


def test_trim_by_count() -> None:
    stream = Stream(StreamLimits(3, None), FakeClock())
    for i in range(1, 6):
        stream.append(i)
    assert len(stream) == 3
    assert stream.first_offset == 3
    # Whoever saw offset 2 missed nothing that is gone.
    assert stream.read(2, 10).complete
    assert [e.offset for e in stream.read(2, 10).entries] == [3, 4, 5]
    # Whoever saw offset 1 missed offset 2, which was trimmed.
    incomplete = stream.read(1, 10)
    assert not incomplete.complete
    assert [e.offset for e in incomplete.entries] == [3, 4, 5]


def test_trim_by_age() -> None:
    clock = FakeClock()
    stream = Stream(StreamLimits(100, 10.0), clock)
    stream.append("old")
    clock.advance(6)
    stream.append("new")
    assert len(stream) == 2
    clock.advance(5)  # "old" is 11 s old now
    assert [e.data for e in stream.read(0, 10).entries] == ["new"]
    assert not stream.read(0, 10).complete
    assert stream.read(1, 10).complete
    clock.advance(10)
    assert len(stream) == 0
    assert stream.first_offset == 3
    assert stream.read(2, 10).complete
    assert stream.read(2, 10).offset == 2


def test_zero_length_history_keeps_offsets() -> None:
    stream = Stream(StreamLimits(0, None), FakeClock())
    stream.append("a")
    stream.append("b")
    assert len(stream) == 0
    assert stream.read(2, 10).complete
    assert not stream.read(1, 10).complete


def test_offset_beyond_top_is_incomplete() -> None:
    stream = Stream(StreamLimits(10, None), FakeClock())
    stream.append("a")
    result = stream.read(5, 10)
    assert not result.complete
    assert result.entries == []
