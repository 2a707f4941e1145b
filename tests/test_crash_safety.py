"""A killed apply loses nothing and duplicates nothing.

`reconciler apply` runs as a real process and is SIGKILLed at random points, again and again,
then allowed to finish. The store it leaves must equal the store of an uninterrupted run: the
same results with the same verdicts and the same number of attempts (a subtest run twice would
show a second attempt), and the same build verdicts.

The farm is built for the purpose: a real git repo whose TAP scripts take a little time per
subtest, run on one local slot, so that the kills land inside builds, batches and result writes
rather than in interpreter start-up.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .farms import SUBTESTS, make_slow_farm

KILLS = 20
COMMITS = 6


@pytest.fixture
def slow_farm(tmp_path: Path) -> Path:
    # More work than the quickstart: even a loaded machine cannot finish it in 20 short runs.
    return make_slow_farm(tmp_path / "template", commits=COMMITS)


def apply_process(farm: Path) -> subprocess.Popen[bytes]:
    with (farm / "apply.err").open("ab") as errors:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "apply",
                "--specs",
                str(farm / "specs"),
                "--local-slots",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env={**os.environ, "RECONCILER_STORE": str(farm / ".reconciler/store")},
        )


def run_to_completion(farm: Path) -> None:
    done = apply_process(farm)
    assert done.wait(timeout=300) == 0, (farm / "apply.err").read_text()


def store_contents(farm: Path) -> dict[str, dict[str, object]]:
    """Every record's identity and verdicts; times, workers and logs differ run to run."""
    store = farm / ".reconciler/store"
    results: dict[str, object] = {}
    for path in sorted(store.glob("results/*/*.json")):
        record = json.loads(path.read_text())
        results[record["id"]] = (record["status"], [a["status"] for a in record["attempts"]])
    builds: dict[str, object] = {}
    for path in sorted(store.glob("builds/*.json")):
        record = json.loads(path.read_text())
        builds[record["id"]] = record["status"]
    return {"results": results, "builds": builds}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    slow_farm: Path, tmp_path: Path
) -> None:
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    shutil.copytree(slow_farm, reference)
    shutil.copytree(slow_farm, killed)

    started = time.monotonic()
    run_to_completion(reference)
    full_run = time.monotonic() - started
    expected = store_contents(reference)
    total = COMMITS * 2 * 2 * SUBTESTS
    assert len(expected["results"]) == total
    assert sum(s == "fail" for s, _ in expected["results"].values()) == COMMITS * 2 * 2
    assert all(len(attempts) == 1 for _, attempts in expected["results"].values())

    rng = random.Random(20261121)
    stored_after_kill: list[int] = []
    while len(stored_after_kill) < KILLS:
        process = apply_process(killed)
        time.sleep(rng.uniform(0.3, full_run / 6))
        if process.poll() is not None:
            assert process.returncode == 0, (killed / "apply.err").read_text()
            break  # it finished before the kill: the store is complete
        process.send_signal(signal.SIGKILL)
        process.wait()
        stored_after_kill.append(len(store_contents(killed)["results"]))
    run_to_completion(killed)

    print(f"full run {full_run:.2f} s; results stored after each kill: {stored_after_kill}")
    assert len(stored_after_kill) >= KILLS, stored_after_kill
    # The kills landed while work was under way, not all before it or after it.
    assert len(set(stored_after_kill)) >= 5, stored_after_kill
    assert stored_after_kill[-1] < total
    assert store_contents(killed) == expected
