"""The `fstests` harness (xfstests): filesystem regression tests, one subtest per test.

Enumeration reads the fstests checkout itself rather than running anything: test files are
`tests/<dir>/<NNN>`, and each declares its groups on its `_begin_fstest auto quick ...` line,
which is what a TestGroup's `select` (`[auto]`) is matched against. A test is its own single
subtest (`generic/001`), because fstests reports per test and a test is what an expunge list
names. Tests outside `generic/` and `shared/` only apply to one filesystem, so they carry a
`runtime_match` on `fstype` and only profiles of that filesystem run them.

Groups depend on the test file's content alone, so they are cached by its blob hash: an
unchanged fstests checkout is never exported again to re-read them.

A batch runs `./check -R xunit` with `RESULT_BASE` in the batch's output directory; what it
leaves there, and how it is read, is described in `fstests_results`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from reconciler.adapters.git import TreeView
from reconciler.adapters.harness.base import (
    BatchContext,
    SubtestOutcome,
    glob_regex,
    outcomes_for_expected,
)
from reconciler.adapters.harness.enumeration_cache import CachedListing, EnumerationCache
from reconciler.adapters.harness.fstests_results import (
    CHECK_LOG_FAILURE,
    check_log_outcomes,
    last_run,
    parse_check_log,
    parse_check_time,
    parse_console,
    parse_result_xml,
)
from reconciler.adapters.harness.listing import GLOB_HINT, LazyCheckout, cached_list
from reconciler.model.desired import EnumeratedTest
from reconciler.model.errors import HarnessError
from reconciler.model.results import Status
from reconciler.model.specs import Harness, TestGroup

_TEST_FILE = re.compile(r"tests/(?P<name>[^/]+/\d+)")
_BEGIN_FSTEST = re.compile(r"\s*_begin_fstest\b(?P<groups>.*)")
GENERAL_DIRECTORIES = frozenset({"generic", "shared"})
"""Test directories every filesystem runs; any other directory is named after its fstype."""
_GROUPS_KEY = "fstests:_begin_fstest"
"""Stands for the list command in the groups' cache key: nothing runs, the file is read."""
_ALL = frozenset({"*", "**"})

RESULT_XML = "result.xml"
CHECK_LOG = "check.log"
CHECK_TIME = "check.time"
_OUT_BAD = ".out.bad"

# Runtime inputs fstests reads from its environment.
_RUNTIME_ENVIRONMENT = {
    "fstype": "FSTYP",
    "mkfs_options": "MKFS_OPTIONS",
    "mount_options": "MOUNT_OPTIONS",
}


class FstestsHarness:
    """fstests' tests selected by name globs, `_begin_fstest` groups and expunge lists."""

    setup_seconds: float = 0.0

    def __init__(self, harness: Harness, *, cache: EnumerationCache) -> None:
        self.harness = harness
        self._cache = cache

    def enumerate(self, *, group: TestGroup, tree: TreeView) -> tuple[EnumeratedTest, ...]:
        files = tree.files()
        paths = {
            match["name"]: path
            for path in files
            if (match := _TEST_FILE.fullmatch(path)) is not None
        }
        names = _select_names(group=group, names=sorted(paths))
        expunged = _read_expunges(group)
        excluded = [glob_regex(entry.partition(":")[0]) for entry in group.exclude]
        names = [
            name
            for name in names
            if name not in expunged and not any(glob.match(name) for glob in excluded)
        ]
        if group.select:
            wanted = set(group.select)
            with contextlib.ExitStack() as stack:
                checkout = LazyCheckout(tree, stack)
                names = [
                    name
                    for name in names
                    if wanted.intersection(
                        self._groups_of(
                            path=paths[name], blob=files[paths[name]], checkout=checkout
                        )
                    )
                ]
        return tuple(
            EnumeratedTest(name, (name,), runtime_match=_runtime_match(name)) for name in names
        )

    def build_command(self) -> str | None:
        return self.harness.build

    def batch_command(self, context: BatchContext) -> str:
        assignments = [f"RESULT_BASE={shlex.quote(context.output_dir)}"]
        for key, variable in _RUNTIME_ENVIRONMENT.items():
            value = context.runtime.get(key)
            if value:
                assignments.append(f"{variable}={shlex.quote(str(value))}")
        section = _section(context)
        arguments = ["./check", *(["-s", section] if section else []), "-R", "xunit"]
        arguments.extend(context.subtests)
        command = " ".join(shlex.quote(argument) for argument in arguments)
        return f"cd {shlex.quote(context.tests_dir)} && {' '.join(assignments)} {command}"

    def result_files(self, context: BatchContext) -> tuple[str, ...]:
        section = _section(context)
        report_dir = os.path.join(context.output_dir, section) if section else context.output_dir
        per_test = [os.path.join(report_dir, test + _OUT_BAD) for test in context.subtests]
        return (
            os.path.join(report_dir, RESULT_XML),
            os.path.join(context.output_dir, CHECK_LOG),
            os.path.join(context.output_dir, CHECK_TIME),
            *per_test,
        )

    def reported(self, *, output: str) -> list[SubtestOutcome]:
        return parse_console(output)

    def parse_results(
        self, *, output: str, files: Mapping[str, bytes], expected: Sequence[str]
    ) -> list[SubtestOutcome]:
        found = _ResultFiles(files)
        durations = parse_check_time(found.text(CHECK_TIME) or "")
        log = found.text(CHECK_LOG)
        run = last_run(parse_check_log(log)) if log is not None else None
        xml = found.by_name.get(RESULT_XML)
        if xml is not None:
            reported = [
                cross_checked(outcome, durations=durations, failures=run.failures if run else [])
                for outcome in parse_result_xml(xml)
            ]
        elif run is not None:
            reported = check_log_outcomes(run, durations=durations, out_bad=found.out_bad)
        else:
            # Neither file: what the console said is all there is (a run that died early).
            reported = parse_console(output)
        return outcomes_for_expected(reported=reported, expected=expected)

    def _groups_of(self, *, path: str, blob: str, checkout: LazyCheckout) -> tuple[str, ...]:
        return cached_list(
            cache=self._cache,
            revision="",  # the groups are a function of the file's content alone
            list_command=_GROUPS_KEY,
            test=path,
            blob=blob,
            run=lambda: CachedListing(_begin_fstest_groups(checkout.path() / path)),
        ).subtests


class _ResultFiles:
    """The files a batch brought back, by what they are."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self.by_name: dict[str, bytes] = {}
        self.out_bad: dict[str, str] = {}
        for path, data in files.items():
            name = os.path.basename(path)
            if name.endswith(_OUT_BAD):
                test = f"{os.path.basename(os.path.dirname(path))}/{name[: -len(_OUT_BAD)]}"
                self.out_bad[test] = data.decode("utf-8", errors="replace")
            else:
                self.by_name[name] = data

    def text(self, name: str) -> str | None:
        data = self.by_name.get(name)
        return data.decode("utf-8", errors="replace") if data is not None else None


def cross_checked(
    outcome: SubtestOutcome, *, durations: Mapping[str, float], failures: Collection[str]
) -> SubtestOutcome:
    """`outcome` from result.xml, corrected by check.log and check.time: a pass never hides a
    failure check.log records, and a missing duration comes from check.time."""
    if outcome.status is not Status.PASS:
        return outcome
    if outcome.subtest in failures:
        # Two records disagree; a pass must never hide a failure, so the failure stands.
        return SubtestOutcome(
            outcome.subtest,
            Status.FAIL,
            outcome.duration,
            f"{CHECK_LOG_FAILURE}, though result.xml says it passed",
        )
    if outcome.duration is None and outcome.subtest in durations:
        return SubtestOutcome(outcome.subtest, Status.PASS, durations[outcome.subtest], None)
    return outcome


def _section(context: BatchContext) -> str | None:
    # Without a section, fstests reports into RESULT_BASE itself; `-s` with a config that has
    # no sections would run nothing, so no section means no `-s`.
    section = context.runtime.get("section")
    return str(section) if section else None


def _runtime_match(name: str) -> tuple[tuple[str, str], ...]:
    directory = name.partition("/")[0]
    return () if directory in GENERAL_DIRECTORIES else (("fstype", directory),)


def _select_names(*, group: TestGroup, names: Sequence[str]) -> list[str]:
    selected: set[str] = set()
    for pattern in group.tests:
        if pattern in _ALL:
            selected.update(names)
            continue
        regex = glob_regex(pattern)
        hits = [name for name in names if regex.match(name)]
        if not hits:
            raise HarnessError(
                f"test pattern {pattern!r} of test group {group.name!r} matches no fstests test",
                where=f"test group {group.name!r}",
                hint="fstests tests are named like `generic/001` or `xfs/*` (without `tests/`);"
                f" {GLOB_HINT}",
            )
        selected.update(hits)
    return sorted(selected)


def _read_expunges(group: TestGroup) -> set[str]:
    expunged: set[str] = set()
    for path in group.expunges:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError as exc:
            raise HarnessError(
                f"expunge list {path} of test group {group.name!r} does not exist",
                where=f"test group {group.name!r}",
                hint="expunge paths are relative to the spec file that names them",
            ) from exc
        except OSError as exc:
            raise HarnessError(
                f"cannot read expunge list {path} of test group {group.name!r}: {exc}",
                where=f"test group {group.name!r}",
            ) from exc
        for line in text.splitlines():
            # `generic/001 # why` and bare names alike; the first word is the test.
            words = line.partition("#")[0].split()
            if words:
                expunged.add(words[0])
    return expunged


def _begin_fstest_groups(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise HarnessError(f"cannot read fstests test {path.name}: {exc}") from exc
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _BEGIN_FSTEST.match(line)
        if match is None:
            continue
        declaration = match["groups"]
        # A long group list may be continued with a backslash.
        while declaration.rstrip().endswith("\\") and index + 1 < len(lines):
            index += 1
            declaration = declaration.rstrip()[:-1] + " " + lines[index]
        return tuple(dict.fromkeys(declaration.partition("#")[0].split()))
    return ()
