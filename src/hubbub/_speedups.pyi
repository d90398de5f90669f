"""Type stubs of the compiled accelerator; see hubbub.speedups and _speedups.c."""

from collections.abc import Sequence
from typing import Any

_Buffer = bytes | bytearray | memoryview

HAVE_AVX2: int

def apply_mask(data: _Buffer, mask: _Buffer, offset: int = 0) -> bytes: ...
def mask_inplace(buf: bytearray, start: int, end: int, mask: _Buffer, offset: int = 0) -> None: ...
def validate_utf8(data: _Buffer, state: int = 0) -> tuple[int, int]: ...
def parse_messages(
    buf: _Buffer, pos: int, masked: bool, max_size: int, events: list[Any]
) -> int: ...
def unmask_join(
    chunks: Sequence[_Buffer], start: int, length: int, mask: _Buffer | None
) -> bytes: ...
