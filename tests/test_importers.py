"""Importers on real files: the public fstests results in /work/shared/data, real git farms for
matched imports (checked by a real `reconciler plan`), and ktest CI directories made here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import brotli
import pytest

from reconciler.adapters.store.files import ResultStore
from reconciler.app.importers.identity import UNKNOWN, KnownInputs, unmatched_build_preimage
from reconciler.app.importers.ktest import result_key, split_result_key
from reconciler.cli import main as cli
from reconciler.model.results import ResultRecord, Status
from tests.test_command_harness import git

from .shared_data import DATA


def run(*argv: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stored(store: Path) -> list[ResultRecord]:
    with ResultStore(store) as results:
        return list(results.iter_results())


@pytest.fixture
def check_log_dir(tmp_path: Path) -> Path:
    results = tmp_path / "fuse-results"
    (results / "generic").mkdir(parents=True)
    shutil.copy(DATA / "fuse-xfstests-check.log", results / "check.log")
    shutil.copy(DATA / "fuse-xfstests-check.time", results / "check.time")
    shutil.copy(DATA / "fuse-xfstests-generic-035.out.bad", results / "generic/035.out.bad")
    return results


def test_real_check_log_imports_its_last_run_exactly(
    tmp_path: Path, check_log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    args = ("import", "fstests", check_log_dir, "--store", store, "--kernel-version", "5.12")
    code, out, _ = run(*args, "--fstype", "fuse", capsys=capsys)
    assert code == 0
    # check.log: `Failed 13 of 580 tests`; Ran 580 (with the 399 not run), so 168 passed.
    assert out == (
        f"{check_log_dir}: 580 results imported (168 pass, 13 fail, 399 skip)\n"
        "0 already stored (unchanged)\n"
        "0 skipped as not desired\n"
    )
    records = {record.subtest: record for record in stored(store)}
    assert len(records) == 580
    failed = records["generic/035"]
    assert failed.status is Status.FAIL
    assert failed.imported_from == "fstests:fuse-results"
    (attempt,) = failed.attempts
    assert attempt.log is not None and attempt.worker is None and attempt.finished_at is None
    with ResultStore(store) as results:
        log = results.read_log(attempt.log).decode()
    assert log.startswith("==> generic/035.out.bad <==\nQA output created by 035\n")
    assert records["generic/001"].duration == 3.0  # from check.time
    assert records["generic/001"].status is Status.PASS
    preimage = failed.preimage
    assert preimage["imported"] == "fstests"
    assert preimage["runtime"]["fstype"] == "fuse"
    assert preimage["runtime"]["mem"] == UNKNOWN
    assert preimage["timeout"] == UNKNOWN and preimage["harness"]["revision"] == UNKNOWN

    # Idempotent: importing the same files again writes nothing.
    files_before = sorted(p.name for p in (store / "results").rglob("*.json"))
    code, out, _ = run(*args, "--fstype", "fuse", capsys=capsys)
    assert (code, out) == (
        0,
        f"{check_log_dir}: 0 results imported\n"
        "580 already stored (unchanged)\n"
        "0 skipped as not desired\n",
    )
    assert sorted(p.name for p in (store / "results").rglob("*.json")) == files_before


def test_real_result_xml_imports_its_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "btrfs"
    results.mkdir()
    shutil.copy(DATA / "xfstests-dash-btrfs-fstests.xml", results / "result.xml")
    store = tmp_path / "store"
    code, out, _ = run(
        "import", "fstests", results, "--store", store, "--kernel-version", "7.2.0-rc6",
        "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["imported"] == {"pass": 676, "fail": 9, "skip": 248}
    skipped = next(r for r in stored(store) if r.subtest == "btrfs/007")
    assert (skipped.status, skipped.attempts[0].message) == (
        Status.SKIP,
        "Scratch device too small\nimported from fstests:btrfs; inputs it does not record are "
        "'unknown'",
    )


def test_unmatched_identity_changes_with_every_given_input_and_never_equals_a_plan() -> None:
    base = unmatched_build_preimage(KnownInputs(kernel_version="6.1"), kind="fstests")
    assert base["imported"] == "fstests"
    assert base["source_tree"] == base["toolchain"] == base["recipe"] == UNKNOWN
    variants = [
        KnownInputs(kernel_version="6.2"),
        KnownInputs(kernel_version="6.1", arch="arm64"),
        KnownInputs(kernel_version="6.1", config_sha256="0" * 64),
        KnownInputs(kernel_version="6.1", kernel_tree="a" * 40),
    ]
    preimages = [unmatched_build_preimage(known, kind="fstests") for known in variants]
    assert len({json.dumps(p, sort_keys=True) for p in [base, *preimages]}) == 5
    assert unmatched_build_preimage(KnownInputs(kernel_version="6.1"), kind="fstests") == base


def test_an_archival_import_must_know_the_kernel(
    tmp_path: Path, check_log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    code, _, err = run("import", "fstests", check_log_dir, "--store", store, capsys=capsys)
    assert code == 1
    assert "needs to know which kernel" in err
    assert not store.exists()


def test_a_check_log_whose_count_disagrees_is_refused(
    tmp_path: Path, check_log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = check_log_dir / "check.log"
    log.write_text(log.read_text().replace("Failed 13 of 580 tests", "Failed 12 of 580 tests"))
    store = tmp_path / "store"
    args = ("import", "fstests", check_log_dir, "--store", store, "--kernel-version", "5.12")
    code, _, err = run(*args, capsys=capsys)
    assert code == 1
    assert "says 'Failed 12 of 580 tests' but lists 13 failures among 580 tests run" in err
    assert not store.exists()


# ktest CI directories.


def ktest_result(root: Path, commit: str, key: str, status: str, *, seconds: int = 3) -> None:
    directory = root / commit / key
    directory.mkdir(parents=True)
    (directory / "status").write_text(status + "\n")
    (directory / "duration").write_text(f"{seconds}\n")
    (directory / "log.br").write_bytes(brotli.compress(f"log of {key}\n".encode()))
    full = root / commit / "full.log.br"
    if not full.exists():
        full.write_bytes(brotli.compress(b"the whole VM run\n"))
    (directory / "full_log.br").symlink_to("../full.log.br")


def test_ktest_result_keys() -> None:
    test = "tests/fs/bcachefs/single_device.ktest"
    assert result_key(test, "wipe_btrfs") == "fs.bcachefs.single_device.wipe_btrfs"
    assert split_result_key("fs.bcachefs.single_device.wipe_btrfs") == (test, "wipe_btrfs")


KTEST_STATUSES = {
    "fs.bcachefs.single_device.wipe_btrfs": ("========= PASSED wipe_btrfs in 3s", Status.PASS),
    "fs.bcachefs.single_device.mount": ("========= FAILED mount in 4s", Status.FAIL),
    "fs.bcachefs.single_device.fsck": ("========= NOTRUN fsck in 0s: no device", Status.SKIP),
    "fs.bcachefs.single_device.slow": ("========= FAILED TIMEOUT slow in 600s", Status.TIMEOUT),
    "fs.bcachefs.other.crash": ("TEST FAILED", Status.FAIL),
    "fs.bcachefs.other.vm": ("FAILED TO RUN", Status.ERROR),
}


def test_ktest_statuses_logs_and_incomplete_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, commit = tmp_path / "c", "c" * 40
    for key, (line, _) in KTEST_STATUSES.items():
        ktest_result(root, commit, key, line)
    ktest_result(root, commit, "fs.bcachefs.other.pending", "IN PROGRESS")
    store = tmp_path / "store"
    code, out, _ = run("import", "ktest", root, "--store", store, capsys=capsys)
    assert code == 0, out
    assert out.splitlines()[0] == (
        f"{root}: 6 results imported (1 pass, 2 fail, 1 skip, 1 timeout, 1 error)"
    )
    assert "1 not imported: still in progress or not started" in out
    records = {f"{r.test}:{r.subtest}": r for r in stored(store)}
    assert {k: r.status for k, r in records.items()} == {
        f"{'tests/' + k.rpartition('.')[0].replace('.', '/')}.ktest:{k.rpartition('.')[2]}": s
        for k, (_, s) in KTEST_STATUSES.items()
    }
    passed = records["tests/fs/bcachefs/single_device.ktest:wipe_btrfs"]
    assert passed.preimage["imported"] == "ktest"
    assert passed.attempts[0].duration == 3.0
    with ResultStore(store) as results:
        assert passed.attempts[0].log is not None
        assert results.read_log(passed.attempts[0].log) == (
            b"log of fs.bcachefs.single_device.wipe_btrfs\n"
        )
        message = passed.attempts[0].message or ""
        full = message.split("full log: ")[1].split("\n")[0]
        assert results.read_log(full) == b"the whole VM run\n"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("FAILED", "unrecognised ktest status 'FAILED'"),
        ("========= PASSED other in 3s", "reports subtest 'other'"),
    ],
)
def test_an_unknown_or_mismatched_ktest_status_refuses_the_import(
    tmp_path: Path, status: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    ktest_result(root, "d" * 40, "fs.a.ok", "========= PASSED ok in 1s")
    ktest_result(root, "d" * 40, "fs.a.bad", status)
    store = tmp_path / "store"
    code, _, err = run("import", "ktest", root, "--store", store, capsys=capsys)
    assert code == 1
    assert error in err
    assert not store.exists()


# Matched imports against real specs and git repositories.

FSTEST = "#! /bin/bash\n. ./common/preamble\n_begin_fstest auto quick\nexit\n"
KTEST = '#!/bin/sh\nif [ "$1" = list-tests ]; then printf "%s\\n" wipe_btrfs mount fsck; fi\n'

SPECS = """\
kind: Repo
name: linux
url: {kernel}
---
kind: Harness
name: fstests
type: fstests
url: {fstests}
ref: master
---
kind: Harness
name: ktest
type: ktest
url: {ktest}
ref: master
---
kind: TestGroup
name: quick
harness: fstests
tests: ["*"]
---
kind: TestGroup
name: bcachefs
harness: ktest
tests: ["tests/**/*.ktest"]
---
kind: Profile
name: ext4
runtime: {{fstype: ext4}}
---
kind: Profile
name: xfs
runtime: {{fstype: xfs}}
---
kind: Baseline
name: v1
repo: linux
ref: v1
test_groups: [quick, bcachefs]
profiles: [ext4]
---
kind: Branch
name: dev
repo: linux
ref: main
max_commits: 2
test_groups: [quick, bcachefs]
profiles: [ext4, xfs]
"""


def make_repo(path: Path, files: dict[str, str]) -> str:
    path.mkdir(parents=True)
    git(path, "-c", "init.defaultBranch=master", "init", "-q")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
        (path / name).chmod(0o755)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "init")
    return git(path, "rev-parse", "HEAD").strip()


@pytest.fixture
def farm(tmp_path: Path) -> Path:
    return make_farm(tmp_path)


def make_farm(tmp_path: Path) -> Path:
    """A kernel repo (tag v1, branch main one commit ahead), fstests and ktest repos, specs."""
    farm = tmp_path / "farm"
    kernel = farm / "linux"
    make_repo(kernel, {"Makefile": "all:\n"})
    git(kernel, "tag", "v1")
    (kernel / "README").write_text("dev\n")
    git(kernel, "add", "-A")
    git(kernel, "commit", "-q", "-m", "dev")
    git(kernel, "branch", "-M", "main")
    tests = {f"tests/generic/00{n}": FSTEST for n in range(1, 5)}
    make_repo(farm / "fstests", {**tests, "tests/xfs/001": FSTEST, "common/preamble": ""})
    make_repo(farm / "ktest", {"tests/fs/bcachefs/single_device.ktest": KTEST})
    (farm / "specs").mkdir()
    (farm / "specs/farm.yaml").write_text(
        SPECS.format(kernel=kernel, fstests=farm / "fstests", ktest=farm / "ktest")
    )
    return farm


def fstests_results(path: Path) -> Path:
    """One run: generic/001 passed, 002 failed, 003 not run, xfs/001 passed; 004 absent."""
    path.mkdir(parents=True)
    (path / "check.log").write_text(
        "Ran: generic/001 generic/002 generic/003 xfs/001\n"
        "Not run: generic/003\nFailures: generic/002\nFailed 1 of 4 tests\n"
    )
    (path / "check.time").write_text("generic/001 5\nxfs/001 2\n")
    return path


def plan_json(farm: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code, out, err = run("plan", "--specs", farm / "specs", "--format", "json", capsys=capsys)
    assert code == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def items(
    plan: dict[str, object], *, origin: str, profile: str, commit: str | None = None
) -> dict[str, str]:
    listed = plan["items"]
    assert isinstance(listed, list)
    return {
        item["test"]: item["reason"]
        for item in listed
        if f"{item['origin']}:{item['branch']}" == origin and item["profile"] == profile
        and commit in (None, item["commit"])
        and not item["test"].endswith(".ktest")
    }  # fmt: skip


def test_matched_fstests_import_is_reused_by_the_baseline(
    farm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = items(plan_json(farm, capsys), origin="baseline:v1", profile="ext4")
    assert set(before.values()) == {"missing"}
    results = fstests_results(tmp_path / "v1-ext4")
    specs = farm / "specs"
    args = ("import", "fstests", results, "--specs", specs, "--baseline", "v1")
    code, out, err = run(*args, "--profile", "ext4", capsys=capsys)
    assert code == 0, err
    assert out == (
        f"{results}: 3 results imported (1 pass, 1 fail, 1 skip)\n"
        "0 already stored (unchanged)\n"
        "1 skipped as not desired\n"
        "  not desired: xfs/001\n"
    )
    after = items(plan_json(farm, capsys), origin="baseline:v1", profile="ext4")
    assert after == {
        "generic/001": "reused-from-baseline",
        "generic/002": "reused-from-baseline",
        "generic/003": "reused-from-baseline",
        "generic/004": "missing",  # absent from the results: not passed, still to run
    }
    record = next(r for r in stored(farm / ".reconciler/store") if r.subtest == "generic/002")
    assert record.imported_from == "fstests:v1-ext4"
    assert "asserted by the importer to be commit" in (record.attempts[0].message or "")
    assert "imported" not in record.preimage
    assert record.preimage["runtime"] == {"fstype": "ext4"}


def test_matched_import_to_a_branch_commit_under_one_profile_only(
    farm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = fstests_results(tmp_path / "dev-xfs")
    head = git(farm / "linux", "rev-parse", "main").strip()
    args = ("import", "fstests", results, "--specs", farm / "specs", "--branch", "dev")
    code, out, err = run(*args, "--commit", head[:10], "--profile", "xfs", capsys=capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"{results}: 4 results imported (2 pass, 1 fail, 1 skip)"
    plan = plan_json(farm, capsys)
    assert items(plan, origin="branch:dev", profile="xfs", commit=head) == {
        "generic/001": "reused",
        "generic/002": "reused",
        "generic/003": "reused",
        "generic/004": "missing",
        "xfs/001": "reused",
    }
    # The same tree under another profile is another identity: nothing reused there.
    assert set(items(plan, origin="branch:dev", profile="ext4", commit=head).values()) == {
        "missing"
    }


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (("--branch", "dev", "--profile", "xfs"), "--branch dev needs --commit REV"),
        (("--branch", "dev", "--commit", "main"), "runs several profiles"),
        (("--baseline", "v1", "--profile", "xfs"), "does not run profile 'xfs'"),
        (("--baseline", "nope"), "the specs have no baseline 'nope'"),
        (("--baseline", "v1", "--commit", "main"), "pins"),
        (("--baseline", "v1", "--kernel-tree", "a" * 40), "cannot be combined"),
        (("--profile", "ext4"), "add --branch B or --baseline NAME"),
    ],
)
def test_matched_import_errors_write_nothing(
    farm: Path,
    tmp_path: Path,
    extra: tuple[str, ...],
    error: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = fstests_results(tmp_path / "r")
    store = tmp_path / "store"
    code, _, err = run(
        "import", "fstests", results, "--specs", farm / "specs", "--store", store, *extra,
        capsys=capsys,
    )  # fmt: skip
    assert code == 1
    assert error in err
    assert not (store / "results").exists()


def test_matched_ktest_import_is_reused(
    farm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = git(farm / "linux", "rev-parse", "v1").strip()
    root = tmp_path / "c"
    ktest_result(
        root, v1, "fs.bcachefs.single_device.wipe_btrfs", "========= PASSED wipe_btrfs in 3s"
    )
    ktest_result(root, v1, "fs.bcachefs.single_device.mount", "TEST FAILED")
    ktest_result(root, v1, "fs.bcachefs.single_device.fsck", "IN PROGRESS")
    ktest_result(root, v1, "fs.bcachefs.gone.old", "========= PASSED old in 1s")
    ktest_result(root, "e" * 40, "fs.bcachefs.single_device.mount", "TEST FAILED")
    args = ("import", "ktest", root, "--specs", farm / "specs", "--baseline", "v1")
    code, out, err = run(*args, capsys=capsys)
    assert code == 0, err
    assert out == (
        f"{root}: 2 results imported (1 pass, 1 fail)\n"
        "0 already stored (unchanged)\n"
        "1 skipped as not desired\n"
        "  not desired: fs.bcachefs.gone.old\n"
        "1 not imported: still in progress or not started\n"
        f"1 other commits in {root} not imported\n"
    )
    plan = plan_json(farm, capsys)
    listed = plan["items"]
    assert isinstance(listed, list)
    (unit,) = [i for i in listed if i["branch"] == "v1" and i["test"].endswith(".ktest")]
    # fsck never finished: absent, so the unit is partial and only fsck runs.
    assert (unit["reason"], unit["to_run"]) == ("partial", ["fsck"])


def test_a_multi_section_check_log_needs_a_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "sections"
    results.mkdir()
    (results / "check.log").write_text(
        "SECTION -- ext4\nRan: generic/001 generic/002\nFailures: generic/002\n"
        "Failed 1 of 2 tests\nSECTION -- xfs\nRan: generic/001\nPassed all 1 tests\n"
    )
    store = tmp_path / "store"
    args = ("import", "fstests", results, "--store", store, "--kernel-version", "6.1")
    code, _, err = run(*args, capsys=capsys)
    assert code == 1
    assert "holds runs of sections ext4, xfs" in err
    code, out, err = run(*args, "--section", "ext4", capsys=capsys)
    assert code == 0, err
    assert out.splitlines()[0] == f"{results}: 2 results imported (1 pass, 1 fail)"
    assert {r.preimage["runtime"]["section"] for r in stored(store)} == {"ext4"}
