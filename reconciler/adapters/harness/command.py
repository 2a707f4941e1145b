"""The `command` harness: any test suite driven by three shell commands in its spec.

`list` prints a test file's subtests, `run` runs a batch of them and reports TAP or JUnit, and
`build` prepares the checkout. This is the harness for suites the reconciler has no adapter for
yet, and the simplest one to reason about; the enumeration rules it follows (globs, expunges,
explicit subtests, a content-hash cache) live in `listing` and are shared with ktest and
kselftest.

Every value substituted into a command is shell-quoted: test paths and subtest names come from
repositories we test, not from people we trust.

Where results come from: with `output: tap` (or `ktest`, its `========= PASSED name` lines) the
run's stdout, read as it streams. With `output: junit` either the run's stdout or, when the
command writes one, the file `{output_dir}/junit.xml`; the file wins when it exists, so a command
may print progress freely.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Protocol

from reconciler.adapters.git import TreeView
from reconciler.adapters.harness.base import (
    BatchContext,
    SubtestOutcome,
    outcomes_for_expected,
    substitute,
)
from reconciler.adapters.harness.enumeration_cache import EnumerationCache
from reconciler.adapters.harness.junit import parse_junit
from reconciler.adapters.harness.ktest import NOT_REACHED, parse_ktest_output
from reconciler.adapters.harness.listing import enumerate_by_list_command
from reconciler.adapters.harness.tap import parse_tap
from reconciler.model.desired import EnumeratedTest
from reconciler.model.errors import HarnessError
from reconciler.model.specs import Harness, OutputFormat, TestGroup

JUNIT_FILE = "junit.xml"
"""Where a `junit` run may write its report, inside the batch's output directory."""


class _OutputParser(Protocol):
    def __call__(self, output: str, *, expected: Sequence[str]) -> list[SubtestOutcome]: ...


def parse_ktest_console(output: str, *, expected: Sequence[str]) -> list[SubtestOutcome]:
    """ktest's `========= PASSED|FAILED|NOTRUN name in Ns` lines; absent subtests are `error`."""
    return outcomes_for_expected(
        reported=parse_ktest_output(output), expected=expected, missing_message=NOT_REACHED
    )


_OUTPUT_PARSERS: dict[OutputFormat, _OutputParser] = {
    OutputFormat.TAP: parse_tap,
    OutputFormat.JUNIT: parse_junit,
    OutputFormat.KTEST: parse_ktest_console,
}


class CommandHarness:
    """A harness whose list, run and build steps are shell commands from its spec."""

    setup_seconds: float = 0.0

    def __init__(self, harness: Harness, *, cache: EnumerationCache) -> None:
        if not harness.run:
            raise HarnessError(
                "a command harness needs a `run` command", where=f"harness {harness.name!r}"
            )
        self.harness = harness
        self._run = harness.run
        self._cache = cache

    def enumerate(self, *, group: TestGroup, tree: TreeView) -> tuple[EnumeratedTest, ...]:
        return enumerate_by_list_command(self.harness, cache=self._cache, group=group, tree=tree)

    def build_command(self) -> str | None:
        return self.harness.build

    def batch_command(self, context: BatchContext) -> str:
        command = substitute(
            self._run,
            {
                "test": shlex.quote(context.test),
                "subtests": " ".join(shlex.quote(subtest) for subtest in context.subtests),
                "output_dir": shlex.quote(context.output_dir),
            },
        )
        # The test path is relative to the harness checkout, so that is where the run starts.
        return f"cd {shlex.quote(context.tests_dir)} && {command}"

    def result_files(self, context: BatchContext) -> tuple[str, ...]:
        if self.harness.output is OutputFormat.JUNIT:
            return (os.path.join(context.output_dir, JUNIT_FILE),)
        return ()

    def reported(self, *, output: str) -> list[SubtestOutcome]:
        if self.harness.output is OutputFormat.JUNIT:
            return []  # an XML report means nothing until it is complete
        # Nothing is expected here, so nothing missing is invented: only test points seen.
        return _OUTPUT_PARSERS[self.harness.output](output, expected=())

    def parse_results(
        self, *, output: str, files: Mapping[str, bytes], expected: Sequence[str]
    ) -> list[SubtestOutcome]:
        report = output
        if self.harness.output is OutputFormat.JUNIT:
            written = [data for path, data in files.items() if os.path.basename(path) == JUNIT_FILE]
            if written:
                report = _decode(written[0], what=JUNIT_FILE)
        return _OUTPUT_PARSERS[self.harness.output](report, expected=expected)


def _decode(data: bytes, *, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{what} is not UTF-8: {exc}") from exc
