"""The fstests harness: a small real fstests tree in git, and real fstests result files.

The result files in /work/shared/data are byte-for-byte copies of public fstests output (see
its README): a btrfs xunit result.xml, and a check.log, check.time and .out.bad from a FUSE run.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from reconciler.adapters.harness.base import BatchContext, SubtestOutcome
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache
from reconciler.adapters.harness.fstests import FstestsHarness
from reconciler.adapters.harness.fstests_results import (
    CHECK_LOG_FAILURE,
    NOT_RUN_WITHOUT_REASON,
    parse_check_log,
    parse_check_time,
    parse_console,
    parse_result_xml,
)
from reconciler.model.desired import EnumeratedTest
from reconciler.model.errors import HarnessError
from reconciler.model.results import Status
from reconciler.model.specs import Harness, TestGroup
from tests.test_command_harness import commit_all, git

from .shared_data import DATA

RESULT_XML = DATA / "xfstests-dash-btrfs-fstests.xml"
CHECK_LOG = DATA / "fuse-xfstests-check.log"
CHECK_TIME = DATA / "fuse-xfstests-check.time"
OUT_BAD = DATA / "fuse-xfstests-generic-035.out.bad"

PASS, FAIL, SKIP, ERROR = Status.PASS, Status.FAIL, Status.SKIP, Status.ERROR

TEST_FILE = """\
#! /bin/bash
# SPDX-License-Identifier: GPL-2.0
# FS QA Test No. {number}
#
. ./common/preamble
{begin}

_require_test
echo "Silence is golden"
status=0
exit
"""


def write_fstest(repo: Path, name: str, begin: str) -> None:
    path = repo / "tests" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEST_FILE.format(number=name.rpartition("/")[2], begin=begin))
    path.with_name(path.name + ".out").write_text(f"QA output created by {path.name}\n")


@pytest.fixture
def harness_fstests_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "xfstests-dev"
    repo.mkdir()
    git(repo, "-c", "init.defaultBranch=master", "init", "-q")
    write_fstest(repo, "generic/001", "_begin_fstest rw dir udf auto quick")
    write_fstest(repo, "generic/002", "_begin_fstest metadata udf auto quick")
    write_fstest(repo, "generic/003", "_begin_fstest auto atime # not quick: sleeps")
    write_fstest(repo, "xfs/001", "_begin_fstest auto quick \\\n\trepair")
    write_fstest(repo, "shared/032", "_begin_fstest mkfs auto quick")
    (repo / "tests" / "generic" / "Makefile").write_text("include ../../include/builddefs\n")
    (repo / "common").mkdir()
    (repo / "common" / "preamble").write_text("_begin_fstest() { :; }\n")
    (repo / "check").write_text("#!/bin/bash\n")
    return repo


@pytest.fixture
def harness_expunges(tmp_path: Path) -> Path:
    path = tmp_path / "specs" / "expunges" / "xfs.txt"
    path.parent.mkdir(parents=True)
    path.write_text(
        "# known failures on xfs, kept in the spec repo\n"
        "\n"
        "generic/002   # https://bugzilla.kernel.org/show_bug.cgi?id=1\n"
        "  xfs/999\n"
    )
    return path


def fstests_harness() -> Harness:
    return Harness.model_validate(
        {
            "kind": "Harness",
            "name": "fstests",
            "type": "fstests",
            "url": "https://git.kernel.org/pub/scm/fs/xfs/xfstests-dev.git",
            "ref": "master",
        }
    )


def make_group(**fields: object) -> TestGroup:
    values: dict[str, object] = {
        "kind": "TestGroup",
        "name": "fstests-auto",
        "harness": "fstests",
        "tests": ["*"],
        **fields,
    }
    return TestGroup.model_validate(values)


def unit(name: str, fstype: str | None = None) -> EnumeratedTest:
    match = (("fstype", fstype),) if fstype else ()
    return EnumeratedTest(name, (name,), runtime_match=match)


def test_every_test_by_default_with_runtime_match(harness_fstests_repo: Path) -> None:
    tree = commit_all(harness_fstests_repo, "fstests")
    adapter = FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache())
    assert adapter.enumerate(group=make_group(), tree=tree) == (
        unit("generic/001"),
        unit("generic/002"),
        unit("generic/003"),
        unit("shared/032"),
        unit("xfs/001", "xfs"),
    )
    # No `select`: nothing had to be read.
    assert tree.exports == 0


def test_select_groups_are_read_once_per_file_content(harness_fstests_repo: Path) -> None:
    cache = MemoryEnumerationCache()
    adapter = FstestsHarness(fstests_harness(), cache=cache)
    group = make_group(select=["quick"])
    first = commit_all(harness_fstests_repo, "fstests")

    quick = (unit("generic/001"), unit("generic/002"), unit("shared/032"), unit("xfs/001", "xfs"))
    assert adapter.enumerate(group=group, tree=first) == quick
    assert first.exports == 1
    assert adapter.enumerate(group=group, tree=first) == quick
    assert first.exports == 1  # every file's groups came from the cache
    assert adapter.enumerate(group=make_group(select=["repair", "atime"]), tree=first) == (
        unit("generic/003"),
        unit("xfs/001", "xfs"),  # its group list continues on the next line
    )

    # generic/003 becomes quick: only it is read again.
    write_fstest(harness_fstests_repo, "generic/003", "_begin_fstest auto quick atime")
    second = commit_all(harness_fstests_repo, "003 is quick now")
    misses = cache.misses
    assert adapter.enumerate(group=group, tree=second) == (
        unit("generic/001"),
        unit("generic/002"),
        unit("generic/003"),
        unit("shared/032"),
        unit("xfs/001", "xfs"),
    )
    assert cache.misses == misses + 1
    assert second.exports == 1


def test_globs_excludes_and_expunge_lists(
    harness_fstests_repo: Path, harness_expunges: Path
) -> None:
    tree = commit_all(harness_fstests_repo, "fstests")
    adapter = FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache())
    group = make_group(
        tests=["generic/*", "xfs/*"], exclude=["generic/00[3]"], expunges=[str(harness_expunges)]
    )
    assert adapter.enumerate(group=group, tree=tree) == (
        unit("generic/001"),
        unit("xfs/001", "xfs"),
    )
    assert adapter.enumerate(group=make_group(tests=["xfs/*"]), tree=tree) == (
        unit("xfs/001", "xfs"),
    )


def test_a_missing_expunge_list_is_a_harness_error(
    harness_fstests_repo: Path, tmp_path: Path
) -> None:
    tree = commit_all(harness_fstests_repo, "fstests")
    missing = tmp_path / "specs" / "expunges" / "btrfs.txt"
    with pytest.raises(HarnessError) as raised:
        FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache()).enumerate(
            group=make_group(expunges=[str(missing)]), tree=tree
        )
    assert raised.value.message == (
        f"expunge list {missing} of test group 'fstests-auto' does not exist"
    )
    assert raised.value.where == "test group 'fstests-auto'"


def test_a_glob_matching_no_test_is_a_harness_error(harness_fstests_repo: Path) -> None:
    tree = commit_all(harness_fstests_repo, "fstests")
    with pytest.raises(HarnessError) as raised:
        FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache()).enumerate(
            group=make_group(tests=["generic/*", "tests/btrfs/*"]), tree=tree
        )
    assert raised.value.message == (
        "test pattern 'tests/btrfs/*' of test group 'fstests-auto' matches no fstests test"
    )


FAKE_CHECK = """\
#!/bin/sh
pwd
echo "FSTYP=$FSTYP RESULT_BASE=$RESULT_BASE MKFS_OPTIONS=$MKFS_OPTIONS"
for arg in "$@"; do printf '<%s>\\n' "$arg"; done
"""


def batch_context(tmp_path: Path, **runtime: object) -> BatchContext:
    tests_dir = tmp_path / "xfstests dev"
    tests_dir.mkdir(exist_ok=True)
    check = tests_dir / "check"
    check.write_text(FAKE_CHECK)
    check.chmod(0o755)
    return BatchContext(
        test="generic/001",
        subtests=("generic/001",),
        runtime=runtime,
        source_dir=str(tmp_path / "linux"),
        tests_dir=str(tests_dir),
        output_dir=str(tmp_path / "out $(touch pwned)"),
        timeout=300,
    )


def run(command: str, cwd: Path) -> list[str]:
    completed = subprocess.run(
        ["sh", "-c", command], cwd=cwd, capture_output=True, text=True, check=True
    )
    return completed.stdout.splitlines()


def test_batch_command_runs_check_with_a_section(tmp_path: Path) -> None:
    context = batch_context(
        tmp_path, fstype="xfs", section="xfs_4k", mkfs_options="-m reflink=1 -b size=4k"
    )
    adapter = FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache())

    assert run(adapter.batch_command(context), cwd=tmp_path) == [
        context.tests_dir,
        f"FSTYP=xfs RESULT_BASE={context.output_dir} MKFS_OPTIONS=-m reflink=1 -b size=4k",
        "<-s>",
        "<xfs_4k>",
        "<-R>",
        "<xunit>",
        "<generic/001>",
    ]
    assert not (tmp_path / "pwned").exists()
    out = context.output_dir
    assert adapter.result_files(context) == (
        f"{out}/xfs_4k/result.xml",
        f"{out}/check.log",
        f"{out}/check.time",
        f"{out}/xfs_4k/generic/001.out.bad",
    )


def test_without_a_section_check_reports_into_result_base(tmp_path: Path) -> None:
    context = batch_context(tmp_path, fstype="btrfs")
    adapter = FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache())
    assert run(adapter.batch_command(context), cwd=tmp_path)[1:] == [
        f"FSTYP=btrfs RESULT_BASE={context.output_dir} MKFS_OPTIONS=",
        "<-R>",
        "<xunit>",
        "<generic/001>",
    ]
    assert adapter.result_files(context)[0] == f"{context.output_dir}/result.xml"


def xml_names() -> list[str]:
    return [outcome.subtest for outcome in parse_result_xml(RESULT_XML.read_bytes())]


def test_real_result_xml() -> None:
    adapter = FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache())
    expected = [*xml_names(), "btrfs/999"]
    outcomes = adapter.parse_results(
        output="", files={"/out/result.xml": RESULT_XML.read_bytes()}, expected=expected
    )
    assert len(outcomes) == 934
    assert Counter(outcome.status for outcome in outcomes) == {
        PASS: 676,
        SKIP: 248,
        FAIL: 9,
        ERROR: 1,
    }
    by_name = {outcome.subtest: outcome for outcome in outcomes}
    assert by_name["btrfs/001"] == SubtestOutcome("btrfs/001", PASS, 1.0, None)
    assert by_name["generic/003"] == SubtestOutcome("generic/003", PASS, 10.0, None)
    assert by_name["btrfs/007"] == SubtestOutcome(
        "btrfs/007", SKIP, 0.0, "Scratch device too small"
    )
    # Expunged or never run: absent from result.xml, so not passed.
    assert by_name["btrfs/999"] == SubtestOutcome("btrfs/999", ERROR, None, "not reported")
    failed = sorted(name for name, outcome in by_name.items() if outcome.status is FAIL)
    assert failed == [
        "btrfs/036",
        "btrfs/140",
        "btrfs/254",
        "btrfs/301",
        "btrfs/334",
        "generic/042",
        "generic/680",
        "generic/689",
        "generic/703",
    ]
    message = by_name["btrfs/036"].message
    assert message is not None
    assert message.splitlines()[:3] == [
        "- output mismatch (see /home/david/xfstests/results//btrfs/036.out.bad)",
        "system-err:",
        "--- tests/btrfs/036.out\t2023-10-17 20:18:43.000000000 +0000",
    ]
    assert "+get_mempolicy: Function not implemented" in message


def test_real_check_log_and_check_time() -> None:
    runs = parse_check_log(CHECK_LOG.read_text())
    assert [run.summary for run in runs] == ["Failed 18 of 580 tests", "Failed 13 of 580 tests"]
    assert [(len(run.ran), len(run.not_run), len(run.failures)) for run in runs] == [
        (580, 399, 18),
        (580, 399, 13),
    ]
    durations = parse_check_time(CHECK_TIME.read_text())
    assert len(durations) == 168
    assert durations["generic/001"] == 3.0
    # check.time times exactly the tests that passed in the last run.
    assert set(durations) == set(runs[-1].passed)


def test_check_log_is_the_fallback_without_result_xml() -> None:
    adapter = FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache())
    files = {
        "/out/check.log": CHECK_LOG.read_bytes(),
        "/out/check.time": CHECK_TIME.read_bytes(),
        "/out/generic/035.out.bad": OUT_BAD.read_bytes(),
    }
    expected = parse_check_log(CHECK_LOG.read_text())[-1].ran
    outcomes = adapter.parse_results(output="", files=files, expected=expected)
    assert len(outcomes) == 580
    assert Counter(outcome.status for outcome in outcomes) == {PASS: 168, SKIP: 399, FAIL: 13}
    by_name = {outcome.subtest: outcome for outcome in outcomes}
    assert by_name["generic/001"] == SubtestOutcome("generic/001", PASS, 3.0, None)
    assert by_name["generic/003"] == SubtestOutcome(
        "generic/003", SKIP, None, NOT_RUN_WITHOUT_REASON
    )
    assert by_name["generic/062"] == SubtestOutcome("generic/062", FAIL, None, CHECK_LOG_FAILURE)
    assert by_name["generic/035"].status is FAIL
    assert by_name["generic/035"].message == (
        f"{CHECK_LOG_FAILURE}; generic/035.out.bad:\n{OUT_BAD.read_text().strip()}"
    )
    assert all(outcome.duration is not None for outcome in outcomes if outcome.status is PASS)


def test_a_pass_in_result_xml_never_hides_a_check_log_failure() -> None:
    report = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="xfstests" tests="2">'
        b'<testcase classname="xfstests.global" name="generic/035"/>'
        b'<testcase classname="xfstests.global" name="generic/001"/></testsuite>'
    )
    adapter = FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache())
    outcomes = adapter.parse_results(
        output="",
        files={
            "/out/result.xml": report,
            "/out/check.log": CHECK_LOG.read_bytes(),
            "/out/check.time": CHECK_TIME.read_bytes(),
        },
        expected=["generic/035", "generic/001"],
    )
    assert outcomes == [
        SubtestOutcome(
            "generic/035", FAIL, None, f"{CHECK_LOG_FAILURE}, though result.xml says it passed"
        ),
        SubtestOutcome("generic/001", PASS, 3.0, None),  # the duration from check.time
    ]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuite><testcase name="generic/001"><failure message="&lol9;"/></testcase></testsuite>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuite><testcase name="generic/001"><failure message="&secret;"/></testcase></testsuite>
"""


@pytest.mark.parametrize(
    "report",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        b'<testsuite><testcase name="generic/001"></testsuite>',
        RESULT_XML.read_bytes()[:5000],
        b"",
    ],
    ids=["billion laughs", "external entity", "unclosed tag", "truncated", "empty"],
)
def test_hostile_or_broken_result_xml_is_a_harness_error(report: bytes) -> None:
    adapter = FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache())
    with pytest.raises(HarnessError) as raised:
        adapter.parse_results(output="", files={"/out/result.xml": report}, expected=[])
    assert raised.value.message.startswith("fstests result.xml is not a well-formed report: ")


def test_a_result_xml_that_is_not_a_testsuite_is_a_harness_error() -> None:
    with pytest.raises(HarnessError, match=r"has a <testsuites> root, not <testsuite>"):
        parse_result_xml(b"<testsuites><testsuite/></testsuites>")


CONSOLE = """\
FSTYP         -- xfs (non-debug)
PLATFORM      -- Linux/x86_64 vm 6.10.0
generic/001 5s ...  4s
generic/002       [not run] this test requires a valid $SCRATCH_DEV
generic/003 1s ... - output mismatch (see /out/generic/003.out.bad)
    --- tests/generic/003.out\t2024-01-01 00:00:00
    +++ /out/generic/003.out.bad
generic/004 [failed, exit status 1]- output mismatch (see /out/generic/004.out.bad)
generic/005        2s
generic/006       [expunged]
generic/007 3s ...
Ran: generic/001 generic/002 generic/003 generic/004 generic/005
"""


def test_console_verdicts_stream_and_are_the_last_resort() -> None:
    streamed = [
        SubtestOutcome("generic/001", PASS, 4.0, None),
        SubtestOutcome("generic/002", SKIP, None, "this test requires a valid $SCRATCH_DEV"),
        SubtestOutcome(
            "generic/003", FAIL, None, "- output mismatch (see /out/generic/003.out.bad)"
        ),
        SubtestOutcome(
            "generic/004",
            FAIL,
            None,
            "[failed, exit status 1]- output mismatch (see /out/generic/004.out.bad)",
        ),
        SubtestOutcome("generic/005", PASS, 2.0, None),
    ]
    assert parse_console(CONSOLE) == streamed
    adapter = FstestsHarness(fstests_harness(), cache=MemoryEnumerationCache())
    assert adapter.reported(output=CONSOLE) == streamed
    expected = ["generic/001", "generic/006", "generic/007"]
    assert adapter.parse_results(output=CONSOLE, files={}, expected=expected)[:3] == [
        streamed[0],
        SubtestOutcome("generic/006", ERROR, None, "not reported"),
        SubtestOutcome("generic/007", ERROR, None, "not reported"),
    ]
