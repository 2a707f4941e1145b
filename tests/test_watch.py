"""`reconciler watch` as a real process: one pass, the lock, SIGTERM mid-batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .farms import COMMITS, SUBTESTS, make_slow_farm

TOTAL = COMMITS * 2 * 2 * SUBTESTS


def watch(farm: Path, *args: str) -> subprocess.Popen[str]:
    with (farm / "watch.log").open("a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", "watch", "--specs", str(farm / "specs"), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "RECONCILER_STORE": str(farm / ".reconciler/store")},
        )


def results(farm: Path) -> list[dict[str, object]]:
    return [
        json.loads(p.read_text())
        for p in sorted((farm / ".reconciler/store").glob("results/*/*.json"))
    ]


def wait_for(condition: object, *, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_watch_once_runs_one_pass_and_logs_it(tmp_path: Path) -> None:
    farm = make_slow_farm(tmp_path / "farm")
    done = watch(farm, "--once", "--no-status")
    assert done.wait(timeout=300) == 0, (farm / "watch.log").read_text()
    assert len(results(farm)) == TOTAL
    lines = (farm / "watch.log").read_text().splitlines()
    passes = [line for line in lines if " pass " in f" {line}" or line.startswith("INFO: pass")]
    assert len(passes) == 1, lines
    assert passes[0].startswith("INFO: pass 1 (start) in ")
    assert passes[0].endswith(f": 12 batches, {TOTAL} results recorded")


def test_a_second_watch_on_the_same_checkout_fails_fast_naming_the_holder(
    tmp_path: Path,
) -> None:
    farm = make_slow_farm(tmp_path / "farm")
    first = watch(farm, "--no-status", "--interval", "600")
    try:
        wait_for(lambda: (farm / ".reconciler/watch.lock").exists() and results(farm))
        started = time.monotonic()
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "watch",
                "--specs",
                str(farm / "specs"),
                "--no-status",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "RECONCILER_STORE": str(farm / ".reconciler/store")},
        )
        assert time.monotonic() - started < 10
        assert second.returncode == 1
        assert f"another reconciler is running on this spec checkout (pid {first.pid} on " in (
            second.stderr
        )
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 0, (farm / "watch.log").read_text()


@pytest.mark.slow
def test_sigterm_mid_batch_exits_0_and_the_next_watch_finishes_the_work(
    tmp_path: Path,
) -> None:
    farm = make_slow_farm(tmp_path / "farm")
    first = watch(farm, "--no-status", "--local-slots", "1")
    wait_for(lambda: 0 < len(results(farm)) < TOTAL // 2)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 0, (farm / "watch.log").read_text()
    stopped_at = len(results(farm))
    assert stopped_at < TOTAL
    assert "stopping: no new batches" in (farm / "watch.log").read_text()

    # Consistent: the store verifies and the journal holds no lease.
    verify = subprocess.run(
        [sys.executable, "-m", "reconciler", "store", "verify", "--specs", str(farm / "specs")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "RECONCILER_STORE": str(farm / ".reconciler/store")},
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    from reconciler.adapters.journal import read_leases

    assert read_leases(farm / ".reconciler/store.journal.sqlite") == []

    second = watch(farm, "--once", "--no-status")
    assert second.wait(timeout=300) == 0, (farm / "watch.log").read_text()
    stored = results(farm)
    assert len(stored) == TOTAL
    assert [r["id"] for r in stored if len(r["attempts"]) != 1] == []  # type: ignore[arg-type]


def test_a_branch_git_cannot_resolve_is_written_as_stalled_and_once_exits_1(
    tmp_path: Path,
) -> None:
    from .farms import git

    farm = make_slow_farm(tmp_path / "farm")
    specs_file = farm / "specs/farm.yaml"
    specs_file.write_text(specs_file.read_text().replace("ref: main", "ref: no-such-branch"))
    (farm / ".gitignore").write_text(".reconciler/\nrepo/\nwatch.log\n")
    git(farm, "init", "-q", "-b", "main")
    git(farm, "add", ".gitignore", "specs")
    git(farm, "commit", "-q", "-m", "specs")
    done = watch(farm, "--once", "--host-id", "h1")
    assert done.wait(timeout=120) == 1, (farm / "watch.log").read_text()
    shown = subprocess.run(
        ["git", "-C", str(farm), "show", "reconciler/status:h1/branches/main.json"],
        capture_output=True,
        text=True,
        check=True,
    )
    status = json.loads(shown.stdout)
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Ready", "False", "ResolutionFailed"),
        ("Reconciling", "False", "ResolutionFailed"),
        ("Stalled", "True", "ResolutionFailed"),
    ]
    assert "no-such-branch" in status["conditions"][2]["message"]


def test_watch_regenerates_only_the_dashboard_files_that_changed(tmp_path: Path) -> None:
    farm = make_slow_farm(tmp_path / "farm")
    site = tmp_path / "site"
    first = watch(farm, "--once", "--no-status", "--dashboard", str(site))
    assert first.wait(timeout=300) == 0, (farm / "watch.log").read_text()
    assert (site / "index.html").exists()
    index_mtime = (site / "index.html").stat().st_mtime_ns
    second = watch(farm, "--once", "--no-status", "--dashboard", str(site))
    assert second.wait(timeout=300) == 0, (farm / "watch.log").read_text()
    lines = [line for line in (farm / "watch.log").read_text().splitlines() if "pass 1" in line]
    assert "dashboard: 0 files changed" not in lines[0]
    assert lines[1].endswith("0 batches, 0 results recorded; dashboard: 0 files changed")
    assert (site / "index.html").stat().st_mtime_ns == index_mtime
