"""Reading an existing fstests results directory into imported outcomes.

The files are the ones a batch brings back, so they are read by the harness adapter's own
parsers (`fstests_results`): `result.xml` when present, cross-checked against `check.log` (a
test it lists under Failures is never passed), else the newest run of `check.log`; durations
from the XML, else `check.time`. check.log is appended to by every run, so only its last run
(of the chosen section) is imported, and its `Failed N of M tests` line must agree with its
lists, or the file is refused as damaged. Per-test `.out.bad`, `.full` and `.dmesg` files
become the attempt's log.

Works on a mapping of relative paths to bytes, so a directory and a member of a kdevops
archive are read the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from reconciler.adapters.harness.fstests import cross_checked
from reconciler.adapters.harness.fstests_results import (
    CheckLogRun,
    check_log_outcomes,
    parse_check_log,
    parse_check_time,
    parse_result_xml,
)
from reconciler.app.importers.records import ImportedOutcome
from reconciler.model.errors import UserError

RESULT_XML = "result.xml"
CHECK_LOG = "check.log"
CHECK_TIME = "check.time"
LOG_SUFFIXES = (".out.bad", ".full", ".dmesg")
"""Per-test files kept as the attempt's log, in this order."""
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Larger files are refused rather than read into memory."""

_FAILED = re.compile(r"Failed (?P<failed>\d+) of (?P<ran>\d+) tests")
_PASSED = re.compile(r"Passed all (?P<ran>\d+) tests")
_TEST_FILE = re.compile(r"[A-Za-z0-9_-]+/\d+(?:\.out\.bad|\.full|\.dmesg)")


def is_fstests_file(relative: str) -> bool:
    """A file the importer reads: the run's reports, or a test's output."""
    name = relative.rpartition("/")[2]
    return name in (RESULT_XML, CHECK_LOG, CHECK_TIME) or bool(
        _TEST_FILE.fullmatch("/".join(relative.split("/")[-2:]))
    )


def read_results_dir(root: Path) -> dict[str, bytes]:
    """The fstests files under `root` (relative POSIX path -> bytes), symlinks not followed."""
    if not root.is_dir():
        raise UserError(f"{root} is not a directory", hint="give the fstests results directory")
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if not is_fstests_file(relative) or path.is_symlink() or not path.is_file():
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"{path} is larger than {MAX_FILE_BYTES} bytes", hint="trim it")
        try:
            files[relative] = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return files


def fstests_outcomes(
    files: Mapping[str, bytes], *, section: str | None, where: str
) -> list[ImportedOutcome]:
    """Outcomes of the newest run the files record; `where` names them in errors."""
    report = f"{section}/" if section and any(p.startswith(f"{section}/") for p in files) else ""
    xml = files.get(report + RESULT_XML)
    log = files.get(CHECK_LOG, files.get(report + CHECK_LOG))
    timing = files.get(CHECK_TIME, files.get(report + CHECK_TIME))
    run = _chosen_run(_text(log), section=section, where=where) if log is not None else None
    durations = parse_check_time(_text(timing)) if timing is not None else {}
    out_bad = {
        path[len(report) : -len(".out.bad")]: _text(data)
        for path, data in files.items()
        if path.startswith(report) and path.endswith(".out.bad")
    }
    if xml is not None:
        failures = set(run.failures) if run is not None else set()
        outcomes = [
            cross_checked(outcome, durations=durations, failures=failures)
            for outcome in parse_result_xml(xml)
        ]
    elif run is not None:
        outcomes = check_log_outcomes(run, durations=durations, out_bad=out_bad)
    else:
        raise UserError(
            f"{where}: neither {RESULT_XML} nor {CHECK_LOG} found"
            + (f" (section {section})" if section else ""),
            hint="point at fstests' RESULT_BASE, the directory check writes its results into",
        )
    return [
        ImportedOutcome(
            key=outcome.subtest,
            status=outcome.status,
            duration=outcome.duration,
            message=outcome.message,
            log=_test_log(files, prefix=report, test=outcome.subtest),
        )
        for outcome in outcomes
    ]


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def _chosen_run(text: str, *, section: str | None, where: str) -> CheckLogRun | None:
    runs = parse_check_log(text)
    sections = sorted({run.section for run in runs if run.section is not None})
    if section is not None and sections:
        runs = [run for run in runs if run.section == section]
    elif len(sections) > 1:
        # The newest run may be of any section: importing it for "the" run would be a guess.
        raise UserError(
            f"{where}: {CHECK_LOG} holds runs of sections {', '.join(sections)}",
            hint="choose one with --section",
        )
    if not runs:
        return None
    run = runs[-1]
    _check_summary(run, where=where)
    return run


def _check_summary(run: CheckLogRun, *, where: str) -> None:
    """check.log's own count must agree with its lists: a cut-off log is not imported."""
    if run.summary is None:
        return
    ran = len(dict.fromkeys(run.ran))
    failed = len(dict.fromkeys(run.failures))
    if match := _FAILED.fullmatch(run.summary):
        expected = (int(match["failed"]), int(match["ran"]))
    elif match := _PASSED.fullmatch(run.summary):
        expected = (0, int(match["ran"]))
    else:  # pragma: no cover - parse_check_log keeps only lines of these two forms
        return
    if (failed, ran) != expected:
        raise UserError(
            f"{where}: {CHECK_LOG} says {run.summary!r} but lists {failed} failures among "
            f"{ran} tests run",
            hint="the log is damaged or cut off; import result.xml instead",
        )


def _test_log(files: Mapping[str, bytes], *, prefix: str, test: str) -> bytes | None:
    parts = []
    for suffix in LOG_SUFFIXES:
        data = files.get(f"{prefix}{test}{suffix}")
        if data:
            parts.append(f"==> {test}{suffix} <==\n".encode() + data.rstrip(b"\n") + b"\n")
    return b"\n".join(parts) if parts else None
