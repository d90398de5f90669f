"""Coverage-guided fuzzing of the hub's request handling with atheris (libFuzzer).

Usage (see README.md)::

    python fuzzing/fuzz_hub.py corpus/hub -runs=1000000

The first byte of an input picks the state of the fuzzed session (bit 0:
connected or not) and its encoding (bit 1: ``hubbub.msgpack.v1``); the rest is
the text of one WebSocket message, or with bit 1 its binary payload. The
checks are in ``hub_targets.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["hubbub.hub", "hub_targets"]):
    import hub_targets

from seeds import write_seeds


def main() -> None:
    merging = any(arg.startswith(("-merge=", "-set_cover_merge=")) for arg in sys.argv)
    for arg in sys.argv[1:]:
        if not arg.startswith("-") and not Path(arg).is_file() and not merging:
            write_seeds(Path(arg), hub_targets.hub_seeds())
            break
    atheris.Setup(sys.argv, hub_targets.fuzz_hub_request)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
