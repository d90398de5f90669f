"""Coverage-guided fuzzing of the HTTP handshake parsers with atheris (libFuzzer).

Usage (see README.md)::

    python fuzzing/fuzz_http.py CORPUS_DIR -max_total_time=600

The first byte of an input picks the target, the rest is its input:

====  ==========================================================
0     ``parse_request``
1     ``parse_response`` (with and without EOF)
2     a ``ServerConnection`` fed the bytes (handshake, then frames)
3     a ``ClientConnection`` fed the bytes as the server's answer
4     ``parse_uri`` (bytes decoded as UTF-8)
5     ``parse_extension_header`` (bytes decoded as latin-1)
====  ==========================================================
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(
    include=["hubbub.protocol", "hubbub.speedups", "hubbub.exceptions", "targets"]
):
    import targets

from seeds import http_seeds, write_seeds

TARGETS = targets.HTTP_TARGETS


def test_one_input(data: bytes) -> None:
    if data:
        TARGETS[data[0] % len(TARGETS)](data[1:])


def main() -> None:
    for arg in sys.argv[1:]:
        if not arg.startswith("-") and not Path(arg).is_file():  # a file: replay it
            write_seeds(Path(arg), http_seeds())
            break
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
