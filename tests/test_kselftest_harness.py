"""The kselftest harness on a real (small) kernel tree in git, real list commands and real sh."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from reconciler.adapters.harness.base import BatchContext, SubtestOutcome
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache
from reconciler.adapters.harness.kselftest import (
    DEFAULT_BUILD,
    KselftestHarness,
    runner_names_to_subtests,
)
from reconciler.model.desired import EnumeratedTest
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
SELFTESTS = "tools/testing/selftests"


def write_target(repo: Path, target: str, programs: list[str]) -> None:
    directory = repo / SELFTESTS / target
    directory.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"TEST_GEN_PROGS += {program}\n" for program in programs)
    (directory / "Makefile").write_text(f"{lines}\ninclude ../lib.mk\n")


@pytest.fixture
def harness_kernel_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "linux"
    repo.mkdir()
    git(repo, "-c", "init.defaultBranch=master", "init", "-q")
    (repo / SELFTESTS).mkdir(parents=True)
    (repo / SELFTESTS / "Makefile").write_text("TARGETS += timers\nTARGETS += net\n")
    (repo / SELFTESTS / "lib.mk").write_text("all: $(TEST_GEN_PROGS)\n")
    write_target(repo, "timers", ["posix_timers", "nanosleep"])
    (repo / SELFTESTS / "timers" / "nanosleep.c").write_text("int main(void) { return 0; }\n")
    write_target(repo, "net", ["tcp_fastopen"])
    write_target(repo, "net/forwarding", ["router.sh"])
    (repo / "Makefile").write_text("VERSION = 6\n")
    return repo


@pytest.fixture
def harness_list_counter(tmp_path: Path) -> Path:
    return tmp_path / "list-invocations"


def listings(counter: Path) -> list[str]:
    return counter.read_text().splitlines() if counter.exists() else []


def kselftest_harness(counter: Path | None = None, **fields: object) -> Harness:
    values: dict[str, object] = {"kind": "Harness", "name": "kselftest", "type": "kselftest"}
    if counter is not None:
        values["list"] = (
            f"echo {{collection}} >> {shlex.quote(str(counter))};"
            " sed -n 's/^TEST_GEN_PROGS += //p' {test}/Makefile"
        )
    return Harness.model_validate({**values, **fields})


def make_group(**fields: object) -> TestGroup:
    values: dict[str, object] = {
        "kind": "TestGroup",
        "name": "selftests",
        "harness": "kselftest",
        "tests": [f"{SELFTESTS}/*"],
        **fields,
    }
    return TestGroup.model_validate(values)


def test_targets_listed_and_cached_by_their_content(
    harness_kernel_repo: Path, harness_list_counter: Path
) -> None:
    cache = MemoryEnumerationCache()
    adapter = KselftestHarness(kselftest_harness(harness_list_counter), cache=cache)
    first = commit_all(harness_kernel_repo, "selftests")
    group = make_group(exclude=[f"{SELFTESTS}/timers:nanosleep"])

    # `*` stays in its directory: net/forwarding is a target of its own, not selected.
    assert adapter.enumerate(group=group, tree=first) == (
        EnumeratedTest(f"{SELFTESTS}/net", ("tcp_fastopen",)),
        EnumeratedTest(f"{SELFTESTS}/timers", ("posix_timers",)),
    )
    assert listings(harness_list_counter) == ["net", "timers"]
    assert adapter.enumerate(group=group, tree=first) is not None
    assert listings(harness_list_counter) == ["net", "timers"]

    # A file in one target changes: only that target is listed again.
    write_target(harness_kernel_repo, "timers", ["posix_timers", "nanosleep", "rtcpie"])
    (harness_kernel_repo / "Makefile").write_text("VERSION = 7\n")  # outside any target
    second = commit_all(harness_kernel_repo, "rtcpie")
    assert adapter.enumerate(group=make_group(), tree=second) == (
        EnumeratedTest(f"{SELFTESTS}/net", ("tcp_fastopen",)),
        EnumeratedTest(f"{SELFTESTS}/timers", ("posix_timers", "nanosleep", "rtcpie")),
    )
    assert listings(harness_list_counter) == ["net", "timers", "timers"]

    # lib.mk is included by every target: all are listed again.
    (harness_kernel_repo / SELFTESTS / "lib.mk").write_text("all: $(TEST_GEN_PROGS) extra\n")
    third = commit_all(harness_kernel_repo, "lib.mk")
    adapter.enumerate(group=make_group(tests=[f"{SELFTESTS}/**"]), tree=third)
    assert listings(harness_list_counter)[3:] == ["net", "net/forwarding", "timers"]


def test_explicit_subtests_need_no_list_command(harness_kernel_repo: Path) -> None:
    tree = commit_all(harness_kernel_repo, "selftests")
    adapter = KselftestHarness(kselftest_harness(), cache=MemoryEnumerationCache())
    group = make_group(
        tests=[f"{SELFTESTS}/net/forwarding"],
        subtests={f"{SELFTESTS}/net/forwarding": ["router.sh", "mirror_gre.sh"]},
    )
    assert adapter.enumerate(group=group, tree=tree) == (
        EnumeratedTest(f"{SELFTESTS}/net/forwarding", ("router.sh", "mirror_gre.sh")),
    )
    assert tree.exports == 0
    with pytest.raises(HarnessError) as raised:
        adapter.enumerate(group=make_group(tests=[f"{SELFTESTS}/timers"]), tree=tree)
    assert raised.value.message == (
        f"no subtests for kselftest target '{SELFTESTS}/timers' of test group 'selftests'"
    )


FAKE_RUNNER = """\
#!/bin/sh
pwd
for arg in "$@"; do printf '<%s>\\n' "$arg"; done
"""


def batch_context(tmp_path: Path, **fields: object) -> BatchContext:
    kernel = tmp_path / "linux tree"
    install = kernel / SELFTESTS / "kselftest_install"
    install.mkdir(parents=True, exist_ok=True)
    runner = install / "run_kselftest.sh"
    runner.write_text(FAKE_RUNNER)
    runner.chmod(0o755)
    return BatchContext(
        test=f"{SELFTESTS}/net/forwarding",
        subtests=("router.sh", "a b; touch pwned"),
        runtime={},
        source_dir=str(kernel),
        tests_dir=str(kernel),
        output_dir=str(tmp_path / "out"),
        timeout=45,
    )


def run(command: str, cwd: Path) -> list[str]:
    completed = subprocess.run(
        ["sh", "-c", command], cwd=cwd, capture_output=True, text=True, check=True
    )
    return completed.stdout.splitlines()


def test_batch_command_runs_run_kselftest_with_collection_selectors(tmp_path: Path) -> None:
    context = batch_context(tmp_path)
    adapter = KselftestHarness(kselftest_harness(), cache=MemoryEnumerationCache())
    assert run(adapter.batch_command(context), cwd=tmp_path) == [
        f"{context.tests_dir}/{SELFTESTS}/kselftest_install",
        "<-t>",
        "<net/forwarding:router.sh>",
        "<-t>",
        "<net/forwarding:a b; touch pwned>",
    ]
    assert not list(tmp_path.rglob("pwned"))
    assert adapter.build_command() == DEFAULT_BUILD
    assert adapter.result_files(context) == ()


def test_a_run_template_gets_quoted_placeholders(tmp_path: Path) -> None:
    context = batch_context(tmp_path)
    template = f"sh {SELFTESTS}/kselftest_install/run_kselftest.sh {{selectors}} {{collection}}"
    adapter = KselftestHarness(
        kselftest_harness(run=template, build="make kselftest-all"),
        cache=MemoryEnumerationCache(),
    )
    assert run(adapter.batch_command(context), cwd=tmp_path) == [
        context.tests_dir,
        "<net/forwarding:router.sh>",
        "<net/forwarding:a b; touch pwned>",
        "<net/forwarding>",
    ]
    assert adapter.build_command() == "make kselftest-all"


KSELFTEST_OUTPUT = """\
TAP version 13
1..4
# timeout set to 45
# selftests: timers: posix_timers
# TAP version 13
# 1..2
# ok 1 Check itimer virtual... [OK]
# ok 2 Check itimer prof... [OK]
# # Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0
ok 1 selftests: timers: posix_timers
# selftests: timers: nanosleep
not ok 2 selftests: timers: nanosleep # exit=1
# selftests: timers: rtcpie
#
not ok 3 selftests: timers: rtcpie # TIMEOUT 45 seconds
# selftests: timers: set-tz
ok 4 selftests: timers: set-tz # SKIP
"""


def test_kselftest_tap_to_outcomes() -> None:
    adapter = KselftestHarness(kselftest_harness(), cache=MemoryEnumerationCache())
    expected = ["posix_timers", "nanosleep", "rtcpie", "set-tz", "mqueue-lat"]
    assert adapter.parse_results(output=KSELFTEST_OUTPUT, files={}, expected=expected) == [
        SubtestOutcome("posix_timers", PASS, None, None),
        SubtestOutcome("nanosleep", FAIL, None, "exit=1"),
        SubtestOutcome("rtcpie", TIMEOUT, None, "TIMEOUT 45 seconds"),
        SubtestOutcome("set-tz", SKIP, None, None),
        SubtestOutcome("mqueue-lat", ERROR, None, "not reported"),
    ]
    so_far = KSELFTEST_OUTPUT.split("# selftests: timers: rtcpie")[0]
    assert adapter.reported(output=so_far) == [
        SubtestOutcome("posix_timers", PASS, None, None),
        SubtestOutcome("nanosleep", FAIL, None, "exit=1"),
    ]


@pytest.mark.parametrize(
    ("line", "rewritten"),
    [
        ("ok 1 selftests: timers: posix_timers", "ok 1 posix_timers"),
        ("not ok 12 selftests: net/forwarding: router.sh # SKIP", "not ok 12 router.sh # SKIP"),
        ("# ok 1 selftests: nested: inner", "# ok 1 selftests: nested: inner"),
        ("ok 1 - posix_timers", "ok 1 - posix_timers"),
        ("okay 1 selftests: timers: x", "okay 1 selftests: timers: x"),
    ],
)
def test_runner_names_become_subtest_names(line: str, rewritten: str) -> None:
    assert runner_names_to_subtests(line) == rewritten
