"""Enumeration rules shared by harnesses whose subtests come from running a list command.

The `command`, `ktest` and `kselftest` harnesses all enumerate the same way: globs select test
files, exclusions (expunges) drop files or single subtests, explicit subtest lists win over the
list command, and a list command's answer is cached by the content that decided it. Keeping the
rules in one place keeps the three harnesses agreeing on what a spec means.

A list command runs code from the repository under test, so it gets a scrubbed environment, a
home and temporary directory of its own (never the reconciler user's), a session of its own (a
timeout kills its children too) and a hard time limit.

A test file whose listing fails (non-zero exit, a hang, output that is not subtest names) is
*blocked*: it comes back as an `EnumeratedTest` with no subtests and the reason, the other files
are listed all the same, and nothing of the failed listing is cached. So one run names every
failing file.
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.adapters.git import TreeView
from reconciler.adapters.harness.base import glob_regex, substitute
from reconciler.adapters.harness.enumeration_cache import (
    CachedListing,
    EnumerationCache,
    enumeration_key,
)
from reconciler.core.identity import harness_definition_revision
from reconciler.model.desired import BlockReason, EnumeratedTest, ListingBlock
from reconciler.model.errors import HarnessError, InfrastructureError
from reconciler.model.specs import Harness, TestGroup

LIST_TIMEOUT_SECONDS: float = 60

# The list command gets a minimal environment, never the reconciler's own (which may hold
# tokens, SSH agent sockets, cloud credentials). HOME and TMPDIR are directories of its own.
_LIST_ENVIRONMENT = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "USER",
    "LOGNAME",
)
_STDERR_TAIL_CHARS = 1000
_QUOTED_LINES = 3


class ListingError(HarnessError):
    """One test file's listing failed: that file is blocked, the others are listed."""

    def __init__(
        self,
        message: str,
        *,
        reason: BlockReason = BlockReason.LISTING_FAILED,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, where=where, hint=hint)
        self.reason = reason

    def block(self) -> ListingBlock:
        text = f"{self.message} (hint: {self.hint})" if self.hint else self.message
        # One line: plans, status files and PR comments show it in a table cell.
        return ListingBlock(
            self.reason, " / ".join(filter(None, map(str.strip, text.splitlines())))
        )


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


SubtestLister = Callable[[str, LazyCheckout], EnumeratedTest]
"""(test, checkout) -> the subtests a harness lists for that test (raises `ListingError`, or
returns a blocked test, when it cannot)."""


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
                listed = EnumeratedTest(
                    test,
                    unique_subtests(
                        explicit, what=f"subtests of {test!r} in test group {group.name!r}"
                    ),
                )
            else:
                try:
                    listed = list_subtests(test, checkout)
                except ListingError as error:
                    enumerated.append(EnumeratedTest(test, (), blocked=error.block()))
                    continue
            if listed.blocked is not None:
                enumerated.append(listed)
                continue
            kept = tuple(
                subtest
                for subtest in listed.subtests
                if not any(glob.match(test) and subtest == name for glob, name in dropped)
            )
            if kept:
                enumerated.append(
                    EnumeratedTest(test, kept, listed.runtime_match, listed.dependencies)
                )
    return tuple(sorted(enumerated, key=lambda item: item.test))


def cached_list(
    *,
    cache: EnumerationCache,
    revision: str,
    list_command: str,
    test: str,
    blob: str,
    run: Callable[[], CachedListing],
    environment: Mapping[str, Any] | None = None,
    cacheable: Callable[[CachedListing], bool] = lambda listing: True,
) -> CachedListing:
    """`run()`'s answer for `test`, from the cache when everything deciding it is unchanged.

    A failed listing raises before `put`, so it is never cached: fixing it lists again. Neither
    is one `cacheable` refuses (a listing made with a stand-in for a missing dependency).
    """
    key = enumeration_key(
        harness_revision=revision,
        list_command=list_command,
        test=test,
        blob=blob,
        environment=environment,
    )
    cached = cache.get(key)
    if cached is not None:
        return cached
    listing = run()
    if cacheable(listing):
        cache.put(key, listing)
    return listing


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
    """The variables a list command inherits from the reconciler (none that hold secrets)."""
    return {name: os.environ[name] for name in _LIST_ENVIRONMENT if name in os.environ}


NameCheck = Callable[[Sequence[str]], list[str]]
"""Lines of a listing -> those that are not valid subtest names for the harness."""


def run_list_command(
    *,
    command: str,
    cwd: Path,
    group: TestGroup,
    test: str,
    timeout: float = LIST_TIMEOUT_SECONDS,
    env: Mapping[str, str] | None = None,
    name_check: NameCheck | None = None,
    pass_fds: Sequence[int] = (),
    empty_hint: str | None = None,
) -> tuple[str, ...]:
    """Run `command` with sh in `cwd`; its stdout lines (minus blanks and `#` lines) are the
    subtests, each of which must be unique and pass `name_check`.

    It runs with a private, empty HOME and TMPDIR (removed afterwards), `env` on top of the
    scrubbed environment. Every way it can fail raises `ListingError` for this one file; with
    `empty_hint`, so does a listing that names no subtest (for harnesses where a test file
    without subtests is a broken file).
    """
    where = f"test group {group.name!r}"
    with tempfile.TemporaryDirectory(prefix="reconciler-list-home-") as private:
        home, tmp = Path(private, "home"), Path(private, "tmp")
        home.mkdir()
        tmp.mkdir()
        environment = {**list_environment(), "HOME": str(home), "TMPDIR": str(tmp), **(env or {})}
        stdout, raw_stderr, returncode = _run_listing(
            command=command,
            cwd=cwd,
            env=environment,
            timeout=timeout,
            pass_fds=pass_fds,
            what=f"the listing of {test!r}",
            where=where,
        )
    # Messages quote what the listing printed; the temporary directories it ran in would make
    # every message (and every status file quoting it) differ from run to run.
    places = {str(cwd): "<checkout>", str(home): "<home>", str(tmp): "<tmp>"}
    places |= {value: f"<{name}>" for name, value in (env or {}).items() if value.startswith("/")}
    stderr = _scrubbed(raw_stderr.decode("utf-8", errors="replace"), places)
    if returncode != 0:
        tail = stderr.strip()[-_STDERR_TAIL_CHARS:]
        printed = _quote_lines(
            _scrubbed(stdout.decode("utf-8", errors="replace"), places).splitlines()
        )
        raise ListingError(
            f"listing {test!r} exited with status {returncode}"
            + (f"; it printed {printed}" if printed else "")
            + f"; stderr: {tail or '(empty)'}",
            where=where,
            hint=f"run it by hand in a checkout: {command}",
        )
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ListingError(
            f"listing {test!r} printed non-UTF-8 output", where=where, hint="print names only"
        ) from exc
    names = [line.strip() for line in text.splitlines()]
    # `#` lines are comments, so list commands may print TAP-style diagnostics.
    subtests = [name for name in names if name and not name.startswith("#")]
    invalid = name_check(subtests) if name_check is not None else []
    if invalid:
        shown = [_scrubbed(line, places) for line in invalid]
        raise ListingError(
            f"listing {test!r} printed {_quote_lines(shown)}, which "
            + ("is not a subtest name" if len(invalid) == 1 else "are not subtest names"),
            where=where,
            hint="a listing must print only subtest names, one per line; fix what printed the"
            f" line, then plan again (run it by hand in a checkout: {command})",
        )
    if not subtests and empty_hint is not None:
        tail = stderr.strip()[-_STDERR_TAIL_CHARS:]
        raise ListingError(
            f"listing {test!r} named no subtest; stderr: {tail or '(empty)'}",
            where=where,
            hint=empty_hint,
        )
    try:
        return unique_subtests(subtests, what=f"listing {test!r} printed a subtest")
    except HarnessError as error:
        raise ListingError(error.message, where=where, hint=error.hint) from error


def _scrubbed(text: str, places: Mapping[str, str]) -> str:
    """`text` with each directory of `places` (and its resolved form) named by its label."""
    for path, label in sorted(places.items(), key=lambda item: -len(item[0])):
        text = text.replace(path, label)
        resolved = os.path.realpath(path)
        if resolved != path:
            text = text.replace(resolved, label)
    return text


def _quote_lines(lines: Sequence[str]) -> str:
    shown = "; ".join(repr(line[:200]) for line in lines[:_QUOTED_LINES])
    more = len(lines) - _QUOTED_LINES
    return shown + (f" and {more} more line{'s' if more > 1 else ''}" if more > 0 else "")


def _run_listing(
    *,
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    pass_fds: Sequence[int],
    what: str,
    where: str,
) -> tuple[bytes, bytes, int]:
    try:
        # A session of its own, so a timeout kills the list command's children too; otherwise
        # a grandchild holding the pipes open would hang us after the shell was killed.
        with subprocess.Popen(
            ["sh", "-c", command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                raise ListingError(
                    f"{what} did not finish within {timeout:g} s and was killed",
                    where=where,
                    hint="a listing must only print subtest names, never run tests; raise the"
                    " harness's `list_timeout` if it is merely slow",
                ) from exc
    except OSError as exc:
        raise InfrastructureError(f"cannot run the list command with sh: {exc}") from exc
    return stdout, stderr, process.returncode


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

    def list_subtests(test: str, checkout: LazyCheckout) -> EnumeratedTest:
        if not list_command:
            return EnumeratedTest(test, (test,))
        listing = cached_list(
            cache=cache,
            revision=revision,
            list_command=list_command,
            test=test,
            blob=files[test],
            environment={"variables": list_environment()},
            run=lambda: CachedListing(
                run_list_command(
                    command=substitute(list_command, {"test": shlex.quote(test)}),
                    cwd=checkout.path(),
                    group=group,
                    test=test,
                    timeout=harness.list_timeout,
                )
            ),
        )
        return EnumeratedTest(test, listing.subtests)

    return enumerate_listed(
        group=group, tree=tree, candidates=list(files), list_subtests=list_subtests
    )
