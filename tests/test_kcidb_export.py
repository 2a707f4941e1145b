"""`reconciler export kcidb`: the status catalogue, and a real farm's report checked by
kcidb-io's own schema validator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kcidb_io
import pytest

from reconciler.app.kcidb import KcidbOptions, kcidb_test_path, public_repository_url
from reconciler.cli.main import main
from reconciler.model.errors import UserError
from reconciler.model.kcidb import (
    KCIDB_MAJOR,
    KCIDB_MINOR,
    KCIDB_STATUS,
    KcidbStatus,
    kcidb_build_status,
)
from reconciler.model.results import BuildStatus, Status
from tests.dashboard_farm import FAILING_COMMIT

SCHEMA = kcidb_io.schema.V5_3


def test_the_status_table_maps_every_status_to_a_kcidb_status() -> None:
    assert dict(KCIDB_STATUS) == {
        Status.PASS: KcidbStatus.PASS,
        Status.FAIL: KcidbStatus.FAIL,
        Status.SKIP: KcidbStatus.SKIP,
        Status.TIMEOUT: KcidbStatus.FAIL,
        Status.ERROR: KcidbStatus.ERROR,
    }
    assert {kcidb_build_status(s) for s in BuildStatus} == {
        KcidbStatus.PASS,
        KcidbStatus.FAIL,
        KcidbStatus.ERROR,
    }
    # Our enum is KCIDB's, exactly, and the version we write is the one we validate against.
    assert [s.value for s in KcidbStatus] == SCHEMA.json["$defs"]["status"]["enum"]
    assert (SCHEMA.major, SCHEMA.minor) == (KCIDB_MAJOR, KCIDB_MINOR)


@pytest.mark.parametrize(
    ("test", "subtest", "path"),
    [
        ("tests/arith.t", "subtract", "tests.arith.t.subtract"),
        ("generic/001", "generic/001", "generic.001.generic.001"),
        ("net", "ip link: add & del", "net.ip_link.add_del"),
    ],
)
def test_test_paths_follow_kcidb_conventions(test: str, subtest: str, path: str) -> None:
    assert kcidb_test_path(test, subtest) == path
    assert SCHEMA.path_re.match(path)


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("https://user:token@git.kernel.org/pub/scm/x.git", "https://git.kernel.org/pub/scm/x.git"),
        ("https://git.example.org:8443/x.git", "https://git.example.org:8443/x.git"),
        ("git@github.com:torvalds/linux.git", None),
        ("ssh://git@example.org/x.git", None),
        ("../examples/quickstart/repo", None),
    ],
)
def test_repository_urls_lose_credentials_and_only_https_is_kept(
    url: str, public: str | None
) -> None:
    assert public_repository_url(url) == public


def test_an_origin_kcidb_would_refuse_is_a_user_error() -> None:
    with pytest.raises(UserError, match="origin"):
        KcidbOptions(origin="My Farm")


def test_the_quickstart_report_is_valid_kcidb(
    quickstart: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--specs", "specs"],
        cwd=quickstart,
        check=True,
        capture_output=True,
    )
    out = quickstart / "kcidb.json"
    argv = ["export", "kcidb", "--specs", str(quickstart / "specs"), "--no-fetch"]
    argv += ["--origin", "farm", "--out", str(out), "--log-url-base", "https://ci.example.org/d/"]
    assert main(argv) == 0
    assert (
        capsys.readouterr().out == f"{out}: wrote KCIDB 5.3 (6 checkouts, 12 builds, 104 tests)\n"
    )
    report = json.loads(out.read_text())
    SCHEMA.validate_exactly(report)
    assert report["version"] == {"major": 5, "minor": 3}

    checkout = next(c for c in report["checkouts"] if c["git_commit_hash"] == FAILING_COMMIT)
    assert checkout["id"] == f"farm:{FAILING_COMMIT}"
    assert checkout["git_repository_branch"] == "main"
    assert "git_repository_url" not in checkout  # a local path says nothing to KCIDB
    builds = {b["id"]: b for b in report["builds"] if b["checkout_id"] == checkout["id"]}
    assert sorted(b["config_name"] for b in builds.values()) == ["debug", "default"]
    # The compiler is the concrete one the build identity holds, not the profile's name.
    gcc = subprocess.run(
        ["gcc", "--version"],
        capture_output=True,
        text=True,
        check=True,
        env={"LC_ALL": "C", "PATH": os.environ["PATH"]},
    ).stdout.splitlines()[0]
    assert {(b["architecture"], b["compiler"], b["status"]) for b in builds.values()} == {
        ("x86_64", gcc, "PASS")
    }
    failed = [t for t in report["tests"] if t["build_id"] in builds and t["status"] != "PASS"]
    assert [(t["path"], t["status"], t["misc"]["status"]) for t in failed] == [
        ("tests.arith.t.subtract", "FAIL", "fail"),
        ("tests.arith.t.subtract", "FAIL", "fail"),
    ]
    result_id = failed[0]["id"].removeprefix("farm:")
    assert failed[0]["log_url"] == f"https://ci.example.org/d/logs/{result_id}.txt"
    assert all(t["id"].startswith("farm:") and "start_time" in t for t in report["tests"])

    # Stdout by default, the same report.
    assert main(argv[:-6]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["tests"]) == 104
    SCHEMA.validate_exactly(printed)

    # v1.0 is also in main's window: one checkout, named by the tag, listing both origins.
    (baseline,) = [c for c in report["checkouts"] if "git_commit_name" in c]
    assert baseline["git_commit_name"] == "v1.0"
    assert baseline["misc"]["origins"] == ["main", "baseline:v1.0"]
