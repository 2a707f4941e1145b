"""The `ktest` harness: Kent Overstreet's VM test runner (https://evilpiepirate.org/git/ktest.git).

How ktest works, as read in its sources (`build-test-kernel`, `lib/libktest.sh`,
`lib/parse-test.sh`, `tests/prelude.sh`, `lib/supervisor.c`, `ci/_test-git-branch.sh`):

- A test file is an executable bash script, `tests/**/*.ktest`, sourcing `tests/prelude.sh`
  and ending in `main "$@"`. Its subtests are its `test_*` functions; `<file> list-tests`
  prints their names one per line, exactly as `parse_test_deps` asks for them
  (`"$ktest_test" list-tests`). A file sources ktest's libraries, so its list depends on the
  whole ktest tree: the cache key holds a hash of every non-test file (its libraries) as well
  as the file's blob.
- `build-test-kernel run [-k <kernel source>] [-o <output dir>] <test file> [subtests...]`,
  started in the kernel tree, builds the kernel itself and boots a VM running the subtests
  given (all of them when none is): the CI's own invocation, minus its supervisor wrapper.
  So there is no build command.
- Inside the VM, `run_tests` prints one line per subtest: `========= PASSED <t> in <n>s`,
  `========= FAILED <t> in <n>s`, or `========= NOTRUN <t> in <n>s: <reason>` (`ktest_skip`).
  The supervisor injects `========= FAILED TIMEOUT <t> in <n>s` when its watchdog fires, and
  prefixes every console line with the run's elapsed seconds (`%.5lu `); lines that went
  through `/dev/kmsg` may carry the kernel's `[ sec.usec]` stamp instead.

ktest's own job runner matched `FAILED` before `FAILED TO RUN` and recorded the wrong verdict;
here each status is one anchored regular expression over the whole line, in `LINE_STATUSES`,
and a line no expression matches is console noise. A subtest with no line at all was never
reached (the VM died or the batch ended first): that is an infrastructure `error`, re-run in a
fresh batch, never a failure of the code under test.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from reconciler.adapters.git import TreeView
from reconciler.adapters.harness.base import (
    BatchContext,
    SubtestOutcome,
    outcomes_for_expected,
)
from reconciler.adapters.harness.enumeration_cache import EnumerationCache
from reconciler.adapters.harness.listing import (
    LazyCheckout,
    cached_list,
    enumerate_listed,
    run_list_command,
)
from reconciler.model.desired import EnumeratedTest
from reconciler.model.results import Status
from reconciler.model.specs import Harness, TestGroup

TEST_SUFFIX = ".ktest"
RUNNER = "build-test-kernel"
"""ktest's entry point, at the top of its checkout."""
LIST_ARGUMENT = "list-tests"
NOT_REACHED = "not reached: VM died or batch ended"

# The supervisor's elapsed-seconds stamp, or the kernel's printk stamp, may precede a line.
_PREFIX = r"(?:\d{5,} )?(?:\[\s*\d+\.\d+\] ?)?========= "
_NAME = r"(?P<name>\S+)"
_SECONDS = r" in (?P<seconds>\d+)s"


@dataclass(frozen=True)
class LineStatus:
    status: Status
    pattern: re.Pattern[str]


LINE_STATUSES: tuple[LineStatus, ...] = (
    # `FAILED TIMEOUT x in 5s` cannot match the plain FAILED entry: that one wants ` in ` right
    # after a single-token name. Listed first anyway, so the order never has to be argued.
    LineStatus(Status.TIMEOUT, re.compile(_PREFIX + "FAILED TIMEOUT " + _NAME + _SECONDS)),
    LineStatus(Status.PASS, re.compile(_PREFIX + "PASSED " + _NAME + _SECONDS)),
    LineStatus(Status.FAIL, re.compile(_PREFIX + "FAILED " + _NAME + _SECONDS)),
    # The reason is what ktest_skip wrote to a file; the supervisor only checks the NOTRUN
    # prefix, so a line without one is accepted too (its reason is then unknown).
    LineStatus(
        Status.SKIP,
        re.compile(_PREFIX + "NOTRUN " + _NAME + _SECONDS + r"(?::\s*(?P<reason>.*))?"),
    ),
)
"""Every status line ktest prints, each matched against the whole line (`fullmatch`)."""


def parse_ktest_line(line: str) -> SubtestOutcome | None:
    """The outcome a console line reports, or None for any other line."""
    text = line.rstrip("\r\n").rstrip()
    for entry in LINE_STATUSES:
        match = entry.pattern.fullmatch(text)
        if match is None:
            continue
        reason = match.groupdict().get("reason")
        message = (reason.strip() or None) if reason is not None else None
        if entry.status is Status.TIMEOUT:
            message = f"timed out after {match['seconds']} s"
        return SubtestOutcome(match["name"], entry.status, float(match["seconds"]), message)
    return None


def parse_ktest_output(output: str) -> list[SubtestOutcome]:
    """Every status line of `output`, in order."""
    return [
        outcome for line in output.splitlines() if (outcome := parse_ktest_line(line)) is not None
    ]


class KtestHarness:
    """Test files are `.ktest` scripts in the ktest checkout; subtests their `test_*` functions."""

    setup_seconds: float = 3600.0
    """`build-test-kernel` builds the kernel inside the batch, then boots it."""

    def __init__(self, harness: Harness, *, cache: EnumerationCache) -> None:
        self.harness = harness
        self._cache = cache

    def enumerate(self, *, group: TestGroup, tree: TreeView) -> tuple[EnumeratedTest, ...]:
        files = tree.files()
        candidates = [path for path in files if path.endswith(TEST_SUFFIX)]
        # Test files source ktest's libraries (prelude.sh, lib/*.sh, per-suite *-libs.sh), so
        # a list depends on every file that is not itself a test file: a library change lists
        # everything again, a changed test file only itself.
        revision = library_revision(files)

        def list_subtests(test: str, checkout: LazyCheckout) -> tuple[str, ...]:
            return cached_list(
                cache=self._cache,
                revision=revision,
                list_command=LIST_ARGUMENT,
                test=test,
                blob=files[test],
                run=lambda: run_list_command(
                    command=f"{shlex.quote('./' + test)} {LIST_ARGUMENT}",
                    cwd=checkout.path(),
                    group=group,
                    test=test,
                ),
            )

        return enumerate_listed(
            group=group, tree=tree, candidates=candidates, list_subtests=list_subtests
        )

    def build_command(self) -> str | None:
        return None  # build-test-kernel builds the kernel inside its run

    def batch_command(self, context: BatchContext) -> str:
        tests_dir = PurePosixPath(context.tests_dir)
        arguments = [
            str(tests_dir / RUNNER),
            "run",
            "-k",
            context.source_dir,
            "-o",
            context.output_dir,
            str(tests_dir / context.test),
            *context.subtests,
        ]
        command = " ".join(shlex.quote(argument) for argument in arguments)
        return f"cd {shlex.quote(context.source_dir)} && {command}"

    def result_files(self, context: BatchContext) -> tuple[str, ...]:
        return ()  # every verdict is on the console

    def reported(self, *, output: str) -> list[SubtestOutcome]:
        return parse_ktest_output(output)

    def parse_results(
        self, *, output: str, files: Mapping[str, bytes], expected: Sequence[str]
    ) -> list[SubtestOutcome]:
        return outcomes_for_expected(
            reported=parse_ktest_output(output), expected=expected, missing_message=NOT_REACHED
        )


def library_revision(files: Mapping[str, str]) -> str:
    """One hash over every file of the ktest tree except the test files themselves."""
    digest = hashlib.sha256()
    for path in sorted(files):
        if not path.endswith(TEST_SUFFIX):
            digest.update(f"{path}\0{files[path]}\n".encode())
    return digest.hexdigest()
