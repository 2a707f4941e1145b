"""The GitOps loop end to end: a push to a tracked branch's remote is tested by `watch` and its
status appears on the spec repo's remote status branch, read back with git."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .farms import SUBTESTS, git, make_slow_farm

INTERVAL = 30.0
FETCH_INTERVAL = 0.5


def git_out(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def status_of(remote: Path, host: str, branch: str) -> dict[str, object] | None:
    shown = subprocess.run(
        ["git", "-C", str(remote), "show", f"reconciler/status:{host}/branches/{branch}.json"],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(shown.stdout) if shown.returncode == 0 else None


@pytest.mark.slow
def test_a_push_is_tested_within_one_interval_and_status_reaches_the_remote(
    tmp_path: Path,
) -> None:
    farm = make_slow_farm(tmp_path / "farm")
    source_remote = tmp_path / "linux.git"
    git(tmp_path, "clone", "-q", "--bare", str(farm / "repo"), str(source_remote))
    specs_file = farm / "specs/farm.yaml"
    specs_file.write_text(specs_file.read_text().replace(str(farm / "repo"), str(source_remote)))
    # The farm directory is the spec repo, with its own remote for the status branch.
    spec_remote = tmp_path / "specs.git"
    git(tmp_path, "init", "-q", "--bare", str(spec_remote))
    (farm / ".gitignore").write_text(".reconciler/\nrepo/\nwatch.log\n")
    git(farm, "init", "-q", "-b", "main")
    git(farm, "add", ".gitignore", "specs")
    git(farm, "commit", "-q", "-m", "specs")
    git(farm, "remote", "add", "origin", str(spec_remote))
    git(farm, "push", "-q", "origin", "main")

    with (farm / "watch.log").open("w") as log:
        watcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "watch",
                "--specs",
                str(farm / "specs"),
                "--interval",
                str(INTERVAL),
                "--fetch-interval",
                str(FETCH_INTERVAL),
                "--host-id",
                "farm-a",
                "--local-slots",
                "2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RECONCILER_STORE": str(farm / ".reconciler/store")},
        )
    try:
        deadline = time.monotonic() + 180
        while (first := status_of(spec_remote, "farm-a", "main")) is None:
            assert watcher.poll() is None, (farm / "watch.log").read_text()
            assert time.monotonic() < deadline, (farm / "watch.log").read_text()
            time.sleep(0.1)
        assert [c["type"] + "=" + c["status"] for c in first["conditions"]] == [  # type: ignore[index, union-attr]
            "Ready=True",
            "Reconciling=False",
            "Stalled=False",
        ]

        # A developer pushes a commit to the tracked branch.
        work = tmp_path / "work"
        git(tmp_path, "clone", "-q", str(source_remote), str(work))
        (work / "VERSION").write_text("pushed\n")
        git(work, "commit", "-q", "-am", "a pushed commit")
        git(work, "push", "-q", "origin", "main")
        pushed = git_out(work, "rev-parse", "HEAD").strip()
        pushed_at = time.monotonic()

        while True:
            status = status_of(spec_remote, "farm-a", "main")
            commits = status["commits"] if status else []  # type: ignore[index]
            if commits and commits[0]["commit"] == pushed:  # type: ignore[index]
                break
            assert watcher.poll() is None, (farm / "watch.log").read_text()
            assert time.monotonic() - pushed_at < INTERVAL, "not tested within one interval"
            time.sleep(0.1)
        newest = commits[0]  # type: ignore[index]
        assert newest["subject"] == "a pushed commit"
        per_profile = {profile: data["counts"] for profile, data in newest["profiles"].items()}
        expected = {
            "pass": 2 * (SUBTESTS - 1),
            "fail": 2,
            "skip": 0,
            "timeout": 0,
            "error": 0,
            "pending": 0,
            "blocked": 0,
        }
        assert per_profile == {"default": expected, "other": expected}
        log_text = (farm / "watch.log").read_text()
        assert "(new commits on main" in log_text
    finally:
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=120) == 0, (farm / "watch.log").read_text()
    # The status commits are the reconciler's; the user's branch is untouched.
    assert git_out(spec_remote, "log", "--format=%s", "main").splitlines() == ["specs"]
    assert git_out(spec_remote, "log", "-1", "--format=%an <%ae>", "reconciler/status") == (
        "kernel-reconciler <reconciler@farm-a>\n"
    )
