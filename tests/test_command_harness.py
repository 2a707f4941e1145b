"""The `command` harness on real git repositories, real shell commands and a real SQLite cache."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from reconciler.adapters.harness.base import BatchContext, SubtestOutcome, glob_matches
from reconciler.adapters.harness.command import CommandHarness
from reconciler.adapters.harness.enumeration_cache import (
    MemoryEnumerationCache,
    SqliteEnumerationCache,
)
from reconciler.adapters.harness.fstests import FstestsHarness
from reconciler.adapters.harness.kselftest import KselftestHarness
from reconciler.adapters.harness.ktest import KtestHarness
from reconciler.adapters.harness.registry import ADAPTERS, adapter_for
from reconciler.model.desired import BlockReason, EnumeratedTest, ListingBlock
from reconciler.model.errors import HarnessError
from reconciler.model.results import Status
from reconciler.model.specs import Harness, HarnessType, OutputFormat, TestGroup

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_ENV},
        check=True,
        capture_output=True,
    )
    return completed.stdout.decode()


class GitTreeView:
    """The TreeView seam over a real repository: `git ls-tree` and `git archive`."""

    def __init__(self, repo: Path, commit: str) -> None:
        self.repo = repo
        self.commit = commit
        self.exports = 0

    @property
    def tree(self) -> str:
        return git(self.repo, "rev-parse", f"{self.commit}^{{tree}}").strip()

    def files(self) -> Mapping[str, str]:
        listing = subprocess.run(
            ["git", "ls-tree", "-r", "-z", "--full-tree", self.commit],
            cwd=self.repo,
            check=True,
            capture_output=True,
        ).stdout.decode()
        files: dict[str, str] = {}
        for entry in filter(None, listing.split("\0")):
            meta, path = entry.split("\t", 1)
            files[path] = meta.split()[2]
        return files

    def export(self, dest: Path) -> None:
        self.exports += 1
        archive = subprocess.run(
            ["git", "archive", "--format=tar", self.commit],
            cwd=self.repo,
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            tar.extractall(dest, filter="data")


LIST_SCRIPT = """\
#!/bin/sh
# Subtests of this file: {names}
if [ "$1" = --list ]; then
  echo '# printed by --list'
{echoes}
  echo
  exit 0
fi
"""


def write_test(repo: Path, path: str, names: list[str]) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    echoes = "\n".join(f"  echo {shlex.quote(name)}" for name in names)
    target.write_text(LIST_SCRIPT.format(names=", ".join(names), echoes=echoes))


def commit_all(repo: Path, message: str) -> GitTreeView:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return GitTreeView(repo, git(repo, "rev-parse", "HEAD").strip())


@pytest.fixture
def harness_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    write_test(repo, "tests/alpha.sh", ["one", "two words", "three"])
    write_test(repo, "tests/beta.sh", ["b1", "b2"])
    write_test(repo, "tests/flaky.sh", ["f1"])
    write_test(repo, "tests/sub/gamma.sh", ["g1"])
    (repo / "README").write_text("tests for the command harness\n")
    return repo


@pytest.fixture
def harness_counter(tmp_path: Path) -> Path:
    """A file outside the tree that every list invocation appends a line to."""
    return tmp_path / "list-invocations"


def invocations(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def make_harness(counter: Path, **fields: object) -> Harness:
    values: dict[str, object] = {
        "kind": "Harness",
        "name": "scripts",
        "type": "command",
        "list": f"echo {{test}} >> {shlex.quote(str(counter))}; sh {{test}} --list",
        "run": "sh {test} {subtests}",
        **fields,
    }
    return Harness.model_validate(values)


def make_group(**fields: object) -> TestGroup:
    values: dict[str, object] = {
        "kind": "TestGroup",
        "name": "shell",
        "harness": "scripts",
        "tests": ["tests/*.sh"],
        **fields,
    }
    return TestGroup.model_validate(values)


def test_enumerate_selects_lists_and_excludes(harness_repo: Path, harness_counter: Path) -> None:
    tree = commit_all(harness_repo, "tests")
    adapter = CommandHarness(make_harness(harness_counter), cache=MemoryEnumerationCache())
    group = make_group(
        exclude=["tests/flaky.sh", "tests/alpha.sh:two words"],
        subtests={"tests/beta.sh": ["explicit"]},
    )

    assert adapter.enumerate(group=group, tree=tree) == (
        EnumeratedTest("tests/alpha.sh", ("one", "three")),
        EnumeratedTest("tests/beta.sh", ("explicit",)),
    )
    # `*` stays in its directory; beta has explicit subtests, flaky is excluded: one listing.
    assert invocations(harness_counter) == 1
    assert tree.exports == 1

    everything = make_group(tests=["tests/**/*.sh"], exclude=["tests/*:b1"])
    assert adapter.enumerate(group=everything, tree=tree) == (
        EnumeratedTest("tests/alpha.sh", ("one", "two words", "three")),
        EnumeratedTest("tests/beta.sh", ("b2",)),
        EnumeratedTest("tests/flaky.sh", ("f1",)),
        EnumeratedTest("tests/sub/gamma.sh", ("g1",)),
    )
    # alpha came from the cache; beta, flaky and gamma were listed, in one export.
    assert invocations(harness_counter) == 4
    assert tree.exports == 2


def test_without_a_list_command_each_file_is_one_subtest(
    harness_repo: Path, harness_counter: Path
) -> None:
    tree = commit_all(harness_repo, "tests")
    adapter = CommandHarness(
        make_harness(harness_counter, list=None), cache=MemoryEnumerationCache()
    )
    group = make_group(tests=["README", "tests/b*.sh", "tests/alpha.sh"])

    assert adapter.enumerate(group=group, tree=tree) == (
        EnumeratedTest("README", ("README",)),
        EnumeratedTest("tests/alpha.sh", ("tests/alpha.sh",)),
        EnumeratedTest("tests/beta.sh", ("tests/beta.sh",)),
    )
    assert tree.exports == 0


def test_enumeration_is_cached_by_content(
    harness_repo: Path, harness_counter: Path, tmp_path: Path
) -> None:
    cache_path = tmp_path / "cache" / "nested" / "enumeration.sqlite"
    harness = make_harness(harness_counter)
    group = make_group(tests=["tests/**/*.sh"])
    first = commit_all(harness_repo, "tests")

    with SqliteEnumerationCache(cache_path) as cache:
        adapter = CommandHarness(harness, cache=cache)
        listed = adapter.enumerate(group=group, tree=first)
        assert invocations(harness_counter) == 4
        assert (cache.hits, cache.misses) == (0, 4)

        assert adapter.enumerate(group=group, tree=first) == listed
        assert invocations(harness_counter) == 4
        assert (cache.hits, cache.misses) == (4, 4)

        # One test file changes in a new commit: only that file is listed again.
        write_test(harness_repo, "tests/beta.sh", ["b1", "b2", "b3"])
        second = commit_all(harness_repo, "beta grows")
        assert adapter.enumerate(group=group, tree=second) == (
            EnumeratedTest("tests/alpha.sh", ("one", "two words", "three")),
            EnumeratedTest("tests/beta.sh", ("b1", "b2", "b3")),
            EnumeratedTest("tests/flaky.sh", ("f1",)),
            EnumeratedTest("tests/sub/gamma.sh", ("g1",)),
        )
        assert invocations(harness_counter) == 5
        assert second.exports == 1

        # A rename: enumerated under its new name, and the old name is gone (no phantom jobs).
        git(harness_repo, "mv", "tests/flaky.sh", "tests/stable.sh")
        third = commit_all(harness_repo, "rename flaky")
        assert adapter.enumerate(group=group, tree=third) == (
            EnumeratedTest("tests/alpha.sh", ("one", "two words", "three")),
            EnumeratedTest("tests/beta.sh", ("b1", "b2", "b3")),
            EnumeratedTest("tests/stable.sh", ("f1",)),
            EnumeratedTest("tests/sub/gamma.sh", ("g1",)),
        )
        assert invocations(harness_counter) == 6

    # The cache outlives the process that wrote it: a new reconciler lists nothing again.
    with SqliteEnumerationCache(cache_path) as reopened:
        adapter = CommandHarness(harness, cache=reopened)
        adapter.enumerate(group=group, tree=third)
        assert (reopened.hits, reopened.misses) == (4, 0)
    assert invocations(harness_counter) == 6
    assert third.exports == 1


def test_a_harness_repo_keys_the_cache_by_its_whole_tree(
    harness_repo: Path, harness_counter: Path
) -> None:
    group = make_group(tests=["tests/*.sh"])
    cache = MemoryEnumerationCache()
    in_tree = CommandHarness(make_harness(harness_counter), cache=cache)
    in_repo = CommandHarness(
        make_harness(harness_counter, url="https://example.org/suite.git", ref="main"),
        cache=cache,
    )
    first = commit_all(harness_repo, "tests")
    in_tree.enumerate(group=group, tree=first)
    in_repo.enumerate(group=group, tree=first)
    assert invocations(harness_counter) == 6

    # A file the list command might read changes: a harness repo is listed again in full,
    # in-tree tests only where their own file changed (here: none).
    (harness_repo / "README").write_text("changed\n")
    second = commit_all(harness_repo, "readme")
    in_tree.enumerate(group=group, tree=second)
    assert invocations(harness_counter) == 6
    in_repo.enumerate(group=group, tree=second)
    assert invocations(harness_counter) == 9


@pytest.mark.parametrize(
    "garbage",
    [b"\x00not a database\xff" * 400, b"x", b"SQLite format 3\x00" + b"\xee" * 4000],
    ids=["garbage", "one byte", "truncated header"],
)
def test_a_corrupt_cache_file_is_rebuilt(
    harness_repo: Path, harness_counter: Path, tmp_path: Path, garbage: bytes
) -> None:
    cache_path = tmp_path / "enumeration.sqlite"
    cache_path.write_bytes(garbage)
    tree = commit_all(harness_repo, "tests")
    group = make_group()

    with SqliteEnumerationCache(cache_path) as cache:
        assert CommandHarness(make_harness(harness_counter), cache=cache).enumerate(
            group=group, tree=tree
        ) == (
            EnumeratedTest("tests/alpha.sh", ("one", "two words", "three")),
            EnumeratedTest("tests/beta.sh", ("b1", "b2")),
            EnumeratedTest("tests/flaky.sh", ("f1",)),
        )
    assert invocations(harness_counter) == 3
    with SqliteEnumerationCache(cache_path) as rebuilt:
        CommandHarness(make_harness(harness_counter), cache=rebuilt).enumerate(
            group=group, tree=tree
        )
        assert (rebuilt.hits, rebuilt.misses) == (3, 0)
    assert invocations(harness_counter) == 3


def test_reading_an_absent_cache_creates_nothing(tmp_path: Path) -> None:
    cache_path = tmp_path / "not-yet" / "enumeration.sqlite"
    with SqliteEnumerationCache(cache_path) as cache:
        assert cache.get("0" * 64) is None
        assert (cache.hits, cache.misses) == (0, 1)
    assert not cache_path.parent.exists()


def batch_context(**fields: object) -> BatchContext:
    values: dict[str, object] = {
        "test": "tests/alpha.sh",
        "subtests": ("one",),
        "runtime": {},
        "source_dir": "/src",
        "tests_dir": "/src",
        "output_dir": "/out",
        "timeout": 60,
        **fields,
    }
    return BatchContext(**values)  # type: ignore[arg-type]


def test_batch_command_passes_each_value_as_one_argument(tmp_path: Path) -> None:
    checkout = tmp_path / "check out's dir"
    script = checkout / "dir with space" / "print argv.sh"
    script.parent.mkdir(parents=True)
    script.write_text('for arg in "$@"; do printf \'<%s>\\n\' "$arg"; done\n')
    sentinel = checkout / "sentinel"
    sentinel.write_text("still here\n")
    output_dir = tmp_path / "out $(rm sentinel)"
    subtests = ["a b; rm -rf /tmp/x", "$(rm sentinel)", "it's", "{test}", "*"]
    adapter = CommandHarness(
        make_harness(tmp_path / "unused", run="sh {test} --batch {subtests} --out {output_dir}"),
        cache=MemoryEnumerationCache(),
    )

    command = adapter.batch_command(
        batch_context(
            test="dir with space/print argv.sh",
            subtests=subtests,
            tests_dir=str(checkout),
            output_dir=str(output_dir),
        )
    )
    # Started anywhere: the command moves into the harness checkout itself.
    completed = subprocess.run(
        ["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True
    )

    assert completed.stdout.splitlines() == [
        "<--batch>",
        "<a b; rm -rf /tmp/x>",
        "<$(rm sentinel)>",
        "<it's>",
        "<{test}>",
        "<*>",
        "<--out>",
        f"<{output_dir}>",
    ]
    assert sentinel.read_text() == "still here\n"


def test_build_command_and_output_formats(tmp_path: Path) -> None:
    cache = MemoryEnumerationCache()
    tap = CommandHarness(make_harness(tmp_path, build="make -j8"), cache=cache)
    junit = CommandHarness(make_harness(tmp_path, output="junit"), cache=cache)
    assert tap.build_command() == "make -j8"
    assert junit.build_command() is None
    assert tap.parse_results(output="1..1\nok 1 - a\n", files={}, expected=["a", "b"]) == [
        SubtestOutcome("a", Status.PASS, None, None),
        SubtestOutcome("b", Status.ERROR, None, "not reported"),
    ]
    assert junit.parse_results(
        output="<testsuite><testcase name='a' time='2'/></testsuite>", files={}, expected=["a"]
    ) == [SubtestOutcome("a", Status.PASS, 2.0, None)]


def test_result_files_and_the_junit_file_wins_over_stdout(tmp_path: Path) -> None:
    cache = MemoryEnumerationCache()
    tap = CommandHarness(make_harness(tmp_path), cache=cache)
    junit = CommandHarness(make_harness(tmp_path, output="junit"), cache=cache)
    context = batch_context(output_dir="/work/out dir")
    assert tap.result_files(context) == ()
    assert junit.result_files(context) == ("/work/out dir/junit.xml",)

    report = b"<testsuite><testcase name='a'><failure message='boom'/></testcase></testsuite>"
    assert junit.parse_results(
        output="progress: 50%\nprogress: 100%\n",
        files={"/work/out dir/junit.xml": report},
        expected=["a"],
    ) == [SubtestOutcome("a", Status.FAIL, None, "boom")]


def test_reported_streams_tap_test_points_and_never_guesses(tmp_path: Path) -> None:
    cache = MemoryEnumerationCache()
    tap = CommandHarness(make_harness(tmp_path), cache=cache)
    junit = CommandHarness(make_harness(tmp_path, output="junit"), cache=cache)
    so_far = "TAP version 13\n1..3\nok 1 - a\n# running b\nnot ok 2 - b # TIMEOUT 45 seconds"
    # Two of three reported, and the plan promises a third: it is not invented as an error.
    assert tap.reported(output=so_far) == [
        SubtestOutcome("a", Status.PASS, None, None),
        SubtestOutcome("b", Status.TIMEOUT, None, "TIMEOUT 45 seconds"),
    ]
    assert tap.reported(output="") == []
    assert junit.reported(output="<testsuite><testcase name='a'/>") == []


def test_a_failing_list_command_blocks_each_file_it_fails_for(harness_repo: Path) -> None:
    tree = commit_all(harness_repo, "tests")
    harness = Harness.model_validate(
        {
            "kind": "Harness",
            "name": "scripts",
            "type": "command",
            "list": "case {test} in *beta*) echo b1;; *) echo partial;"
            " echo 'line 1: unexpected token' >&2; exit 3;; esac",
            "run": "sh {test}",
        }
    )
    cache = MemoryEnumerationCache()
    listed = CommandHarness(harness, cache=cache).enumerate(
        group=make_group(tests=["tests/alpha.sh", "tests/beta.sh"]), tree=tree
    )
    command = harness.list.replace("{test}", "tests/alpha.sh") if harness.list else ""
    assert listed == (
        EnumeratedTest(
            "tests/alpha.sh",
            (),
            blocked=ListingBlock(
                BlockReason.LISTING_FAILED,
                "listing 'tests/alpha.sh' exited with status 3; it printed 'partial'; stderr:"
                f" line 1: unexpected token (hint: run it by hand in a checkout: {command})",
            ),
        ),
        EnumeratedTest("tests/beta.sh", ("b1",)),
    )
    # A failed listing is never cached: fixing the command lists the file again.
    assert (cache.hits, cache.misses) == (0, 2)
    assert len(cache._entries) == 1


def test_a_glob_matching_nothing_is_a_harness_error(
    harness_repo: Path, harness_counter: Path
) -> None:
    tree = commit_all(harness_repo, "tests")
    adapter = CommandHarness(make_harness(harness_counter), cache=MemoryEnumerationCache())
    with pytest.raises(HarnessError) as raised:
        adapter.enumerate(group=make_group(tests=["tests/*.sh", "test/*.sh"]), tree=tree)
    assert raised.value.message == "test pattern 'test/*.sh' of test group 'shell' matches no file"
    assert raised.value.hint is not None and "`**` crosses directories" in raised.value.hint
    assert invocations(harness_counter) == 0


@pytest.mark.parametrize(
    ("group_fields", "message"),
    [
        (
            {"subtests": {"tests/alpah.sh": ["one"]}},
            "subtests are listed for 'tests/alpah.sh', which is not one of the test files of"
            " test group 'shell'",
        ),
        (
            {"subtests": {"tests/alpha.sh": ["one", "one"]}},
            "subtests of 'tests/alpha.sh' in test group 'shell' name 'one' more than once",
        ),
    ],
    ids=["unknown subtests key", "duplicate explicit"],
)
def test_bad_explicit_subtests_are_harness_errors(
    harness_repo: Path, group_fields: dict[str, object], message: str
) -> None:
    """A spec that names subtests wrongly is the spec's error: nothing is planned."""
    tree = commit_all(harness_repo, "tests")
    harness = make_harness(harness_repo, list="sh {test} --list")
    with pytest.raises(HarnessError) as raised:
        CommandHarness(harness, cache=MemoryEnumerationCache()).enumerate(
            group=make_group(**group_fields), tree=tree
        )
    assert raised.value.message == message


@pytest.mark.parametrize(
    ("list_command", "message"),
    [
        (
            "echo a; echo b; echo a",
            "listing 'tests/alpha.sh' printed a subtest name 'a' more than once",
        ),
        ("printf '\\377\\n'", "listing 'tests/alpha.sh' printed non-UTF-8 output"),
    ],
    ids=["duplicate listed", "not utf-8"],
)
def test_bad_listings_block_their_file(harness_repo: Path, list_command: str, message: str) -> None:
    tree = commit_all(harness_repo, "tests")
    harness = make_harness(harness_repo, list=list_command)
    (listed,) = CommandHarness(harness, cache=MemoryEnumerationCache()).enumerate(
        group=make_group(tests=["tests/alpha.sh"]), tree=tree
    )
    assert listed.blocked is not None
    assert listed.blocked.message.split(" (hint: ")[0] == message


def test_a_hanging_list_command_times_out_with_its_children(harness_repo: Path) -> None:
    tree = commit_all(harness_repo, "tests")
    harness = make_harness(harness_repo, list="sleep 60 & sleep 60; wait", list_timeout=1)
    (listed,) = CommandHarness(harness, cache=MemoryEnumerationCache()).enumerate(
        group=make_group(tests=["tests/alpha.sh"]), tree=tree
    )
    assert listed.blocked is not None
    assert listed.blocked.message.startswith(
        "the listing of 'tests/alpha.sh' did not finish within 1 s and was killed"
    )


def test_the_list_command_gets_no_secrets(
    harness_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_TEST_TOKEN", "hunter2")
    tree = commit_all(harness_repo, "tests")
    harness = make_harness(harness_repo, list='echo "token=${RECONCILER_TEST_TOKEN:-none}"')
    assert CommandHarness(harness, cache=MemoryEnumerationCache()).enumerate(
        group=make_group(tests=["tests/alpha.sh"]), tree=tree
    ) == (EnumeratedTest("tests/alpha.sh", ("token=none",)),)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("tests/*.sh", "tests/a.sh", True),
        ("tests/*.sh", "tests/sub/a.sh", False),
        ("tests/**/*.sh", "tests/a.sh", True),
        ("tests/**/*.sh", "tests/sub/deeper/a.sh", True),
        ("tests/**", "tests/sub/a.sh", True),
        ("tests/?.sh", "tests/a.sh", True),
        ("tests/?.sh", "tests/ab.sh", False),
        ("tests/?", "tests//", False),
        ("tests/[ab].sh", "tests/b.sh", True),
        ("tests/[!ab].sh", "tests/c.sh", True),
        ("tests/[!ab].sh", "tests/a.sh", False),
        ("tests/a.sh", "tests/a.sh", True),
        ("tests/a.sh", "tests/a.shx", False),
        ("tests/a.sh", "xtests/a.sh", False),
        ("tests/a+b.sh", "tests/a+b.sh", True),
    ],
)
def test_glob_matching(pattern: str, path: str, matches: bool) -> None:
    assert glob_matches(pattern, path) is matches


def test_registry_catalogue() -> None:
    from reconciler.adapters.harness.vm import VmHarness  # kept local: this file is shared

    cache = MemoryEnumerationCache()
    assert set(ADAPTERS) == set(HarnessType)
    command_harness = Harness.model_validate(
        {"kind": "Harness", "name": "scripts", "type": "command", "run": "sh {test}"}
    )
    assert isinstance(adapter_for(command_harness, cache=cache), CommandHarness)
    expected = {
        HarnessType.KTEST: KtestHarness,
        HarnessType.FSTESTS: FstestsHarness,
        HarnessType.KSELFTEST: KselftestHarness,
        HarnessType.VM: VmHarness,
    }
    for kind, adapter_class in expected.items():
        harness = Harness.model_validate(
            {
                "kind": "Harness",
                "name": kind.value,
                "type": kind,
                "url": f"https://example.org/{kind.value}.git",
                "ref": "master",
                "output": OutputFormat.TAP,
            }
        )
        assert type(adapter_for(harness, cache=cache)) is adapter_class


def test_a_type_missing_from_the_catalogue_is_a_harness_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(ADAPTERS, HarnessType.KTEST)
    ktest = Harness.model_validate(
        {
            "kind": "Harness",
            "name": "ktest",
            "type": HarnessType.KTEST,
            "url": "https://evilpiepirate.org/git/ktest.git",
            "ref": "master",
        }
    )
    with pytest.raises(HarnessError) as raised:
        adapter_for(ktest, cache=MemoryEnumerationCache())
    assert raised.value.message == "harness type 'ktest' is not available yet"
    assert raised.value.where == "harness 'ktest'"
    assert raised.value.hint is not None
    assert "available types: command, fstests, kselftest" in raised.value.hint
