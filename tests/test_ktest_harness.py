"""The ktest harness on a real (small) ktest checkout in git, real bash and a real SQLite cache."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.adapters.harness.base import BatchContext, SubtestOutcome
from reconciler.adapters.harness.enumeration_cache import (
    MemoryEnumerationCache,
    SqliteEnumerationCache,
)
from reconciler.adapters.harness.ktest import NOT_REACHED, KtestHarness, parse_ktest_line
from reconciler.model.desired import BlockReason, EnumeratedTest, ListingBlock
from reconciler.model.errors import HarnessError
from reconciler.model.results import Status
from reconciler.model.specs import Harness, TestGroup
from tests.test_command_harness import commit_all, git

PASS, FAIL, SKIP, TIMEOUT, ERROR = (
    Status.PASS,
    Status.FAIL,
    Status.SKIP,
    Status.TIMEOUT,
    Status.ERROR,
)

# Modelled on ktest's tests/prelude.sh: subtests are the test_* functions, `list-tests` prints
# them, `run-tests` runs them. Each listing is counted in a file outside the tree.
PRELUDE = """\
list_tests()
{{
    declare -F | sed -ne '/ test_/ s/.*test_// p'
}}

main()
{{
    case $1 in
        list-tests)
            echo "$0" >> {counter}
            list_tests
            ;;
        *)
            exit 1
            ;;
    esac
}}
"""

KTEST_FILE = """\
#!/usr/bin/env bash
. "$(dirname "$(readlink -e "${{BASH_SOURCE[0]}}")")/{prelude}"

{functions}
main "$@"
"""


def write_ktest(repo: Path, path: str, names: list[str], *, prelude: str) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    functions = "\n".join(f"test_{name}()\n{{\n    true\n}}\n" for name in names)
    target.write_text(KTEST_FILE.format(prelude=prelude, functions=functions))
    target.chmod(0o755)


@pytest.fixture
def harness_ktest_counter(tmp_path: Path) -> Path:
    return tmp_path / "list-invocations"


@pytest.fixture
def harness_ktest_repo(tmp_path: Path, harness_ktest_counter: Path) -> Path:
    repo = tmp_path / "ktest"
    repo.mkdir()
    git(repo, "-c", "init.defaultBranch=master", "init", "-q")
    (repo / "tests").mkdir()
    prelude = PRELUDE.format(counter=shlex.quote(str(harness_ktest_counter)))
    (repo / "tests" / "prelude.sh").write_text(prelude)
    write_ktest(repo, "tests/x.ktest", ["mount", "fsck", "snapshots"], prelude="prelude.sh")
    write_ktest(repo, "tests/fs/y.ktest", ["quota"], prelude="../prelude.sh")
    write_ktest(repo, "tests/fs/slow.ktest", ["forever"], prelude="../prelude.sh")
    (repo / "build-test-kernel").write_text("#!/bin/sh\n")
    return repo


def listings(counter: Path) -> list[str]:
    if not counter.exists():
        return []
    return [os.path.basename(line) for line in counter.read_text().splitlines()]


def ktest_harness() -> Harness:
    return Harness.model_validate(
        {
            "kind": "Harness",
            "name": "ktest",
            "type": "ktest",
            "url": "https://evilpiepirate.org/git/ktest.git",
            "ref": "master",
        }
    )


def make_group(**fields: object) -> TestGroup:
    values: dict[str, object] = {
        "kind": "TestGroup",
        "name": "bcachefs",
        "harness": "ktest",
        "tests": ["tests/**/*.ktest"],
        **fields,
    }
    return TestGroup.model_validate(values)


def test_enumerate_lists_each_ktest_file_with_list_tests(
    harness_ktest_repo: Path, harness_ktest_counter: Path
) -> None:
    tree = commit_all(harness_ktest_repo, "tests")
    adapter = KtestHarness(ktest_harness(), cache=MemoryEnumerationCache())
    group = make_group(
        exclude=["tests/fs/slow.ktest", "tests/x.ktest:fsck"],
        subtests={"tests/fs/y.ktest": ["quota", "quota_v2"]},
    )

    assert adapter.enumerate(group=group, tree=tree) == (
        EnumeratedTest("tests/fs/y.ktest", ("quota", "quota_v2")),
        # declare -F lists functions sorted by name.
        EnumeratedTest("tests/x.ktest", ("mount", "snapshots")),
    )
    # prelude.sh is a library, not a test file; y has explicit subtests; slow is excluded.
    assert listings(harness_ktest_counter) == ["x.ktest"]
    assert tree.exports == 1


def test_the_cache_law(
    harness_ktest_repo: Path, harness_ktest_counter: Path, tmp_path: Path
) -> None:
    cache_path = tmp_path / "enumeration.sqlite"
    group = make_group()
    first = commit_all(harness_ktest_repo, "tests")

    with SqliteEnumerationCache(cache_path) as cache:
        adapter = KtestHarness(ktest_harness(), cache=cache)
        listed = adapter.enumerate(group=group, tree=first)
        assert listings(harness_ktest_counter) == ["slow.ktest", "y.ktest", "x.ktest"]
        # Unchanged: never listed again.
        assert adapter.enumerate(group=group, tree=first) == listed
        assert len(listings(harness_ktest_counter)) == 3

        # One test file changes: only it is listed again, and its new subtests appear.
        write_ktest(harness_ktest_repo, "tests/x.ktest", ["mount", "replay"], prelude="prelude.sh")
        second = commit_all(harness_ktest_repo, "x changes")
        assert adapter.enumerate(group=group, tree=second) == (
            EnumeratedTest("tests/fs/slow.ktest", ("forever",)),
            EnumeratedTest("tests/fs/y.ktest", ("quota",)),
            EnumeratedTest("tests/x.ktest", ("mount", "replay")),
        )
        assert listings(harness_ktest_counter)[3:] == ["x.ktest"]

        # A library every test sources changes: every file is listed again.
        with (harness_ktest_repo / "tests" / "prelude.sh").open("a") as prelude:
            prelude.write("# a new helper would go here\n")
        third = commit_all(harness_ktest_repo, "prelude changes")
        adapter.enumerate(group=group, tree=third)
        assert len(listings(harness_ktest_counter)) == 7

    # A new reconciler on the same cache file lists nothing.
    with SqliteEnumerationCache(cache_path) as reopened:
        KtestHarness(ktest_harness(), cache=reopened).enumerate(group=group, tree=third)
        assert (reopened.hits, reopened.misses) == (3, 0)
    assert len(listings(harness_ktest_counter)) == 7


def test_a_test_file_that_cannot_list_is_blocked_and_the_rest_listed(
    harness_ktest_repo: Path,
) -> None:
    (harness_ktest_repo / "tests" / "broken.ktest").write_text("#!/bin/sh\necho oops >&2\nexit 2\n")
    (harness_ktest_repo / "tests" / "broken.ktest").chmod(0o755)
    tree = commit_all(harness_ktest_repo, "broken")
    cache = MemoryEnumerationCache()
    listed = KtestHarness(ktest_harness(), cache=cache).enumerate(
        group=make_group(tests=["tests/broken.ktest", "tests/x.ktest"]), tree=tree
    )
    assert listed == (
        EnumeratedTest(
            "tests/broken.ktest",
            (),
            blocked=ListingBlock(
                BlockReason.LISTING_FAILED,
                "listing 'tests/broken.ktest' exited with status 2; stderr: oops (hint: run it"
                " by hand in a checkout: ./tests/broken.ktest list-tests)",
            ),
        ),
        EnumeratedTest("tests/x.ktest", ("fsck", "mount", "snapshots")),
    )
    # Only the good listing is cached: fixing the file lists it again.
    assert (cache.hits, cache.misses) == (0, 2)
    assert len(cache._entries) == 1


def test_a_line_that_is_not_a_subtest_blocks_the_file_quoted_and_is_never_cached(
    harness_ktest_repo: Path,
) -> None:
    """ktest's ERR trap prints to stdout; such a line was once planned as a subtest."""
    line = "Error 128 at /tmp/x/tests/prelude.sh 92 from: git clone $req $dir, exiting"
    write_ktest(harness_ktest_repo, "tests/noisy.ktest", ["mount"], prelude="prelude.sh")
    noisy = harness_ktest_repo / "tests" / "noisy.ktest"
    noisy.write_text(noisy.read_text().replace('main "$@"', f'echo {shlex.quote(line)}\nmain "$@"'))
    tree = commit_all(harness_ktest_repo, "noisy")
    cache = MemoryEnumerationCache()
    adapter = KtestHarness(ktest_harness(), cache=cache)
    (listed,) = adapter.enumerate(group=make_group(tests=["tests/noisy.ktest"]), tree=tree)
    assert listed.subtests == ()
    assert listed.blocked is not None
    assert listed.blocked.reason is BlockReason.LISTING_FAILED
    assert listed.blocked.message.startswith(
        f"listing 'tests/noisy.ktest' printed {line!r}, which is not a subtest name"
    )
    assert cache._entries == {}
    adapter.enumerate(group=make_group(tests=["tests/noisy.ktest"]), tree=tree)
    assert (cache.hits, cache.misses) == (0, 2)


def test_a_listing_that_hangs_is_killed_at_the_timeout_and_blocked(
    harness_ktest_repo: Path,
) -> None:
    hang = harness_ktest_repo / "tests" / "hang.ktest"
    hang.write_text("#!/bin/sh\nsleep 600 &\nwait\n")
    hang.chmod(0o755)
    tree = commit_all(harness_ktest_repo, "hang")
    harness = ktest_harness().model_copy(update={"list_timeout": 1})
    started = time.monotonic()
    listed = KtestHarness(harness, cache=MemoryEnumerationCache()).enumerate(
        group=make_group(tests=["tests/hang.ktest", "tests/x.ktest"]), tree=tree
    )
    assert time.monotonic() - started < 30  # killed with its child, not waited for
    assert [test.test for test in listed] == ["tests/hang.ktest", "tests/x.ktest"]
    assert listed[0].blocked is not None
    assert listed[0].blocked.message.startswith(
        "the listing of 'tests/hang.ktest' did not finish within 1 s and was killed"
    )
    assert listed[1].subtests == ("fsck", "mount", "snapshots")


def test_a_glob_matching_no_ktest_file_is_a_harness_error(harness_ktest_repo: Path) -> None:
    tree = commit_all(harness_ktest_repo, "tests")
    with pytest.raises(HarnessError) as raised:
        KtestHarness(ktest_harness(), cache=MemoryEnumerationCache()).enumerate(
            group=make_group(tests=["tests/prelude.sh"]), tree=tree
        )
    assert raised.value.message == (
        "test pattern 'tests/prelude.sh' of test group 'bcachefs' matches no file"
    )


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        ("========= PASSED mount in 12s", SubtestOutcome("mount", PASS, 12.0, None)),
        ("========= FAILED fsck in 3s", SubtestOutcome("fsck", FAIL, 3.0, None)),
        (
            "========= NOTRUN quota in 0s: kernel built without CONFIG_QUOTA",
            SubtestOutcome("quota", SKIP, 0.0, "kernel built without CONFIG_QUOTA"),
        ),
        ("========= NOTRUN quota in 1s", SubtestOutcome("quota", SKIP, 1.0, None)),
        ("========= NOTRUN quota in 1s: ", SubtestOutcome("quota", SKIP, 1.0, None)),
        (
            "========= FAILED TIMEOUT snapshots in 600s",
            SubtestOutcome("snapshots", TIMEOUT, 600.0, "timed out after 600 s"),
        ),
        # A test named TIMEOUT that failed is a failure of that test.
        ("========= FAILED TIMEOUT in 4s", SubtestOutcome("TIMEOUT", FAIL, 4.0, None)),
        # The supervisor's elapsed-seconds stamp and the kernel's printk stamp.
        ("00123 ========= PASSED mount in 2s", SubtestOutcome("mount", PASS, 2.0, None)),
        ("[   41.250061] ========= FAILED fsck in 7s", SubtestOutcome("fsck", FAIL, 7.0, None)),
        ("========= PASSED mount in 2s\r", SubtestOutcome("mount", PASS, 2.0, None)),
        ("========= FAILED TO RUN mount in 2s", None),
        ("========= FAILED TO RUN mount", None),
        ("========= TEST   mount", None),
        ("========= FAILED TIMEOUT (no test) in 60s", None),
        ("========= PASSED mount in 2s, then oopsed", None),
        ("========= PASSED two words in 2s", None),
        ("========= PASSED mount", None),
        ("note: ========= PASSED mount in 2s", None),
        ("=========  PASSED mount in 2s", None),
        ("TEST FAILED", None),
        ("Passed: mount fsck", None),
    ],
)
def test_status_line_table(line: str, outcome: SubtestOutcome | None) -> None:
    assert parse_ktest_line(line) == outcome


CONSOLE = """\
Running tests mount fsck snapshots replay
========= TEST   mount
[    3.101] bcachefs (vdb): mounting version 1.7
========= PASSED mount in 5s
========= TEST   fsck
========= FAILED TO RUN fsck
========= NOTRUN fsck in 0s: no scratch device
========= TEST   snapshots
00312 ========= FAILED TIMEOUT snapshots in 300s
========= FAILED snapshots in 301s
"""


def test_parse_results_an_unreached_subtest_is_an_error_not_a_failure() -> None:
    adapter = KtestHarness(ktest_harness(), cache=MemoryEnumerationCache())
    expected = ["mount", "fsck", "snapshots", "replay", "rebalance"]
    assert adapter.parse_results(output=CONSOLE, files={}, expected=expected) == [
        SubtestOutcome("mount", PASS, 5.0, None),
        SubtestOutcome("fsck", SKIP, 0.0, "no scratch device"),
        # The first verdict stands: the timeout, not the FAILED printed after it.
        SubtestOutcome("snapshots", TIMEOUT, 300.0, "timed out after 300 s"),
        SubtestOutcome("replay", ERROR, None, NOT_REACHED),
        SubtestOutcome("rebalance", ERROR, None, NOT_REACHED),
    ]
    assert NOT_REACHED == "not reached: VM died or batch ended"
    # While the batch runs, only the lines seen so far count; nothing is guessed.
    assert adapter.reported(output=CONSOLE.split("========= TEST   fsck")[0]) == [
        SubtestOutcome("mount", PASS, 5.0, None)
    ]


FAKE_RUNNER = """\
#!/bin/sh
# Prints where it ran and its arguments, then reports like ktest's run_tests.
pwd
for arg in "$@"; do printf '<%s>\\n' "$arg"; done
echo "========= PASSED a b; rm -rf /tmp/x in 1s"
echo "========= PASSED plain in 2s"
"""


def test_batch_command_runs_build_test_kernel_with_every_argument_quoted(tmp_path: Path) -> None:
    ktest_dir = tmp_path / "ktest checkout"
    kernel_dir = tmp_path / "linux $(touch pwned)"
    output_dir = tmp_path / "out 'dir'"
    for directory in (ktest_dir, kernel_dir, output_dir):
        directory.mkdir()
    runner = ktest_dir / "build-test-kernel"
    runner.write_text(FAKE_RUNNER)
    runner.chmod(0o755)
    context = BatchContext(
        test="tests/fs/my tests.ktest",
        subtests=("a b; rm -rf /tmp/x", "plain", "$(touch pwned)"),
        runtime={},
        source_dir=str(kernel_dir),
        tests_dir=str(ktest_dir),
        output_dir=str(output_dir),
        timeout=300,
    )
    adapter = KtestHarness(ktest_harness(), cache=MemoryEnumerationCache())

    command = adapter.batch_command(context)
    completed = subprocess.run(
        ["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True, check=True
    )

    assert completed.stdout.splitlines()[:9] == [
        str(kernel_dir),
        "<run>",
        "<-k>",
        f"<{kernel_dir}>",
        "<-o>",
        f"<{output_dir}>",
        f"<{ktest_dir}/tests/fs/my tests.ktest>",
        "<a b; rm -rf /tmp/x>",
        "<plain>",
    ]
    assert completed.stdout.splitlines()[9] == "<$(touch pwned)>"
    assert not (tmp_path / "pwned").exists()
    assert not (kernel_dir / "pwned").exists()
    assert adapter.build_command() is None
    assert adapter.result_files(context) == ()
    # A subtest name with spaces cannot be a ktest test_* function; it is not misread.
    assert adapter.parse_results(
        output=completed.stdout, files={}, expected=list(context.subtests)
    ) == [
        SubtestOutcome("a b; rm -rf /tmp/x", ERROR, None, NOT_REACHED),
        SubtestOutcome("plain", PASS, 2.0, None),
        SubtestOutcome("$(touch pwned)", ERROR, None, NOT_REACHED),
    ]
