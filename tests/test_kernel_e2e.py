"""A real kernel, end to end: the kernel example at reduced scale, through the real CLI.

Debian's linux-source-6.1 imported by `examples/kernel/make-repos.sh` (v6.1 plus the
hostname-work patches), one profile, the branch's two newest commits (the break and the fix)
and the v6.1 baseline: three kernels built by the `kbuild` recipe in one reused object dir (one
full build, two incremental ones), each booted under QEMU (TCG) with the in-VM tests. On the
way the reconciler is SIGKILLed once during a build and once during a boot; afterwards nothing
of it may survive (no make, no QEMU), and the restarted apply must finish with nothing lost.
Then: the regression found by `compare` against the baseline, the fix clean, the builds'
image and config hashes, and a reconcile that schedules nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.adapters.store.files import ResultStore

from .kernel_tree import EXAMPLE, kernel_example_repos

SUBTESTS = {
    "uts.t": ("sysname", "release", "hostname-roundtrip", "hostname-long"),
    "ext2.t": ("mkfs", "mount", "write-read", "remount", "unmount"),
    "smoke.ktest": ("proc-mounted", "sysfs-mounted", "devtmpfs", "kvm"),
}
BROKEN = {"hostname-roundtrip", "hostname-long"}


def reduced_specs(repos: Path, spec_dir: Path) -> None:
    """The example's spec set with one profile and the branch's two newest commits."""
    text = (EXAMPLE / "specs/kernel.yaml").read_text()
    for old, new in [
        ("url: ../repos/", f"url: {repos}/"),
        ("max_commits: 3", "max_commits: 2"),
        ("profiles: [tiny, tiny-o2]", "profiles: [tiny]"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.yaml").write_text(text)


def reconciler(
    spec_dir: Path, *args: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", *args, "--specs", str(spec_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def processes_under(path: Path, *, named: str) -> list[int]:
    """Pids whose command line mentions `path` and whose executable name contains `named`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if str(path) in cmdline and named in comm:
            found.append(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def kill_apply_when(spec_dir: Path, appears: Callable[[], bool], *, what: str) -> None:
    """Start `apply`, SIGKILL it as soon as `appears()` (a build or a boot has started)."""
    errors = (spec_dir.parent / "apply.err").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--specs", str(spec_dir)],
        stdout=subprocess.DEVNULL,
        stderr=errors,
    )
    try:
        wait_for(lambda: appears() or process.poll() is not None, seconds=600, what=what)
        assert process.poll() is None, f"apply ended before {what}"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        errors.close()
        if process.poll() is None:
            process.kill()


def stored(state: Path) -> tuple[dict[str, dict[str, object]], dict[str, dict[str, object]]]:
    builds = {
        record["id"]: record
        for record in (json.loads(p.read_text()) for p in (state / "store").glob("builds/*.json"))
    }
    results = {
        record["id"]: record
        for record in (
            json.loads(p.read_text()) for p in (state / "store").glob("results/*/*.json")
        )
    }
    return builds, results


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_kernel_built_booted_tested_regression_found_and_nothing_left(tmp_path: Path) -> None:
    repos = kernel_example_repos()
    spec_dir = tmp_path / "farm/specs"
    reduced_specs(repos, spec_dir)
    state = tmp_path / "farm/.reconciler"
    work = state / "work"

    plan = reconciler(spec_dir, "plan", "--format", "json")
    planned = json.loads(plan.stdout)
    assert planned["builds"]["run"] == 3
    assert planned["results"]["run"] == 3 * sum(len(s) for s in SUBTESTS.values())
    assert {o["name"]: o["builds_run"] for o in planned["origins"]} == {
        "v6.1": 1,
        "hostname-work": 2,
    }

    # SIGKILL during the first (full) build, then during a boot: nothing of either survives.
    kill_apply_when(
        spec_dir,
        lambda: bool(processes_under(work, named="make")),
        what="the first kernel build to start",
    )
    wait_for(
        lambda: not processes_under(work, named="make") and not processes_under(work, named="cc1"),
        seconds=120,
        what="the orphaned build to stop",
    )
    kill_apply_when(
        spec_dir,
        lambda: bool(processes_under(work, named="qemu")),
        what="the first VM to boot",
    )
    wait_for(
        lambda: not processes_under(work, named="qemu"),
        seconds=15,
        what="QEMU to stop after its reconciler was killed",
    )

    reconciler(spec_dir, "apply", timeout=1200)
    assert not processes_under(work, named="qemu")

    builds, results = stored(state)
    assert len(builds) == 3 and {b["status"] for b in builds.values()} == {"pass"}
    # One config for every commit (the fragment did not change), three different kernels.
    assert len({b["resolved_config_hash"] for b in builds.values()}) == 1
    assert len({b["image_hash"] for b in builds.values()}) == 3
    compiled = sorted(_compiled_files(state, b["log"]) for b in builds.values())
    # The baseline was built from nothing; each commit after it recompiled what it touched.
    assert compiled[-1] > 300, compiled
    assert compiled[0] < 20 and compiled[1] < 20, compiled

    assert len(results) == 3 * sum(len(s) for s in SUBTESTS.values())
    by_commit: dict[str, dict[str, str]] = {}
    for record in results.values():
        assert len(record["attempts"]) == 1, record  # killed mid-batch, never run twice
        by_commit.setdefault(record["build"], {})[record["subtest"]] = record["status"]
    failing = {
        build: {s for s, status in statuses.items() if status not in {"pass", "skip"}}
        for build, statuses in by_commit.items()
    }
    assert sorted(map(sorted, failing.values())) == [[], [], sorted(BROKEN)], failing

    broken = _rev(repos, "hostname-work~1")
    regression = reconciler(
        spec_dir, "compare", "baseline:v6.1", f"hostname-work@{broken}", check=False
    )
    assert regression.returncode == 1, regression.stdout + regression.stderr
    for name in BROKEN:
        assert name in regression.stdout
    fixed = reconciler(spec_dir, "compare", "baseline:v6.1", "hostname-work", check=False)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr

    log = reconciler(spec_dir, "log", "hostname-work").stdout
    assert broken[:7] in log

    # Nothing left: the plan is empty and a second apply builds and boots nothing.
    assert reconciler(spec_dir, "plan", "--detailed-exitcode", check=False).returncode == 0
    again = reconciler(spec_dir, "apply")
    assert "Applied: 0 batches in 0 rounds, 0 results recorded." in again.stdout, again.stdout
    assert stored(state) == (builds, results)


def _compiled_files(state: Path, log_hash: str) -> int:
    log = _read_log(state, log_hash)
    return len(re.findall(r"^\s+CC\s", log, flags=re.MULTILINE))


def _read_log(state: Path, log_hash: str) -> str:
    with ResultStore(state / "store") as store:
        return store.read_log(log_hash).decode(errors="replace")


def _rev(repos: Path, rev: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={repos / 'linux.git'}", "rev-parse", "--short=12", rev],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_the_example_spec_set_is_valid(tmp_path: Path) -> None:
    """The full example (both profiles, three commits) validates and plans as documented."""
    spec_dir = tmp_path / "specs"
    shutil.copytree(EXAMPLE / "specs", spec_dir)
    done = reconciler(spec_dir, "validate")
    assert "2 profiles" in done.stdout and "3 test groups" in done.stdout
