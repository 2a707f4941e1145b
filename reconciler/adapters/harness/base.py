"""The seam between the reconciler and a test suite: what every harness adapter offers.

An adapter answers four questions for the reconciler: which subtests exist in a tree
(`enumerate`), what shell command a worker runs for a batch of them (`batch_command`), which
files that command leaves to bring back (`result_files`), and what its output and files say
about each subtest, both while it streams (`reported`) and at the end (`parse_results`).
`reported` is given the complete lines seen so far. Git is reached only through the small
`TreeView` protocol, so adapters never depend on how trees are read (GitPython, a worker's
checkout, or a 30-line twin in tests); the protocol lives with the git adapter.

Two rules from the design live here because every adapter needs them:
- absent is never passed: an expected subtest the output does not report is an `error`
  (`outcomes_for_expected`), so a crashed harness is retried instead of recorded as green;
- test paths are matched by globs whose `*` stays inside one directory, as users read them,
  unlike `fnmatch` whose `*` crosses `/` (`glob_regex`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.adapters.git import TreeView
from reconciler.model.desired import EnumeratedTest
from reconciler.model.results import Status
from reconciler.model.specs import TestGroup

NOT_REPORTED = "not reported"


@dataclass(frozen=True)
class SubtestOutcome:
    """What one run said about one subtest."""

    subtest: str
    status: Status
    duration: float | None
    """Seconds, when the harness reported it."""
    message: str | None
    """Skip reason, failure summary, or why the outcome is an error."""


@dataclass(frozen=True)
class BatchContext:
    """Where a batch runs on its worker, for a harness building its command and file list.

    Paths are absolute paths on the worker host; the runner prepares them before the run.
    """

    test: str
    subtests: Sequence[str]
    runtime: Mapping[str, Any]
    """The profile's runtime inputs (`fstype`, `section`, `mem`, `cpus`, `env`, ...)."""
    source_dir: str
    """The built source checkout (the kernel tree, or the command harness's project)."""
    tests_dir: str
    """The harness checkout; the same as `source_dir` when the tests live in the source."""
    output_dir: str
    """An empty directory for this batch's result files."""
    timeout: int
    """Seconds per subtest."""
    kernel_image: str | None = None
    """The built kernel's boot image (`bzImage` on x86), for harnesses that boot it in a VM:
    set when the build's recipe is `kbuild`."""


class HarnessAdapter(Protocol):
    setup_seconds: float
    """Seconds a batch may spend before its first subtest starts (booting a VM, or ktest's
    build), added to the batch's time limit on top of its subtests' timeouts."""

    def enumerate(self, *, group: TestGroup, tree: TreeView) -> tuple[EnumeratedTest, ...]:
        """Subtests of every test file of `group` in `tree`, sorted by test file."""

    def build_command(self) -> str | None:
        """Shell command run in the source checkout before tests, or None when the harness
        builds inside its run (ktest)."""

    def batch_command(self, context: BatchContext) -> str:
        """Shell command running the batch; every substituted argument is shlex-quoted."""

    def result_files(self, context: BatchContext) -> tuple[str, ...]:
        """Absolute paths on the worker to bring back after the run (fstests' result.xml)."""

    def reported(self, *, output: str) -> list[SubtestOutcome]:
        """Outcomes the output has reported so far, while the batch still runs: lets the
        runner store finished subtests before the batch ends. Never guesses missing ones."""

    def parse_results(
        self, *, output: str, files: Mapping[str, bytes], expected: Sequence[str]
    ) -> list[SubtestOutcome]:
        """Final outcomes: one per expected subtest (absent is never passed), then extras.
        `files` maps each path of `result_files` that existed to its bytes."""


def outcomes_for_expected(
    *,
    reported: Sequence[SubtestOutcome],
    expected: Sequence[str],
    missing_message: str = NOT_REPORTED,
    missing_status: Status = Status.ERROR,
) -> list[SubtestOutcome]:
    """Expected subtests in order (unreported ones as `error`), then extras in output order.

    Extras are kept: a subtest the enumeration did not know about still ran and its verdict is
    worth recording. When a name is reported twice the first report stands, as the first verdict
    does in the store.
    """
    by_name: dict[str, SubtestOutcome] = {}
    for outcome in reported:
        by_name.setdefault(outcome.subtest, outcome)
    outcomes = [
        by_name.get(name, SubtestOutcome(name, missing_status, None, missing_message))
        for name in dict.fromkeys(expected)
    ]
    wanted = set(expected)
    outcomes.extend(outcome for name, outcome in by_name.items() if name not in wanted)
    return outcomes


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: `*` and `?` stay within one directory, `**` crosses directories.

    `a/**/b` matches `a/b` as well as `a/x/y/b`, as in git and most shells with globstar.
    `[...]` classes are supported, with `!` or `^` negating; they never match `/`.
    """
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            parts.append("(?:[^/]*/)*")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif char == "*":
            parts.append("[^/]*")
            index += 1
        elif char == "?":
            parts.append("[^/]")
            index += 1
        elif char == "[" and (end := _class_end(pattern, index)) is not None:
            body = pattern[index + 1 : end]
            negate = body[:1] in {"!", "^"}
            body = body[1:] if negate else body
            escaped = body.replace("\\", "\\\\").replace("]", "\\]")
            parts.append(f"[^/{escaped}]" if negate else f"(?!/)[{escaped}]")
            index = end + 1
        else:
            parts.append(re.escape(char))
            index += 1
    return re.compile("".join(parts) + r"\Z")


def _class_end(pattern: str, start: int) -> int | None:
    # A `]` right after `[` (or `[!`) is a literal member, as in fnmatch; an unclosed `[` is a
    # literal bracket rather than an error, again as in fnmatch.
    index = start + 1
    if index < len(pattern) and pattern[index] in "!^":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    end = pattern.find("]", index)
    return end if end != -1 else None


def glob_matches(pattern: str, path: str) -> bool:
    return glob_regex(pattern).match(path) is not None


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Replace `{name}` placeholders by already-quoted values.

    `str.format` is not used because shell commands are full of braces (`${VAR}`, `{a,b}`)
    that must pass through untouched.
    """
    if not values:
        return template
    # One pass, so a substituted value that itself contains `{test}` is never substituted again.
    placeholders = re.compile("|".join(re.escape("{" + name + "}") for name in values))
    return placeholders.sub(lambda match: values[match.group(0)[1:-1]], template)
