"""Coverage-guided fuzzing of the frame parser with atheris (libFuzzer).

Usage (see README.md)::

    python fuzzing/fuzz_frames.py CORPUS_DIR -max_total_time=600

Each input is two configuration bytes (side, max_size, defer_failure,
extension, how to cut the stream) followed by the byte stream; see
:func:`targets.fuzz_frames` for what is checked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(
    include=["hubbub.protocol", "hubbub.speedups", "hubbub.exceptions", "targets"]
):
    import targets

from seeds import frame_seeds, write_seeds


def test_one_input(data: bytes) -> None:
    targets.fuzz_frames(data)


def main() -> None:
    for arg in sys.argv[1:]:
        if not arg.startswith("-") and not Path(arg).is_file():  # a file: replay it
            write_seeds(Path(arg), frame_seeds())
            break
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
