"""The `ktest` harness: Kent Overstreet's VM test runner (https://evilpiepirate.org/git/ktest.git).

How ktest works, as read in its sources (`build-test-kernel`, `lib/libktest.sh`,
`lib/parse-test.sh`, `tests/prelude.sh`, `lib/supervisor.c`, `ci/_test-git-branch.sh`):

- A test file is an executable bash script, `tests/**/*.ktest`, sourcing `tests/prelude.sh`
  and ending in `main "$@"`. Its subtests are its `test_*` functions; `<file> list-tests`
  prints their names one per line, exactly as `parse_test_deps` asks for them
  (`"$ktest_test" list-tests`). A file sources ktest's libraries, so its list depends on the
  whole ktest tree: the cache key holds a hash of every non-test file (its libraries) as well
  as the file's blob, and the revisions of the dependencies provisioned for the listing.
- Libraries and tests `require-git` other repositories (bcachefs-tools, xfstests, linuxquota):
  those are pinned in the Harness spec and provisioned by the reconciler (`ktest_deps`), never
  cloned by ktest. A listing runs under bash's xtrace (to a file of its own, `BASH_XTRACEFD`)
  so the reconciler sees which dependencies each file asked for: exactly those enter the
  identity of its results. A file that asks for one that did not resolve, or that no spec
  pins, is blocked, naming it.
- A listing prints names of `test_*` functions and nothing else; anything else it printed (the
  ERR trap's `Error 128 at … from: git clone …`) blocks the file, quoted, and is not cached.
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

import contextlib
import hashlib
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from reconciler.adapters.git import TreeView
from reconciler.adapters.harness.base import (
    BatchContext,
    SubtestOutcome,
    outcomes_for_expected,
)
from reconciler.adapters.harness.enumeration_cache import CachedListing, EnumerationCache
from reconciler.adapters.harness.ktest_deps import DependencyTrees, read_texts
from reconciler.adapters.harness.listing import (
    LazyCheckout,
    ListingError,
    cached_list,
    enumerate_listed,
    list_environment,
    run_list_command,
)
from reconciler.core.ktest_deps import (
    RequireGit,
    declared_dependencies,
    dependency_name,
    invalid_lines,
    traced_requirements,
)
from reconciler.model.desired import BlockReason, EnumeratedTest, ListingBlock
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

    def __init__(
        self,
        harness: Harness,
        *,
        cache: EnumerationCache,
        dependencies: DependencyTrees | None = None,
    ) -> None:
        self.harness = harness
        self._cache = cache
        self._dependencies = dependencies or DependencyTrees(
            harness=harness, resolved=(), root=Path("/nonexistent"), exporter=_NoExporter()
        )

    def enumerate(self, *, group: TestGroup, tree: TreeView) -> tuple[EnumeratedTest, ...]:
        files = tree.files()
        candidates = [path for path in files if path.endswith(TEST_SUFFIX)]
        # Test files source ktest's libraries (prelude.sh, lib/*.sh, per-suite *-libs.sh), so
        # a list depends on every file that is not itself a test file: a library change lists
        # everything again, a changed test file only itself.
        revision = library_revision(files)
        deps = self._dependencies
        environment = {"dependencies": deps.revisions(), "variables": list_environment()}
        with contextlib.ExitStack() as stack:
            session = _ListingSession(deps, stack)

            def list_subtests(test: str, checkout: LazyCheckout) -> EnumeratedTest:
                listing = cached_list(
                    cache=self._cache,
                    revision=revision,
                    list_command=LIST_ARGUMENT,
                    test=test,
                    blob=files[test],
                    environment=environment,
                    run=lambda: self._list(session, test, checkout=checkout, group=group),
                    cacheable=lambda listing: not self._unmet(listing.uses),
                )
                return self._enumerated(test, listing, traced=session.traced_urls)

            return enumerate_listed(
                group=group, tree=tree, candidates=candidates, list_subtests=list_subtests
            )

    def _list(
        self, session: _ListingSession, test: str, *, checkout: LazyCheckout, group: TestGroup
    ) -> CachedListing:
        try:
            return session.list(
                test, checkout=checkout, group=group, timeout=self.harness.list_timeout
            )
        except ListingError as error:
            # A file that needs a missing dependency usually fails to list for want of it:
            # name the dependency, the root cause, before the listing's own complaint.
            unmet = self._unmet(session.last_uses)
            if not unmet:
                raise
            causes = "; ".join(
                self._unmet_message(name, session.traced_urls.get(name)) for name in unmet
            )
            raise ListingError(
                f"{causes}; its listing failed too: {error.message}",
                reason=BlockReason.DEPENDENCY_UNRESOLVED,
                where=error.where,
            ) from error

    def _unmet(self, uses: Sequence[str]) -> list[str]:
        by_name = self._dependencies.by_name
        return [name for name in uses if name not in by_name or by_name[name].tree is None]

    def _enumerated(
        self, test: str, listing: CachedListing, *, traced: Mapping[str, str]
    ) -> EnumeratedTest:
        unmet = self._unmet(listing.uses)
        if unmet:
            return EnumeratedTest(
                test,
                (),
                blocked=ListingBlock(
                    BlockReason.DEPENDENCY_UNRESOLVED,
                    "; ".join(self._unmet_message(name, traced.get(name)) for name in unmet),
                ),
            )
        by_name = self._dependencies.by_name
        used = tuple(sorted((name, str(by_name[name].tree)) for name in set(listing.uses)))
        return EnumeratedTest(test, listing.subtests, dependencies=used)

    def _unmet_message(self, name: str, url: str | None) -> str:
        dependency = self._dependencies.by_name.get(name)
        harness = self.harness.name
        if dependency is None:
            shown = url or "its URL"
            return (
                f"needs dependency {name!r} (require-git {shown}), which harness {harness!r}"
                f" does not pin (hint: add {{name: {name}, url: {shown}, ref: <branch or"
                f" tag>}} to the harness's `dependencies`)"
            )
        return (
            f"needs dependency {name!r} ({dependency.url} at {dependency.ref!r}), which did not"
            f" resolve: {dependency.problem} (hint: check its url and ref under `dependencies`"
            f" of harness {harness!r})"
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


class _NoExporter:
    def export_tree(self, *, repo: object, tree: str, dest: Path) -> None:
        raise AssertionError("a harness without dependencies exports nothing")


TRACE_RC = """\
# Sourced by the first bash of a listing (BASH_ENV): trace it to BASH_XTRACEFD, and only it.
# Unlike an exported SHELLOPTS, this never hands the test file's own `set -o` options (ktest
# sets nounset) to the programs it runs.
unset BASH_ENV
set -o xtrace
"""


class _ListingSession:
    """What the listings of one enumerate share: the private deps dir, the declared
    `require-git` lines, and the URL each traced dependency name came from."""

    def __init__(self, dependencies: DependencyTrees, stack: contextlib.ExitStack) -> None:
        self._dependencies = dependencies
        self._stack = stack
        self._deps_dir: Path | None = None
        self._trace_rc = Path("/nonexistent")
        self.traced_urls: dict[str, str] = {}
        self.last_uses: tuple[str, ...] = ()

    def _prepare(self, checkout: Path) -> Path:
        if self._deps_dir is None:
            private = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="ktest-")))
            deps_dir = private / "deps"
            deps_dir.mkdir()
            self._trace_rc = private / "trace" / "bashrc"
            declared: tuple[RequireGit, ...] = declared_dependencies(read_texts(checkout))
            self._dependencies.provision(deps_dir=deps_dir, checkout=checkout, declared=declared)
            self._trace_rc.parent.mkdir(exist_ok=True)
            self._trace_rc.write_text(TRACE_RC)
            self._deps_dir = deps_dir
        return self._deps_dir

    def list(
        self, test: str, *, checkout: LazyCheckout, group: TestGroup, timeout: float
    ) -> CachedListing:
        """List `test`; `last_uses` says which dependencies it asked for, even when it failed."""
        root = checkout.path()
        deps_dir = self._prepare(root)
        self.last_uses = ()
        with tempfile.TemporaryFile() as trace:
            try:
                subtests = run_list_command(
                    command=f"{shlex.quote('./' + test)} {LIST_ARGUMENT}",
                    cwd=root,
                    group=group,
                    test=test,
                    timeout=timeout,
                    env={
                        "ktest_deps_dir": str(deps_dir),
                        "BASH_ENV": str(self._trace_rc),
                        "BASH_XTRACEFD": str(trace.fileno()),
                    },
                    name_check=invalid_lines,
                    pass_fds=(trace.fileno(),),
                    empty_hint='a .ktest file defines test_* functions and ends in `main "$@"`'
                    " after sourcing tests/prelude.sh; run it by hand with `list-tests`",
                )
            finally:
                trace.seek(0)
                self.last_uses = self._uses(trace.read().decode("utf-8", errors="replace"))
        return CachedListing(subtests, self.last_uses)

    def _uses(self, trace: str) -> tuple[str, ...]:
        names = set()
        for url, directory in traced_requirements(trace):
            name = dependency_name(url, directory)
            self.traced_urls.setdefault(name, url)
            names.add(name)
        return tuple(sorted(names))


def library_revision(files: Mapping[str, str]) -> str:
    """One hash over every file of the ktest tree except the test files themselves."""
    digest = hashlib.sha256()
    for path in sorted(files):
        if not path.endswith(TEST_SUFFIX):
            digest.update(f"{path}\0{files[path]}\n".encode())
    return digest.hexdigest()
