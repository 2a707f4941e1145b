"""The part of a batch log that is about one subtest, when the harness's output allows it.

A result's log is the output of the whole batch it ran in (one test file's subtests in one VM or
session), as ktest's `log.br` is. `logs COMMIT TEST` shows the subtest's own part by default,
like ci-status's per-test log, and the whole batch with `--full`. Slicing is by content, with a
table of slicers tried in order: each knows one output format and returns None when the log is
not in it or does not mention the subtest, in which case the caller says so and shows the
whole log. Nothing is guessed from substrings: test points and status lines are matched whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from reconciler.adapters.harness.ktest import LINE_STATUSES

# TAP: a top-level test point, `ok 2 - name`, `not ok 2 name` (a directive may follow `#`).
_TAP_POINT = re.compile(r"(?:not ok|ok)(?:\s+\d+)?(?:\s+-)?\s*(?P<description>.*?)\s*(?:#.*)?")
_TAP_PLAN = re.compile(r"\d+\.\.\d+(?:\s.*)?")
_TAP_SUBTEST_HEADER = re.compile(r"#\s*Subtest:\s*(?P<name>.*?)\s*")
_TAP_INDENT = "    "
_BAIL_OUT = "Bail out!"
# ktest prints `========= TEST   <t>` before a subtest (the supervisor may stamp the line).
_KTEST_START = re.compile(r"(?:\d{5,} )?(?:\[\s*\d+\.\d+\] ?)?========= TEST\s+(?P<name>\S+)")

Slicer = Callable[[list[str], str], tuple[int, int] | None]
"""(log lines, subtest) -> the [start, end) line range about the subtest, or None."""


def _tap_slice(lines: list[str], subtest: str) -> tuple[int, int] | None:
    """The subtest's test point with the diagnostics after it, and a nested TAP 14 block (and
    its `# Subtest:` header) right before it."""
    point = next(
        (
            index
            for index, line in enumerate(lines)
            if (match := _TAP_POINT.fullmatch(line)) and match["description"] == subtest
        ),
        None,
    )
    if point is None:
        return None
    start = point
    while start > 0 and (
        lines[start - 1].startswith(_TAP_INDENT)
        or _TAP_SUBTEST_HEADER.fullmatch(lines[start - 1]) is not None
    ):
        start -= 1
    end = point + 1
    while end < len(lines) and not (
        _TAP_POINT.fullmatch(lines[end])
        or _TAP_PLAN.fullmatch(lines[end])
        or _TAP_SUBTEST_HEADER.fullmatch(lines[end])
        or lines[end].startswith(_BAIL_OUT)
    ):
        end += 1
    return start, end


def _ktest_status_name(line: str) -> str | None:
    for entry in LINE_STATUSES:
        match = entry.pattern.fullmatch(line)
        if match is not None:
            return match["name"]
    return None


def _ktest_slice(lines: list[str], subtest: str) -> tuple[int, int] | None:
    """From the subtest's `TEST` line (or the previous subtest's status line) through its own
    status line: the console output in between is what the subtest printed."""
    names = [_ktest_status_name(line) for line in lines]
    end = next((index for index, name in enumerate(names) if name == subtest), None)
    if end is None:
        return None
    start = end
    while start > 0 and names[start - 1] is None:
        start -= 1
        match = _KTEST_START.fullmatch(lines[start])
        if match is not None and match["name"] == subtest:
            break
    return start, end + 1


SLICERS: tuple[tuple[str, Slicer], ...] = (("tap", _tap_slice), ("ktest", _ktest_slice))
"""Output formats whose logs can be cut per subtest, tried in this order."""


def slice_log(text: str, *, subtest: str) -> str | None:
    """The part of a batch log about `subtest`, or None when no slicer recognises it."""
    lines = text.splitlines()
    for _name, slicer in SLICERS:
        found = slicer(lines, subtest)
        if found is not None:
            start, end = found
            return "".join(line + "\n" for line in lines[start:end])
    return None
