"""kdevops results archives: real tarballs built here from the public fstests files, hostile
ones too, and the commit-message summary they are checked against."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from reconciler.adapters.store.files import ResultStore
from reconciler.app.importers.summary import SectionCounts, parse_summary
from reconciler.cli import main as cli
from tests.test_importers import make_farm

from .shared_data import DATA

KERNEL = "7.2.0-rc6"
XML = (DATA / "xfstests-dash-btrfs-fstests.xml").read_bytes()
CHECK_LOG = (DATA / "fuse-xfstests-check.log").read_bytes()
CHECK_TIME = (DATA / "fuse-xfstests-check.time").read_bytes()
OUT_BAD = (DATA / "fuse-xfstests-generic-035.out.bad").read_bytes()

GOOD = {
    f"{KERNEL}/btrfs_default/result.xml": XML,
    f"{KERNEL}/fuse/check.log": CHECK_LOG,
    f"{KERNEL}/fuse/check.time": CHECK_TIME,
    f"{KERNEL}/fuse/generic/035.out.bad": OUT_BAD,
    f"{KERNEL}/fuse/generic/035.full": b"full output\n",
}

FUSE_FAILURES = (
    "generic/035 generic/062 generic/080 generic/093 generic/099 generic/215 generic/285 "
    "generic/319 generic/426 generic/444 generic/467 generic/477 generic/523"
)
BTRFS_FAILURES = (
    "btrfs/036 btrfs/140 btrfs/254 btrfs/301 btrfs/334 generic/042 generic/680 generic/689 "
    "generic/703"
)


def summary(*, fuse_failures: int = 13) -> str:
    wrapped = FUSE_FAILURES.replace(" generic/319", "\n    generic/319")
    return (
        "fstests: results for 7.2.0-rc6\n\n"
        f"KERNEL:    {KERNEL}\nCPUS:      8\n\n"
        "btrfs_default: 933 tests, 9 failures, 248 skipped, 1157 seconds\n"
        f"  Failures: {BTRFS_FAILURES}\n"
        f"fuse: 580 tests, {fuse_failures} failures, 399 skipped, 900 seconds\n"
        f"  Failures: {wrapped}\n"
        f"Totals: 1513 tests, 647 skipped, {9 + fuse_failures} failures, 0 errors, 2057s\n"
    )


def make_archive(
    path: Path,
    files: dict[str, bytes],
    *,
    mode: str = "w:gz",
    extra: tuple[tarfile.TarInfo, ...] = (),
) -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info)
    return path


def run(*argv: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def import_archive(
    archive: Path, store: Path, *extra: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    return run("import", "kdevops-archive", archive, "--store", store, *extra, capsys=capsys)


@pytest.mark.parametrize(
    ("suffix", "mode"), [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.xz", "w:xz")]
)
def test_archive_imports_each_kernel_and_section(
    tmp_path: Path, suffix: str, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_archive(tmp_path / f"results{suffix}", GOOD, mode=mode)
    store = tmp_path / "store"
    code, out, err = import_archive(archive, store, "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["imported"] == {"pass": 676 + 168, "fail": 9 + 13, "skip": 248 + 399}
    with ResultStore(store) as results:
        records = list(results.iter_results())
        by_section = {r.preimage["runtime"]["section"] for r in records}
        assert by_section == {"btrfs_default", "fuse"}
        assert {r.preimage["imported"] for r in records} == {"kdevops"}
        build = results.get_build(records[0].build)
        assert build is not None and build.preimage["kernel_version"] == KERNEL
        failed = next(
            r
            for r in records
            if r.subtest == "generic/035" and r.preimage["runtime"]["section"] == "fuse"
        )
        assert failed.attempts[0].log is not None
        log = results.read_log(failed.attempts[0].log).decode()
    assert "==> generic/035.out.bad <==" in log and "==> generic/035.full <==\nfull output" in log


def test_summary_cross_check_passes_and_reimport_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_archive(tmp_path / "results.tar.gz", GOOD)
    (tmp_path / "msg").write_text(summary())
    store = tmp_path / "store"
    code, out, err = import_archive(
        archive, store, "--summary", str(tmp_path / "msg"), capsys=capsys
    )
    assert code == 0, err
    assert out.splitlines()[0] == f"{archive}: 1513 results imported (844 pass, 22 fail, 647 skip)"
    code, out, _ = import_archive(archive, store, "--commit-message", summary(), capsys=capsys)
    assert (code, out.splitlines()[:2]) == (
        0,
        [f"{archive}: 0 results imported", "1513 already stored (unchanged)"],
    )


def test_a_summary_mismatch_imports_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_archive(tmp_path / "results.tar.gz", GOOD)
    store = tmp_path / "store"
    code, _, err = import_archive(
        archive, store, "--commit-message", summary(fuse_failures=14), capsys=capsys
    )
    assert code == 1
    assert "fuse: summary says 14 failures, the archive has 13" in err
    assert "Totals: summary says 23 failures, the archive has 22" in err
    assert not store.exists()


def test_the_summary_parser_reads_wrapped_failure_lists() -> None:
    parsed = parse_summary(summary())
    assert parsed.kernel == KERNEL
    assert parsed.sections["fuse"] == SectionCounts(580, 13, 399, frozenset(FUSE_FAILURES.split()))
    assert parsed.totals == SectionCounts(1513, 22, 647)


def link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info


HOSTILE: dict[str, tuple[dict[str, bytes], tuple[tarfile.TarInfo, ...], str]] = {
    "dotdot": ({**GOOD, f"{KERNEL}/fuse/../../../x": b"x"}, (), "leaves the archive"),
    "absolute": ({**GOOD, "/etc/cron.d/x": b"x"}, (), "is absolute or leaves the archive"),
    "symlink": (
        GOOD,
        (link(f"{KERNEL}/fuse/generic/001.full", "../../../../etc/passwd"),),
        "points outside",
    ),
    "absolute symlink": (GOOD, (link(f"{KERNEL}/fuse/x.full", "/etc/passwd"),), "points outside"),
    "hardlink": (
        GOOD,
        (link(f"{KERNEL}/fuse/generic/002.full", "../x", hard=True),),
        "points outside",
    ),
    "device": (GOOD, (device(f"{KERNEL}/fuse/generic/003.full"),), "not a regular file"),
    "top-level file": ({**GOOD, "README": b"x"}, (), "outside <kernel>/<section>/"),
    "kernel-level file": ({**GOOD, f"{KERNEL}/notes.txt": b"x"}, (), "outside <kernel>/<section>/"),
    "no results": (
        {f"{KERNEL}/ext4/generic/001.full": b"x"},
        (),
        "neither result.xml nor check.log",
    ),
    "twice": ({}, (), "twice"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_or_malformed_archives_are_refused_whole(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files, extra, error = HOSTILE[case]
    archive = tmp_path / "bad.tar.gz"
    make_archive(archive, files, extra=extra)
    if case == "twice":
        make_archive(archive, GOOD, extra=(tarfile.TarInfo(f"{KERNEL}/fuse/check.log"),))
    store = tmp_path / "store"
    code, _, err = import_archive(archive, store, capsys=capsys)
    assert code == 1, err
    assert error in err
    assert not store.exists()  # nothing imported, not even the good sections
    assert not (tmp_path / "etc").exists() and not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize(("suffix", "mode"), [(".tar", "w"), (".tar.gz", "w:gz")])
def test_truncated_archives_are_refused(
    tmp_path: Path, suffix: str, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_archive(tmp_path / f"cut{suffix}", GOOD, mode=mode)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])
    store = tmp_path / "store"
    code, _, err = import_archive(archive, store, capsys=capsys)
    assert code == 1
    assert "is not a readable tar archive" in err
    assert not store.exists()


def test_zstd_and_missing_archives_are_user_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    (tmp_path / "a.tar.zst").write_bytes(b"(\xb5/\xfd")
    code, _, err = import_archive(tmp_path / "a.tar.zst", store, capsys=capsys)
    assert (code, "decompress first" in err) == (1, True)
    code, _, err = import_archive(tmp_path / "none.tar", store, capsys=capsys)
    assert (code, "does not exist" in err) == (1, True)


def test_a_matched_archive_section_is_reused_by_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    farm = make_farm(tmp_path)
    run_files = {
        f"{KERNEL}/ext4_4k/check.log": b"Ran: generic/001 generic/002 generic/003 generic/004\n"
        b"Failures: generic/004\nFailed 1 of 4 tests\n",
        f"{KERNEL}/xfs_crc/check.log": b"Ran: xfs/001\nPassed all 1 tests\n",
    }
    archive = make_archive(tmp_path / "kdevops.tar.xz", run_files, mode="w:xz")
    base = ("--specs", str(farm / "specs"), "--baseline", "v1")
    code, _, err = import_archive(archive, farm / ".reconciler/store", *base, capsys=capsys)
    assert code == 1
    assert "holds 0 runs" not in err and "select one with --kernel-version and --section" in err
    code, out, err = import_archive(
        archive, farm / ".reconciler/store", *base, "--section", "ext4_4k", capsys=capsys
    )
    assert code == 0, err
    assert out.splitlines()[0] == f"{archive}: 4 results imported (3 pass, 1 fail)"
    code, out, err = run("plan", "--specs", farm / "specs", "--format", "json", capsys=capsys)
    assert code == 0, err
    reasons = {
        item["test"]: item["reason"]
        for item in json.loads(out)["items"]
        if item["branch"] == "v1" and item["harness"] == "fstests"
    }
    assert set(reasons.values()) == {"reused-from-baseline"}


def test_an_unwritable_store_is_an_infrastructure_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = make_archive(tmp_path / "results.tar.gz", GOOD)
    store = tmp_path / "store"
    store.write_text("not a directory\n")
    code, _, err = import_archive(archive, store, capsys=capsys)
    assert code == 3, err
