"""What a ktest tree says about its dependencies and its subtests, read as text (pure).

ktest's libraries and test files fetch what they need with `require-git URL [DIR]`
(`tests/prelude.sh`): the repository is cloned into `$ktest_deps_dir/<name>` unless that
directory exists, where `<name>` is the basename of DIR when given, else of URL without `.git`.
Older ktest cloned next to the declaring file instead, and some of its code still looks there:
`tests/fs/fstests.sh` lists tests from `tests/fs/xfstests`, and `require-make linuxquota` looks
for `tests/fs/bcachefs/linuxquota`. So each declaration names two places a checkout must be
found: its name in the deps dir, and its path beside the declaring file (`link_path`).

Which test file uses which dependency is decided by running it, not by reading it: files
source each other through `$(dirname ...)` paths, `require-lib` and `call_base_test`, so the
reconciler lists each file under bash's xtrace and reads the `require-git` calls it made
(`traced_requirements`).

A subtest is a `test_*` shell function, named without the prefix (`list_tests` in prelude.sh:
`declare -F | sed -ne '/ test_/ s/.*test_// p'`), or an fstests name (`generic/001`) for the
files built on `tests/fs/fstests.sh`, which override `list_tests`. Anything else a listing
prints (ktest's ERR trap writes `Error 128 at … from: git clone …` to stdout) is not a subtest,
and must never be planned as one.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_PART = r"[A-Za-z0-9_][A-Za-z0-9_.:+-]{0,199}"
SUBTEST_NAME = re.compile(rf"{_PART}(?:/{_PART})?")
"""A subtest name as ktest's test files print them: a bash function name without the `test_`
prefix, or, for the fstests-based files (whose own `list_tests` prints fstests' names), one
`suite/test` pair such as `generic/001`. No whitespace, quotes or shell syntax, no leading
`/`, no `..`, at most one `/`."""

_DECLARATION = re.compile(r"^\s*require-git\s+(?P<args>[^#;&|<>]+?)\s*(?:#.*)?$")
_TRACE = re.compile(r"^\++ require-git (?P<args>.*)$")


@dataclass(frozen=True, order=True)
class RequireGit:
    """One `require-git URL [DIR]` line of a ktest tree."""

    declared_in: str
    """Path of the file holding the line, relative to the tree."""
    url: str
    directory: str | None

    @property
    def name(self) -> str:
        return dependency_name(self.url, self.directory)

    @property
    def link_path(self) -> str:
        """Where older ktest put the checkout: beside the declaring file, DIR relative to it."""
        return posixpath.normpath(
            posixpath.join(posixpath.dirname(self.declared_in), self.directory or self.name)
        )


def dependency_name(url: str, directory: str | None) -> str:
    """The directory ktest's `require-git` uses under `$ktest_deps_dir`."""
    base = posixpath.basename((directory or url).rstrip("/"))
    return base if directory else base.removesuffix(".git")


def declared_dependencies(texts: Mapping[str, str]) -> tuple[RequireGit, ...]:
    """Every literal `require-git` line of the tree's files, sorted; commented lines are not.

    A line whose URL is built from a variable cannot be read here: listing still traces the
    call, and a name no spec pins blocks the file that made it.
    """
    found: set[RequireGit] = set()
    for path, text in texts.items():
        for line in text.splitlines():
            arguments = _arguments(_DECLARATION, line)
            if arguments is None or any(
                "$" in word or "`" in word for word in arguments if word is not None
            ):
                continue
            found.add(RequireGit(path, *arguments))
    return tuple(sorted(found))


def traced_requirements(trace: str) -> tuple[tuple[str, str | None], ...]:
    """(url, dir) of each `require-git` call in a bash xtrace (`+ require-git URL DIR`)."""
    calls: dict[tuple[str, str | None], None] = {}
    for line in trace.splitlines():
        arguments = _arguments(_TRACE, line)
        if arguments is not None:
            calls[arguments] = None
    return tuple(calls)


def _arguments(pattern: re.Pattern[str], line: str) -> tuple[str, str | None] | None:
    """(URL, DIR or None) of a `require-git` line that `pattern` matches, as the shell splits
    its words; None for any other line."""
    match = pattern.match(line)
    if match is None:
        return None
    try:
        words = shlex.split(match["args"])
    except ValueError:
        return None
    if not 1 <= len(words) <= 2:
        return None
    return words[0], words[1] if len(words) == 2 else None


def invalid_lines(lines: Iterable[str]) -> list[str]:
    """Lines of a listing that are not subtest names (blank lines are ignored)."""
    return [
        line
        for line in lines
        if line.strip() and (not SUBTEST_NAME.fullmatch(line) or ".." in line.split("/"))
    ]
