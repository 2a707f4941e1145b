"""Enumeration rules shared by harnesses whose subtests come from running a list command.

The `command`, `ktest` and `kselftest` harnesses all enumerate the same way: globs select test
files, exclusions (expunges) drop files or single subtests, explicit subtest lists win over the
list command, and a list command's answer is cached by the content that decided it. Keeping the
rules in one place keeps the three harnesses agreeing on what a spec means.

A list command runs code from the repository under test, so it gets a scrubbed environment, a
session of its own (a timeout kills its children too) and a hard time limit.
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
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.adapters.git import TreeView
from reconciler.adapters.harness.base import glob_regex, substitute
from reconciler.adapters.harness.enumeration_cache import EnumerationCache, enumeration_key
from reconciler.core.identity import harness_definition_revision
from reconciler.model.desired import EnumeratedTest
from reconciler.model.errors import HarnessError, InfrastructureError
from reconciler.model.specs import Harness, TestGroup

LIST_TIMEOUT_SECONDS: float = 60

# The list command gets a minimal environment, never the reconciler's own (which may hold
# tokens, SSH agent sockets, cloud credentials).
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

GLOB_HINT = (
    "check the path against the repository: paths are relative to the harness checkout (the"
    " source tree when the harness has no url), `*` and `?` stay within one directory and `**`"
    " crosses directories"
)


class LazyCheckout:
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


SubtestLister = Callable[[str, LazyCheckout], tuple[str, ...]]
"""(test, checkout) -> the subtests a harness lists for that test."""


def enumerate_listed(
    *, group: TestGroup, tree: TreeView, candidates: Sequence[str], list_subtests: SubtestLister
) -> tuple[EnumeratedTest, ...]:
    """Tests of `group` among `candidates`, each with its explicit or listed subtests.

    `file:subtest` exclusions drop single subtests; a test whose every subtest is excluded
    has nothing to plan and is left out.
    """
    tests = select_tests(group=group, candidates=candidates)
    dropped = [_split_subtest_exclusion(entry) for entry in group.exclude if ":" in entry]
    enumerated: list[EnumeratedTest] = []
    with contextlib.ExitStack() as stack:
        checkout = LazyCheckout(tree, stack)
        for test in tests:
            explicit = group.subtests.get(test)
            if explicit is not None:
                subtests = unique_subtests(
                    explicit, what=f"subtests of {test!r} in test group {group.name!r}"
                )
            else:
                subtests = list_subtests(test, checkout)
            kept = tuple(
                subtest
                for subtest in subtests
                if not any(glob.match(test) and subtest == name for glob, name in dropped)
            )
            if kept:
                enumerated.append(EnumeratedTest(test, kept))
    return tuple(sorted(enumerated, key=lambda item: item.test))


def cached_list(
    *,
    cache: EnumerationCache,
    revision: str,
    list_command: str,
    test: str,
    blob: str,
    run: Callable[[], tuple[str, ...]],
) -> tuple[str, ...]:
    """`run()`'s answer for `test`, from the cache when everything deciding it is unchanged.

    A failed listing raises before `put`, so it is never cached: fixing it lists again.
    """
    key = enumeration_key(
        harness_revision=revision, list_command=list_command, test=test, blob=blob
    )
    cached = cache.get(key)
    if cached is not None:
        return cached
    subtests = run()
    cache.put(key, subtests)
    return subtests


def select_tests(*, group: TestGroup, candidates: Sequence[str]) -> list[str]:
    """Candidates matching any of the group's globs, minus excluded ones, sorted."""
    paths = sorted(candidates)
    matched: set[str] = set()
    for pattern in group.tests:
        regex = glob_regex(pattern)
        hits = [path for path in paths if regex.match(path)]
        if not hits:
            # A typo in a glob must not quietly test nothing.
            raise HarnessError(
                f"test pattern {pattern!r} of test group {group.name!r} matches no file",
                where=f"test group {group.name!r}",
                hint=GLOB_HINT,
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


def unique_subtests(subtests: Sequence[str], *, what: str) -> tuple[str, ...]:
    counts = Counter(subtests)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise HarnessError(
            f"{what} name {', '.join(map(repr, duplicates))} more than once",
            hint="subtest names identify results, so each must be unique within its test file",
        )
    return tuple(subtests)


def list_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _LIST_ENVIRONMENT if name in os.environ}


def run_list_command(*, command: str, cwd: Path, group: TestGroup, test: str) -> tuple[str, ...]:
    """Run `command` with sh in `cwd`; its stdout lines (minus blanks and `#` lines) are the
    subtests, each of which must be unique."""
    where = f"test group {group.name!r}"
    try:
        # A session of its own, so a timeout kills the list command's children too; otherwise
        # a grandchild holding the pipes open would hang us after the shell was killed.
        with subprocess.Popen(
            ["sh", "-c", command],
            cwd=cwd,
            env=list_environment(),
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
    return unique_subtests(subtests, what=f"the list command for {test!r} printed a subtest")


def enumerate_by_list_command(
    harness: Harness, *, cache: EnumerationCache, group: TestGroup, tree: TreeView
) -> tuple[EnumeratedTest, ...]:
    """Test files by the group's globs, subtests from the harness's `list` command (`{test}`
    substituted), cached; without a list command each file is its own one subtest.

    In-tree tests: the definition decides the list, and each file's blob hash says whether that
    file changed. A harness repo: any file in it may feed the list, so its whole tree.
    """
    files = tree.files()
    revision = tree.tree if harness.url else harness_definition_revision(harness)
    list_command = harness.list

    def list_subtests(test: str, checkout: LazyCheckout) -> tuple[str, ...]:
        if not list_command:
            return (test,)
        return cached_list(
            cache=cache,
            revision=revision,
            list_command=list_command,
            test=test,
            blob=files[test],
            run=lambda: run_list_command(
                command=substitute(list_command, {"test": shlex.quote(test)}),
                cwd=checkout.path(),
                group=group,
                test=test,
            ),
        )

    return enumerate_listed(
        group=group, tree=tree, candidates=list(files), list_subtests=list_subtests
    )
