"""Every fenced ``python`` block of the docs site and the README runs, as a program of its own.

A block that cannot run by itself (a fragment of a larger program, one that serves
forever, one that needs a service such as Redis) is marked by an HTML comment on the
line before its fence, which the site does not show::

    <!-- not-run: a fragment: request_bytes and socket come from the server loop -->
    ```python

The reason is required. Everything else runs in a fresh interpreter, in an empty
directory, with a timeout: examples must bind port 0 (or ask the OS for a free port)
and finish by themselves.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
TIMEOUT = 60.0  # seconds for one snippet on a loaded 2-core machine

FENCE = re.compile(r"^```(\S*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Snippet:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def snippets(page: Path) -> list[Snippet]:
    """The fenced python blocks of ``page`` (only ``python``: ``pycon``, ``sh`` ... are prose)."""
    found: list[Snippet] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        if opening.group(1) == "python":
            previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            marked = NOT_RUN.match(previous.strip())
            code = "\n".join(lines[index + 1 : end]) + "\n"
            found.append(Snippet(page, index + 1, code, marked.group(1) if marked else None))
        index = end + 1
    return found


ALL = [snippet for page in PAGES for snippet in snippets(page)]
RUNNABLE = [snippet for snippet in ALL if snippet.not_run is None]


@pytest.mark.parametrize("snippet", RUNNABLE, ids=[s.name for s in RUNNABLE])
def test_snippet_runs(snippet: Snippet, tmp_path: Path) -> None:
    try:
        result = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error", "-c", snippet.code],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{snippet.name} did not finish in {TIMEOUT:.0f} s (port 0? a server forever?)")
    assert result.returncode == 0, f"{snippet.name} failed:\n{result.stderr}"


def test_every_marked_snippet_says_why() -> None:
    unexplained = [s.name for s in ALL if s.not_run is not None and len(s.not_run) < 10]
    assert unexplained == []


def test_most_snippets_run() -> None:
    # Guards the extractor itself: a change that made it find nothing must fail here.
    assert len(RUNNABLE) >= 15, [s.name for s in RUNNABLE]
    assert len(RUNNABLE) > len(ALL) - len(RUNNABLE)


def test_extractor_reads_fences_and_marks(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nprint(1)\n```\n\n<!-- not-run: serves forever, by design -->\n\n"
        "```python\nwhile True: pass\n```\n```sh\nls\n```\n",
        encoding="utf-8",
    )
    found = snippets(page)
    assert [(s.line, s.code, s.not_run) for s in found] == [
        (2, "print(1)\n", None),
        (8, "while True: pass\n", "serves forever, by design"),
    ]
