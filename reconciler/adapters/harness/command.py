"""The `command` harness: any test suite driven by three shell commands in its spec.

`list` prints a test file's subtests, `run` runs a batch of them and prints TAP or JUnit, and
`build` prepares the checkout. This is the harness for suites the reconciler has no adapter for
yet, and the simplest one to reason about, so it also carries the general enumeration rules:
globs select test files, exclusions (expunges) drop files or single subtests, explicit subtest
lists win over the list command, and list results are cached by content hash.

Every value substituted into a command is shell-quoted: test paths and subtest names come from
repositories we test, not from people we trust.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from reconciler.adapters.git import TreeView
from reconciler.adapters.harness.base import SubtestOutcome, glob_regex, substitute
from reconciler.adapters.harness.enumeration_cache import EnumerationCache, enumeration_key
from reconciler.adapters.harness.junit import parse_junit
from reconciler.adapters.harness.tap import parse_tap
from reconciler.core.identity import harness_definition_revision
from reconciler.model.desired import EnumeratedTest
from reconciler.model.errors import HarnessError, InfrastructureError
from reconciler.model.specs import Harness, OutputFormat, TestGroup

LIST_TIMEOUT_SECONDS: float = 60

# The list command runs code from the repository under test: it gets a minimal environment,
# never the reconciler's own (which may hold tokens, SSH agent sockets, cloud credentials).
_LIST_ENVIRONMENT = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
)
_STDERR_TAIL_CHARS = 1000


class _OutputParser(Protocol):
    def __call__(self, output: str, *, expected: Sequence[str]) -> list[SubtestOutcome]: ...


_OUTPUT_PARSERS: dict[OutputFormat, _OutputParser] = {
    OutputFormat.TAP: parse_tap,
    OutputFormat.JUNIT: parse_junit,
}

_GLOB_HINT = (
    "check the path against the repository: paths are relative to the harness checkout (the"
    " source tree when the harness has no url), `*` and `?` stay within one directory and `**`"
    " crosses directories"
)


class CommandHarness:
    """A harness whose list, run and build steps are shell commands from its spec."""

    def __init__(self, harness: Harness, *, cache: EnumerationCache) -> None:
        if not harness.run:
            raise HarnessError(
                "a command harness needs a `run` command", where=f"harness {harness.name!r}"
            )
        self.harness = harness
        self._run = harness.run
        self._cache = cache

    def enumerate(self, *, group: TestGroup, tree: TreeView) -> tuple[EnumeratedTest, ...]:
        files = tree.files()
        test_files = _select_test_files(group=group, files=files)
        # In-tree tests: the definition decides the list, and each file's blob hash says whether
        # that file changed. A harness repo: any file in it may feed the list, so its whole tree.
        revision = tree.tree if self.harness.url else harness_definition_revision(self.harness)
        dropped = [_split_subtest_exclusion(entry) for entry in group.exclude if ":" in entry]

        enumerated: list[EnumeratedTest] = []
        with contextlib.ExitStack() as stack:
            checkout = _LazyCheckout(tree, stack)
            for test in test_files:
                subtests = self._subtests_of(
                    group=group, test=test, blob=files[test], revision=revision, checkout=checkout
                )
                kept = tuple(
                    subtest
                    for subtest in subtests
                    if not any(glob.match(test) and subtest == name for glob, name in dropped)
                )
                # A file whose every subtest is expunged has nothing to plan.
                if kept:
                    enumerated.append(EnumeratedTest(test, kept))
        return tuple(sorted(enumerated, key=lambda item: item.test))

    def build_command(self) -> str | None:
        return self.harness.build

    def batch_command(self, *, test: str, subtests: Sequence[str]) -> str:
        return substitute(
            self._run,
            {
                "test": shlex.quote(test),
                "subtests": " ".join(shlex.quote(subtest) for subtest in subtests),
            },
        )

    def parse_output(self, *, output: str, expected: Sequence[str]) -> list[SubtestOutcome]:
        return _OUTPUT_PARSERS[self.harness.output](output, expected=expected)

    def _subtests_of(
        self,
        *,
        group: TestGroup,
        test: str,
        blob: str,
        revision: str,
        checkout: _LazyCheckout,
    ) -> tuple[str, ...]:
        explicit = group.subtests.get(test)
        if explicit is not None:
            return _unique(explicit, what=f"subtests of {test!r} in test group {group.name!r}")
        if not self.harness.list:
            return (test,)
        key = enumeration_key(
            harness_revision=revision, list_command=self.harness.list, test=test, blob=blob
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        subtests = _run_list_command(
            command=substitute(self.harness.list, {"test": shlex.quote(test)}),
            cwd=checkout.path(),
            group=group,
            test=test,
        )
        self._cache.put(key, subtests)
        return subtests


class _LazyCheckout:
    """The tree exported to a temporary directory on first use, at most once per enumerate."""

    def __init__(self, tree: TreeView, stack: contextlib.ExitStack) -> None:
        self._tree = tree
        self._stack = stack
        self._path: Path | None = None

    def path(self) -> Path:
        if self._path is None:
            directory = self._stack.enter_context(
                tempfile.TemporaryDirectory(prefix="reconciler-list-")
            )
            self._tree.export(Path(directory))
            self._path = Path(directory)
        return self._path


def _select_test_files(*, group: TestGroup, files: Mapping[str, str]) -> list[str]:
    paths = sorted(files)
    matched: set[str] = set()
    for pattern in group.tests:
        regex = glob_regex(pattern)
        hits = [path for path in paths if regex.match(path)]
        if not hits:
            # A typo in a glob must not quietly test nothing.
            raise HarnessError(
                f"test pattern {pattern!r} of test group {group.name!r} matches no file",
                where=f"test group {group.name!r}",
                hint=_GLOB_HINT,
            )
        matched.update(hits)
    for test in group.subtests:
        if test not in matched:
            raise HarnessError(
                f"subtests are listed for {test!r}, which is not one of the test files of"
                f" test group {group.name!r}",
                where=f"test group {group.name!r}",
                hint="name the file exactly as one of the `tests` patterns matches it",
            )
    excluded = [glob_regex(entry) for entry in group.exclude if ":" not in entry]
    return sorted(path for path in matched if not any(glob.match(path) for glob in excluded))


def _split_subtest_exclusion(entry: str) -> tuple[re.Pattern[str], str]:
    # `path:subtest`, where path may be a glob; the subtest name is matched exactly.
    path, _, subtest = entry.partition(":")
    return glob_regex(path), subtest


def _unique(subtests: Sequence[str], *, what: str) -> tuple[str, ...]:
    counts = Counter(subtests)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise HarnessError(
            f"{what} name {', '.join(map(repr, duplicates))} more than once",
            hint="subtest names identify results, so each must be unique within its test file",
        )
    return tuple(subtests)


def _list_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _LIST_ENVIRONMENT if name in os.environ}


def _run_list_command(*, command: str, cwd: Path, group: TestGroup, test: str) -> tuple[str, ...]:
    where = f"test group {group.name!r}"
    try:
        # A session of its own, so a timeout kills the list command's children too; otherwise
        # a grandchild holding the pipes open would hang us after the shell was killed.
        with subprocess.Popen(
            ["sh", "-c", command],
            cwd=cwd,
            env=_list_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=LIST_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired as exc:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                raise HarnessError(
                    f"the list command for {test!r} of test group {group.name!r} did not finish"
                    f" within {LIST_TIMEOUT_SECONDS} s",
                    where=where,
                    hint="a list command must only print subtest names, never run tests",
                ) from exc
    except OSError as exc:
        raise InfrastructureError(f"cannot run the list command with sh: {exc}") from exc

    if process.returncode != 0:
        tail = stderr.decode("utf-8", errors="replace").strip()[-_STDERR_TAIL_CHARS:]
        raise HarnessError(
            f"the list command for {test!r} of test group {group.name!r} exited with status"
            f" {process.returncode}: {tail or '(no stderr)'}",
            where=where,
            hint=f"run it by hand in a checkout: {command}",
        )
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(
            f"the list command for {test!r} of test group {group.name!r} printed non-UTF-8 output",
            where=where,
        ) from exc
    names = [line.strip() for line in text.splitlines()]
    # `#` lines are comments, so list commands may print TAP-style diagnostics.
    subtests = [name for name in names if name and not name.startswith("#")]
    return _unique(subtests, what=f"the list command for {test!r} printed a subtest")
