"""Text output of the query commands, aligned like ci-status's, and safe for a terminal.

Logs, commit subjects and test names are written by others (a test prints what it likes; a
commit subject comes from anyone who can push): printed raw, an escape sequence in them could
rewrite the terminal's title, hide lines, or worse. `terminal_safe` (app.text_safety) shows
every control character other than newline and tab as a visible escape when output goes to a
terminal.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.app.query_model import (
    Branches,
    BranchLog,
    CommitLogs,
    CommitResults,
    Counts,
    FailureListing,
    TestRow,
    short,
)
from reconciler.core.status import describe_counts

# (header, width, counts -> cell): timeout counts as a failure in the FAIL column.
_COUNT_COLUMNS: tuple[tuple[str, int, Callable[[Counts], int]], ...] = (
    ("PASS", 6, lambda c: c["pass"]),
    ("FAIL", 6, lambda c: c["fail"] + c["timeout"]),
    ("ERROR", 6, lambda c: c["error"]),
    ("PENDING", 8, lambda c: c["pending"]),
    ("SKIP", 6, lambda c: c["skip"]),
)
_DURATION_WIDTH = 10
_COMMIT_WIDTH = 12


def format_duration(seconds: float | None) -> str:
    """`-` when unknown; seconds to a tenth below a minute, then `4m05s`, then `2h03m`."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _count_header() -> str:
    cells = "".join(f"{name:>{width}}" for name, width, _ in _COUNT_COLUMNS)
    return f"{cells}{'DURATION':>{_DURATION_WIDTH}}"


def _count_cells(counts: Counts) -> str:
    cells = "".join(f"{cell(counts):>{width}}" for _, width, cell in _COUNT_COLUMNS)
    return f"{cells}{format_duration(counts.duration):>{_DURATION_WIDTH}}"


def _blank_cells(word: str) -> str:
    width = sum(width for _, width, _ in _COUNT_COLUMNS) + _DURATION_WIDTH
    return f"  {word:<{width - 2}}"


def _lines(lines: list[str]) -> str:
    return "".join(line.rstrip() + "\n" for line in lines)


def render_branches(branches: Branches) -> str:
    name_width = max([len("NAME"), *(len(row.name) for row in branches.branches)])
    lines = [f"{'NAME':<{name_width}}  {'KIND':<9} {'COMMIT':<12}{_count_header()}  SUBJECT"]
    for row in branches.branches:
        if row.commit is None or row.counts is None:
            state = "suspended" if row.suspended else "not resolved"
            lines.append(f"{row.name:<{name_width}}  {row.kind:<9} {'-':<12}{_blank_cells(state)}")
            continue
        cells = _count_cells(row.counts) if row.counts.tested else _blank_cells("untested")
        lines.append(
            f"{row.name:<{name_width}}  {row.kind:<9} {short(row.commit):<12}{cells}  {row.subject}"
        )
    return _lines(lines)


def render_log(log: BranchLog) -> str:
    if log.suspended:
        return f"{log.branch}: suspended (suspend: true); nothing is evaluated\n"
    lines = [f"{'COMMIT':<{_COMMIT_WIDTH}}{_count_header()}  SUBJECT"]
    for entry in log.commits:
        counts = entry.counts
        cells = _count_cells(counts) if counts.tested else _blank_cells("untested")
        lines.append(f"{short(entry.commit):<{_COMMIT_WIDTH}}{cells}  {entry.subject}")
    return _lines(lines)


def _test_table(rows: tuple[TestRow, ...]) -> list[str]:
    name_width = max([len("TEST"), *(len(row.name) for row in rows)])
    profile_width = max([len("PROFILE"), *(len(row.profile) for row in rows)])
    lines = [f"{'TEST':<{name_width}}  {'PROFILE':<{profile_width}}  {'STATUS':<8}{'DURATION':>9}"]
    lines += [
        f"{row.name:<{name_width}}  {row.profile:<{profile_width}}  {row.status:<8}"
        f"{format_duration(row.duration):>9}"
        for row in rows
    ]
    return lines


def describe_totals(counts: Counts) -> str:
    """The footer: `20 results: 18 pass, 2 fail; duration 3.0s`."""
    summary = describe_counts({**counts.by_status, "blocked": 0})
    return f"{summary}; duration {format_duration(counts.duration)}"


def render_commit(results: CommitResults) -> str:
    lines = [f"commit {results.commit}", f"    {results.subject}"]
    if results.origins:
        lines.append(f"in: {', '.join(results.origins)}")
    lines.append("")
    if results.tests:
        lines += [*_test_table(results.tests), ""]
    lines.append(describe_totals(results.counts))
    return _lines(lines)


def render_failures(listing: FailureListing) -> str:
    title = f"{short(listing.commit)} {listing.subject}"
    if not listing.failures:
        return f"{title}: no failures\n"
    lines = [f"{title}: {len(listing.failures)} failed", "", *_test_table(listing.failures)]
    lines += [
        "",
        f"show a log: reconciler logs {short(listing.commit)} TEST [--profile P] [--full]",
    ]
    return _lines(lines)


def render_logs(logs: CommitLogs) -> tuple[str, str]:
    """(stdout, stderr): the logs, headed when there are several; notes go to stderr."""
    out: list[str] = []
    notes: list[str] = []
    for log in logs.logs:
        row = log.row
        where = f"{row.name} [{row.profile}] attempt {log.attempt}, {row.status}"
        if len(logs.logs) > 1:
            out.append(f"==> {where} <==\n")
        if log.note:
            notes.append(f"note: {where}: {log.note}\n")
        out.append(log.text if not log.text or log.text.endswith("\n") else log.text + "\n")
    return "".join(out), "".join(notes)
