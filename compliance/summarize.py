"""Read an Autobahn|Testsuite report and judge it.

wstest writes ``index.json`` into its report folder: ``{agent: {case_id: entry}}`` where each
entry holds ``behavior`` (the verdict on the frames exchanged), ``behaviorClose`` (the verdict
on the closing handshake), ``remoteCloseCode``, ``duration`` (ms) and ``reportfile`` (the
per-case JSON with the human-readable ``result`` and ``resultClose``).

Verdicts wstest uses: ``OK``; ``NON-STRICT`` (a SHOULD of RFC 6455 is not followed, e.g.
invalid UTF-8 noticed only at the end of the message); ``INFORMATIONAL`` (the RFC leaves the
behaviour open); ``UNIMPLEMENTED`` (an optional feature, e.g. permessage-deflate, is not
offered); ``FAILED``. The closing verdict may also be ``WRONG CODE``, ``UNCLEAN`` or
``FAILED BY CLIENT``.

Our bar (issue 2): a case passes only when both verdicts are OK or INFORMATIONAL. NON-STRICT
and UNIMPLEMENTED fail, and so does a case whose frames were right but whose close was not.
A report with fewer cases than were selected fails too (the testee crashed or hung).

Usage: summarize.py REPORT_DIR [--agent NAME] [--expected N] [--side NAME] [--json FILE]
Prints one summary line, then one line per case that is not plainly OK; exits 0 when every
case passes, 1 when some case fails, 3 when the report is missing or incomplete.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Verdicts that count as a pass, for ``behavior`` and ``behaviorClose`` alike.
PASSING = frozenset({"OK", "INFORMATIONAL"})
#: Order of the counters on the summary line.
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INCOMPLETE = 3


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one Autobahn case for one agent."""

    case_id: str
    behavior: str
    behavior_close: str
    remote_close_code: int | None
    duration_ms: int | None
    result: str
    result_close: str

    @property
    def passed(self) -> bool:
        """Whether both verdicts are acceptable (OK or INFORMATIONAL)."""
        return self.behavior in PASSING and self.behavior_close in PASSING

    @property
    def plain_ok(self) -> bool:
        """Whether both verdicts are exactly OK (nothing worth printing)."""
        return self.behavior == "OK" and self.behavior_close == "OK"


@dataclass(frozen=True)
class Summary:
    """The verdict on one agent's report."""

    side: str
    agent: str
    cases: list[CaseResult]
    expected: int | None

    @property
    def missing(self) -> int:
        """How many selected cases have no result (0 when the count is unknown)."""
        return max(0, (self.expected or 0) - len(self.cases))

    @property
    def failures(self) -> list[CaseResult]:
        """Cases that do not pass."""
        return [case for case in self.cases if not case.passed]

    @property
    def exit_code(self) -> int:
        """0 all passed, 1 some case failed, 3 report incomplete (takes precedence)."""
        if self.missing or not self.cases:
            return EXIT_INCOMPLETE
        return EXIT_FAIL if self.failures else EXIT_PASS

    def summary_line(self) -> str:
        """One line: counts per behavior, closes that failed, missing cases and the verdict."""
        counts = Counter(case.behavior for case in self.cases)
        fields = [f"{name}={counts.pop(name, 0)}" for name in BEHAVIORS]
        fields += [f"{name.replace(' ', '_')}={n}" for name, n in sorted(counts.items())]
        bad_closes = sum(1 for case in self.cases if case.behavior_close not in PASSING)
        if bad_closes:
            fields.append(f"CLOSE-NOT-OK={bad_closes}")
        if self.missing:
            fields.append(f"MISSING={self.missing}")
        verdict = {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL", EXIT_INCOMPLETE: "INCOMPLETE"}
        return (
            f"AUTOBAHN side={self.side} agent={self.agent} cases={len(self.cases)} "
            + " ".join(fields)
            + f" -> {verdict[self.exit_code]}"
        )

    def detail_lines(self) -> list[str]:
        """One line per case that is not plainly OK: FAIL (counts against us) or NOTE."""
        lines = []
        for case in self.cases:
            if case.plain_ok:
                continue
            tag = "NOTE" if case.passed else "FAIL"
            text = case.result
            if case.behavior_close != "OK" and case.result_close != case.result:
                text += f" / close: {case.result_close}"
            text = " ".join(text.split())
            if len(text) > 200:
                text = text[:197] + "..."
            lines.append(
                f"{tag} {case.case_id} behavior={case.behavior} "
                f"close={case.behavior_close.replace(' ', '_')} "
                f"remote_code={case.remote_close_code} ms={case.duration_ms} | {text}"
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        """A machine-readable form, for tests and CI artifacts."""
        return {
            "side": self.side,
            "agent": self.agent,
            "expected": self.expected,
            "missing": self.missing,
            "exit_code": self.exit_code,
            "summary": self.summary_line(),
            "cases": [asdict(case) | {"passed": case.passed} for case in self.cases],
        }


def case_sort_key(case_id: str) -> tuple[int, ...]:
    """Sort "9.10.2" after "9.2.1": numerically, part by part."""
    return tuple(int(part) if part.isdigit() else 0 for part in case_id.split("."))


def _read_case_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_report(report_dir: Path, agent: str | None = None) -> tuple[str, list[CaseResult]]:
    """Load one agent's results from ``report_dir/index.json``.

    Args:
        report_dir: the folder wstest wrote (``outdir`` in its spec).
        agent: which agent to read; may be omitted when the report holds exactly one.

    Returns:
        The agent's name and its cases in suite order.

    Raises:
        FileNotFoundError: no index.json.
        LookupError: the agent is not in the report, or several are and none was named.
    """
    index = json.loads((report_dir / "index.json").read_text(encoding="utf-8"))
    if agent is None:
        if len(index) != 1:
            raise LookupError(f"report holds agents {sorted(index)}: name one with --agent")
        agent = next(iter(index))
    if agent not in index:
        raise LookupError(f"agent {agent!r} not in report (has {sorted(index)})")
    cases = []
    for case_id in sorted(index[agent], key=case_sort_key):
        entry = index[agent][case_id]
        details = _read_case_file(report_dir / entry["reportfile"]) if "reportfile" in entry else {}
        cases.append(
            CaseResult(
                case_id=case_id,
                behavior=str(entry.get("behavior", "MISSING")),
                behavior_close=str(entry.get("behaviorClose", "MISSING")),
                remote_close_code=entry.get("remoteCloseCode"),
                duration_ms=entry.get("duration"),
                result=str(details.get("result") or ""),
                result_close=str(details.get("resultClose") or ""),
            )
        )
    return agent, cases


def summarize(
    report_dir: Path, *, side: str = "?", agent: str | None = None, expected: int | None = None
) -> Summary:
    """Load a report and wrap it in a :class:`Summary` (empty when there is no report)."""
    try:
        name, cases = load_report(report_dir, agent)
    except (OSError, ValueError, LookupError) as exc:
        print(f"AUTOBAHN side={side} no usable report in {report_dir}: {exc}", file=sys.stderr)
        return Summary(side=side, agent=agent or "?", cases=[], expected=expected)
    return Summary(side=side, agent=name, cases=cases, expected=expected)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--agent")
    parser.add_argument("--expected", type=int, help="number of cases selected")
    parser.add_argument("--side", default="?", help="label for the summary line")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    summary = summarize(args.report_dir, side=args.side, agent=args.agent, expected=args.expected)
    print(summary.summary_line())
    for line in summary.detail_lines():
        print(line)
    if args.json:
        args.json.write_text(json.dumps(summary.to_json(), indent=1) + "\n", encoding="utf-8")
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
