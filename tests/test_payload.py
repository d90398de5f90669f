"""``Payload``: a large frame's payload, read into in place, then handed over as bytes.

Both implementations (``hubbub._speedups.Payload`` when it was built, and the
pure ``hubbub.speedups.PyPayload``) are checked against the same expectations,
and the masked result against an obvious XOR written here (RFC 6455 section
5.3), so that the two cannot drift apart.
"""

from __future__ import annotations

import gc
import os
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub import speedups

try:
    from hubbub import _speedups
except ImportError:  # built without a compiler
    _speedups = None  # type: ignore[assignment]

IMPLS: list[Any] = [pytest.param("py", id="py")]
if _speedups is not None:
    IMPLS.append(pytest.param("c", id="c"))


def payload_type(kind: str) -> Any:
    if kind == "c":
        assert _speedups is not None
        return _speedups.Payload
    return speedups.PyPayload


def ref_mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("kind", IMPLS)
@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 63, 64, 65, 1000, 70_001])
def test_fill_then_finish(kind: str, size: int) -> None:
    data = os.urandom(size)
    payload = payload_type(kind)(size)
    assert len(payload) == size
    view = payload.view()
    assert (view.nbytes, view.itemsize, view.format, view.readonly) == (size, 1, "B", False)
    view[:] = data
    view.release()
    result = payload.finish()
    assert type(result) is bytes
    assert result == data


@pytest.mark.parametrize("kind", IMPLS)
@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 7, 8, 9, 31, 32, 33, 1000, 65_537])
@pytest.mark.parametrize("key", [b"\x37\xfa\x21\x3d", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"])
def test_finish_unmasks(kind: str, size: int, key: bytes) -> None:
    data = os.urandom(size)
    payload = payload_type(kind)(size)
    payload.view()[:] = ref_mask(data, key)
    assert payload.finish(key) == data


@pytest.mark.parametrize("kind", IMPLS)
def test_finish_accepts_any_buffer_as_mask_and_none(kind: str) -> None:
    data = os.urandom(100)
    key = b"abcd"
    for mask in (bytearray(key), memoryview(key)):
        payload = payload_type(kind)(100)
        payload.view()[:] = ref_mask(data, key)
        assert payload.finish(mask) == data
    payload = payload_type(kind)(100)
    payload.view()[:] = data
    assert payload.finish(None) == data


@pytest.mark.parametrize("kind", IMPLS)
def test_filled_in_pieces_through_several_views(kind: str) -> None:
    data = os.urandom(10_000)
    payload = payload_type(kind)(len(data))
    rng = random.Random(5)
    pos = 0
    while pos < len(data):
        # A fresh view (or a slice of one) per read, as the adapters take them.
        n = min(rng.randint(1, 3000), len(data) - pos)
        view = payload.view()[pos:]
        view[:n] = data[pos : pos + n]
        pos += n
    assert payload.finish() == data


@pytest.mark.parametrize("kind", IMPLS)
def test_finish_once_only(kind: str) -> None:
    payload = payload_type(kind)(8)
    payload.view()[:] = b"12345678"
    assert payload.finish() == b"12345678"
    with pytest.raises(RuntimeError, match="finished"):
        payload.finish()
    with pytest.raises(RuntimeError, match="finished"):
        payload.finish(b"abcd")


@pytest.mark.parametrize("kind", IMPLS)
def test_no_view_after_finish(kind: str) -> None:
    payload = payload_type(kind)(8)
    payload.view()[:] = b"12345678"
    result = payload.finish()
    with pytest.raises(BufferError):
        payload.view()
    # The bytes handed over are not disturbed by the attempt.
    assert result == b"12345678"


@pytest.mark.parametrize("kind", IMPLS)
def test_bad_sizes(kind: str) -> None:
    cls = payload_type(kind)
    with pytest.raises(ValueError, match=">= 0"):
        cls(-1)
    with pytest.raises(TypeError):
        cls(2.5)
    with pytest.raises(TypeError):
        cls("10")
    assert len(cls(size=3)) == 3


@pytest.mark.parametrize("kind", IMPLS)
def test_finish_argument_errors(kind: str) -> None:
    payload = payload_type(kind)(4)
    payload.view()[:] = b"abcd"
    with pytest.raises(TypeError):
        payload.finish(b"abcd", b"abcd")
    with pytest.raises(TypeError):
        payload.finish(mask=b"abcd")


@pytest.mark.parametrize("kind", IMPLS)
@pytest.mark.parametrize("key", [b"abc", b"abcde", b""])
def test_finish_rejects_bad_keys(kind: str, key: bytes) -> None:
    payload = payload_type(kind)(4)
    payload.view()[:] = b"abcd"
    with pytest.raises(ValueError, match="4 bytes"):
        payload.finish(key)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("py", id="py"),
        *IMPLS[1:],
    ],
)
def test_rejected_key_leaves_the_payload_usable(kind: str) -> None:
    payload = payload_type(kind)(4)
    payload.view()[:] = ref_mask(b"data", b"abcd")
    with pytest.raises(ValueError, match="4 bytes"):
        payload.finish(b"abc")
    assert payload.finish(b"abcd") == b"data"


@pytest.mark.skipif(_speedups is None, reason="the C extension is not built")
def test_len_after_finish_agrees() -> None:
    assert _speedups is not None
    lengths = []
    for cls in (_speedups.Payload, speedups.PyPayload):
        payload = cls(5)
        payload.view()[:] = b"12345"
        payload.finish()
        lengths.append(len(payload))
    assert lengths[0] == lengths[1]


@pytest.mark.parametrize("kind", IMPLS)
def test_view_keeps_the_memory_alive(kind: str) -> None:
    # The view outlives the payload object: writing and reading through it must
    # stay safe (it holds the payload, not a dangling pointer).
    view = payload_type(kind)(1000).view()
    gc.collect()
    view[:] = b"x" * 1000
    assert bytes(view) == b"x" * 1000


@pytest.mark.parametrize("kind", IMPLS)
def test_bytes_outlive_the_payload(kind: str) -> None:
    payload = payload_type(kind)(100_000)
    view = payload.view()
    view[:] = b"\x5a" * 100_000
    view.release()
    result = payload.finish(b"\x5a\x5a\x5a\x5a")
    del payload
    gc.collect()
    assert result == bytes(100_000)
    assert hash(result) == hash(bytes(100_000))


def test_exported_type_is_the_chosen_implementation() -> None:
    expected = _speedups.Payload if speedups.ACCELERATED else speedups.PyPayload
    assert speedups.Payload is expected


@pytest.mark.parametrize("kind", IMPLS)
@given(data=st.binary(max_size=2000), key=st.binary(min_size=4, max_size=4), cuts=st.data())
@settings(max_examples=100, deadline=None)
def test_pieces_then_unmask_equals_reference(
    kind: str, data: bytes, key: bytes, cuts: st.DataObject
) -> None:
    points = sorted(cuts.draw(st.lists(st.integers(0, len(data)), max_size=6)))
    payload = payload_type(kind)(len(data))
    masked = ref_mask(data, key)
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        payload.view()[start:end] = masked[start:end]
    assert payload.finish(key) == data
