"""What an fstests run leaves behind, read into outcomes: result.xml, check.log, check.time.

fstests' `check` writes, under `RESULT_BASE` (see its `run_section` and `common/report`):
- `<REPORT_DIR>/result.xml` with `-R xunit`, where REPORT_DIR is `RESULT_BASE/<section>` when
  the config has sections and `RESULT_BASE` itself when not: one `<testsuite>`, one
  `<testcase classname="xfstests.<section>" name="generic/001" time="3">` per test that ran,
  holding `<skipped message=...>` (not run, with the reason), `<failure message=...>` (with
  optional `<system-out>`, `<system-err>` and `<kernel-log>`), or nothing (passed). Expunged
  tests are left out, and a run that died has no file at all: absent is never passed.
- `RESULT_BASE/check.log`, appended to by every run: a date, `Ran: <tests>` (which includes
  the tests that did not run), `Not run: <tests>`, `Failures: <tests>`, `Failed N of M tests`
  (or `Passed all N tests`); newer versions put a `SECTION -- <name>` line before each run.
  Passed = Ran - Not run - Failures. It gives no reasons, so it is the fallback, and a
  cross-check: a test it lists under Failures is never recorded as passed.
- `RESULT_BASE/check.time`: `<test> <seconds>` for each passing test, the durations when the
  XML has none.
- `<REPORT_DIR>/<test>.out.bad`: the output of a failing test, our failure message when the
  XML cannot give one.

The XML comes from the machine under test, so it is parsed with defusedxml and a DTD is refused
outright (fstests never writes one): no entity expansion (billion laughs), no external entities.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from reconciler.adapters.harness.base import SubtestOutcome
from reconciler.model.errors import HarnessError
from reconciler.model.results import Status

MESSAGE_LIMIT = 2000
"""Longest message kept; the full files are stored as logs."""
_SECTION_LOG_LIMIT = 600
"""Longest part of one `<system-out>`/`<system-err>`/`<kernel-log>` kept in a message."""
NOT_RUN_WITHOUT_REASON = "not run (check.log gives no reason)"
CHECK_LOG_FAILURE = "listed under Failures in check.log"


@dataclass
class CheckLogRun:
    """One run recorded in check.log."""

    section: str | None = None
    ran: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    summary: str | None = None
    """`Failed 13 of 580 tests` or `Passed all 580 tests`, when the run got that far."""

    @property
    def passed(self) -> list[str]:
        others = set(self.not_run) | set(self.failures)
        return [test for test in self.ran if test not in others]


def parse_result_xml(data: bytes) -> list[SubtestOutcome]:
    """Outcomes of every `<testcase>` of an fstests xunit report, in document order."""
    try:
        root = fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise HarnessError(
            f"fstests result.xml is not a well-formed report: {exc}",
            hint="the run may have died while writing it; its check.log is used instead only"
            " when result.xml is missing, so look at the batch log",
        ) from exc
    if root.tag != "testsuite":
        raise HarnessError(
            f"fstests result.xml has a <{root.tag}> root, not <testsuite>",
            hint="run check with `-R xunit` and one section per batch",
        )
    return [_testcase_outcome(case) for case in root.iter("testcase")]


def _testcase_outcome(case: Any) -> SubtestOutcome:
    name = case.get("name")
    if not name:
        raise HarnessError("a <testcase> in fstests result.xml has no name attribute")
    duration = _seconds(case.get("time"))
    for tag in ("failure", "error"):
        element = case.find(tag)
        if element is not None:
            return SubtestOutcome(name, Status.FAIL, duration, _failure_message(case, element))
    skipped = case.find("skipped")
    if skipped is not None:
        reason = (skipped.get("message") or (skipped.text or "")).strip()
        return SubtestOutcome(name, Status.SKIP, duration, reason[:MESSAGE_LIMIT] or None)
    return SubtestOutcome(name, Status.PASS, duration, None)


def _failure_message(case: Any, failure: Any) -> str | None:
    parts = [(failure.get("message") or (failure.text or "")).strip()]
    # The diff (system-err) and the kernel log say why; their heads are enough to triage.
    for tag in ("kernel-log", "system-err", "system-out"):
        element = case.find(tag)
        text = (element.text or "").strip() if element is not None else ""
        if text:
            parts.append(f"{tag}:\n{text[:_SECTION_LOG_LIMIT]}")
    message = "\n".join(part for part in parts if part)
    return message[:MESSAGE_LIMIT] or None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # a bad time attribute loses the duration, never the verdict
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


_CHECK_LOG_LISTS = {"Ran:": "ran", "Not run:": "not_run", "Failures:": "failures"}
_SECTION_LINE = re.compile(r"SECTION\s+--\s+(?P<section>\S+)")
_SUMMARY_LINE = re.compile(r"(?:Failed \d+ of \d+ tests|Passed all \d+ tests)")


def parse_check_log(text: str) -> list[CheckLogRun]:
    """Every run in a check.log, oldest first."""
    runs: list[CheckLogRun] = []
    section: str | None = None
    current: CheckLogRun | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if match := _SECTION_LINE.fullmatch(line):
            section = match["section"]
            current = None
            continue
        for prefix, attribute in _CHECK_LOG_LISTS.items():
            if line.startswith(prefix):
                if attribute == "ran" or current is None:
                    # `Ran:` opens a run; each run of a multi-section log has its own.
                    current = CheckLogRun(section=section)
                    runs.append(current)
                getattr(current, attribute).extend(line[len(prefix) :].split())
                break
        else:
            if current is not None and _SUMMARY_LINE.fullmatch(line):
                current.summary = line
    return runs


def last_run(runs: list[CheckLogRun]) -> CheckLogRun | None:
    """The newest run: a batch's RESULT_BASE starts empty, so it is this batch's."""
    return runs[-1] if runs else None


def parse_check_time(text: str) -> dict[str, float]:
    """`<test> <seconds>` lines; malformed lines are skipped (a duration is never a verdict)."""
    durations: dict[str, float] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2:
            continue
        seconds = _seconds(fields[1])
        if seconds is not None:
            durations[fields[0]] = seconds
    return durations


def check_log_outcomes(
    run: CheckLogRun, *, durations: Mapping[str, float], out_bad: Mapping[str, str]
) -> list[SubtestOutcome]:
    """Outcomes of one check.log run, for when result.xml is missing."""
    failures = set(run.failures)
    not_run = set(run.not_run)
    outcomes = []
    for test in dict.fromkeys(run.ran):
        if test in failures:
            outcomes.append(
                SubtestOutcome(test, Status.FAIL, None, failure_message(test, out_bad=out_bad))
            )
        elif test in not_run:
            outcomes.append(SubtestOutcome(test, Status.SKIP, None, NOT_RUN_WITHOUT_REASON))
        else:
            outcomes.append(SubtestOutcome(test, Status.PASS, durations.get(test), None))
    return outcomes


def failure_message(test: str, *, out_bad: Mapping[str, str]) -> str:
    output = out_bad.get(test)
    if not output:
        return CHECK_LOG_FAILURE
    return f"{CHECK_LOG_FAILURE}; {test}.out.bad:\n{output.strip()}"[:MESSAGE_LIMIT]


# check's console: `generic/001 4s`, `generic/001 5s ...  4s` (with the previous duration),
# `generic/002 [not run] <reason>`, `generic/003 1s ... - output mismatch (see ...)` or
# `... [failed, exit status 1]- output mismatch ...`. Lines that do not fit one of these whole
# (diffs, `[expunged]`, dmesg complaints) are not read.
_CONSOLE_NAME = r"(?P<name>[A-Za-z0-9_-]+/\d+)"
_CONSOLE_BEFORE = r"(?:\s+\d+s \.\.\.)?\s+"
CONSOLE_STATUSES: tuple[tuple[Status, re.Pattern[str]], ...] = (
    (Status.PASS, re.compile(_CONSOLE_NAME + _CONSOLE_BEFORE + r"(?P<seconds>\d+)s")),
    (Status.SKIP, re.compile(_CONSOLE_NAME + _CONSOLE_BEFORE + r"\[not run\]\s*(?P<reason>.*)")),
    (
        Status.FAIL,
        re.compile(
            _CONSOLE_NAME
            + _CONSOLE_BEFORE
            + r"(?P<reason>(?:\[failed, exit status \d+\]\s*)?-\s+output mismatch.*"
            + r"|\[failed, exit status \d+\].*)"
        ),
    ),
)


def parse_console(output: str) -> list[SubtestOutcome]:
    """Verdicts check printed on its console, in order."""
    outcomes = []
    for raw in output.splitlines():
        line = raw.rstrip()
        for status, pattern in CONSOLE_STATUSES:
            match = pattern.fullmatch(line)
            if match is None:
                continue
            groups = match.groupdict()
            seconds = float(groups["seconds"]) if groups.get("seconds") else None
            reason = (groups.get("reason") or "").strip() or None
            outcomes.append(SubtestOutcome(match["name"], status, seconds, reason))
            break
    return outcomes
