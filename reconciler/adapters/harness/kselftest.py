"""The `kselftest` harness: the kernel's own selftests, run by `run_kselftest.sh`, read as TAP.

A test is a selftests target directory of the kernel tree (one holding a Makefile below
`tools/testing/selftests/`), named by its path, e.g. `tools/testing/selftests/timers`; its
collection for the runner is the part after `tools/testing/selftests/` (`timers`,
`net/forwarding`). Which programs a target runs is decided by its Makefile through make
(`TEST_PROGS`, `TEST_GEN_PROGS`, computed lists, per-arch conditions), so we do not pretend to
read it: subtests come from the TestGroup's explicit `subtests:` or from the harness's `list`
command (`{test}` is the directory, `{collection}` the collection), cached by the content of
the target directory and of the shared selftests build files.

A batch runs the installed `run_kselftest.sh -t <collection>:<program> ...` (or the harness's
`run` template). Its TAP names each program `selftests: <collection>: <program>`; we read it
back as `<program>`, the subtest name. kselftest quirks handled by the TAP parser: `# SKIP`
on `ok` or `not ok` is a skip, `not ok ... # TIMEOUT 45 seconds` is a timeout, and
`1..0 # SKIP` skips the whole target.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence

from reconciler.adapters.git import TreeView
from reconciler.adapters.harness.base import BatchContext, SubtestOutcome, substitute
from reconciler.adapters.harness.enumeration_cache import CachedListing, EnumerationCache
from reconciler.adapters.harness.listing import (
    LazyCheckout,
    cached_list,
    enumerate_listed,
    list_environment,
    run_list_command,
)
from reconciler.adapters.harness.tap import parse_tap
from reconciler.core.identity import harness_definition_revision
from reconciler.model.desired import EnumeratedTest
from reconciler.model.errors import HarnessError
from reconciler.model.specs import Harness, TestGroup

SELFTESTS = "tools/testing/selftests"
INSTALL_DIR = f"{SELFTESTS}/kselftest_install"
"""Where `make -C tools/testing/selftests install` puts run_kselftest.sh by default."""
DEFAULT_BUILD = f"make headers && make -C {SELFTESTS} install"
"""The build the kernel documentation gives (Documentation/dev-tools/kselftest.rst)."""
# Build files every target includes: a change to them may change any target's list.
_SHARED_BUILD_FILES = (f"{SELFTESTS}/Makefile", f"{SELFTESTS}/lib.mk")

# `ok 3 selftests: net/forwarding: router.sh # SKIP`: the runner's name for a program. Only the
# description is rewritten; number and directive stay for the TAP parser.
_RUNNER_NAME = re.compile(
    r"(?P<point> *(?:not ok|ok)(?:\s+\d+)?\s+(?:-\s+)?)selftests: [^:#]+: (?P<name>[^\s#]+)"
)


class KselftestHarness:
    """Targets of tools/testing/selftests, subtests listed explicitly or by a list command."""

    setup_seconds: float = 0.0

    def __init__(self, harness: Harness, *, cache: EnumerationCache) -> None:
        self.harness = harness
        self._cache = cache

    def enumerate(self, *, group: TestGroup, tree: TreeView) -> tuple[EnumeratedTest, ...]:
        files = tree.files()
        targets = _targets(files)
        revision = tree.tree if self.harness.url else harness_definition_revision(self.harness)
        list_command = self.harness.list

        def list_subtests(test: str, checkout: LazyCheckout) -> EnumeratedTest:
            if not list_command:
                raise HarnessError(
                    f"no subtests for kselftest target {test!r} of test group {group.name!r}",
                    where=f"test group {group.name!r}",
                    hint="list the target's programs under `subtests:` in the test group, or"
                    " give the harness a `list` command printing them ({test} is the target"
                    " directory, {collection} its collection name)",
                )
            listing = cached_list(
                cache=self._cache,
                revision=revision,
                list_command=list_command,
                test=test,
                blob=_content_hash(files, directory=test),
                environment={"variables": list_environment()},
                run=lambda: CachedListing(
                    run_list_command(
                        command=substitute(list_command, _placeholders(test)),
                        cwd=checkout.path(),
                        group=group,
                        test=test,
                        timeout=self.harness.list_timeout,
                    )
                ),
            )
            return EnumeratedTest(test, listing.subtests)

        return enumerate_listed(
            group=group, tree=tree, candidates=targets, list_subtests=list_subtests
        )

    def build_command(self) -> str | None:
        return self.harness.build or DEFAULT_BUILD

    def batch_command(self, context: BatchContext) -> str:
        collection = collection_of(context.test)
        selectors = [f"{collection}:{subtest}" for subtest in context.subtests]
        if self.harness.run:
            command = substitute(
                self.harness.run,
                {
                    **_placeholders(context.test),
                    "subtests": " ".join(shlex.quote(subtest) for subtest in context.subtests),
                    "selectors": " ".join(shlex.quote(selector) for selector in selectors),
                    "output_dir": shlex.quote(context.output_dir),
                },
            )
            return f"cd {shlex.quote(context.tests_dir)} && {command}"
        arguments = ["./run_kselftest.sh"]
        for selector in selectors:
            arguments.extend(["-t", selector])
        install = f"{context.tests_dir.rstrip('/')}/{INSTALL_DIR}"
        command = " ".join(shlex.quote(argument) for argument in arguments)
        return f"cd {shlex.quote(install)} && {command}"

    def result_files(self, context: BatchContext) -> tuple[str, ...]:
        return ()  # the TAP stream on stdout is the report

    def reported(self, *, output: str) -> list[SubtestOutcome]:
        return parse_tap(runner_names_to_subtests(output), expected=())

    def parse_results(
        self, *, output: str, files: Mapping[str, bytes], expected: Sequence[str]
    ) -> list[SubtestOutcome]:
        return parse_tap(runner_names_to_subtests(output), expected=expected)


def collection_of(test: str) -> str:
    """`tools/testing/selftests/net/forwarding` -> `net/forwarding`."""
    prefix = SELFTESTS + "/"
    if not test.startswith(prefix):
        raise HarnessError(f"{test!r} is not a directory below {SELFTESTS}")
    return test[len(prefix) :]


def runner_names_to_subtests(output: str) -> str:
    """TAP with run_kselftest.sh's `selftests: <collection>: <program>` names cut to programs."""
    return "\n".join(
        # Anchored at the line start: a `# ok ...` diagnostic line is not a test point.
        (
            match.expand(r"\g<point>\g<name>") + line[match.end() :]
            if (match := _RUNNER_NAME.match(line))
            else line
        )
        for line in output.split("\n")
    )


def _placeholders(test: str) -> dict[str, str]:
    return {"test": shlex.quote(test), "collection": shlex.quote(collection_of(test))}


def _targets(files: Mapping[str, str]) -> list[str]:
    prefix = SELFTESTS + "/"
    return sorted(
        {
            path.removesuffix("/Makefile")
            for path in files
            # The top-level Makefile drives all targets; it is not one itself.
            if path.startswith(prefix)
            and path.endswith("/Makefile")
            and path != f"{prefix}Makefile"
        }
    )


def _content_hash(files: Mapping[str, str], *, directory: str) -> str:
    """One hash over the blobs of a target directory and the build files it includes."""
    inside = directory + "/"
    relevant = sorted(
        (path, blob)
        for path, blob in files.items()
        if path.startswith(inside) or path in _SHARED_BUILD_FILES
    )
    digest = hashlib.sha256()
    for path, blob in relevant:
        digest.update(f"{path}\0{blob}\n".encode())
    return digest.hexdigest()
