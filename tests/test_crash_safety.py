"""A killed apply loses nothing and duplicates nothing.

`reconciler apply` runs as a real process on the quickstart farm and is SIGKILLed at random
points, again and again, then allowed to finish. The store it leaves must equal the store of an
uninterrupted run: the same results with the same verdicts and the same number of attempts (a
subtest run twice would show a second attempt), and the same build verdicts.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

KILLS = 20


def apply_process(farm: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--specs", str(farm / "specs")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "RECONCILER_STORE": str(farm / ".reconciler/store")},
    )


def run_to_completion(farm: Path) -> None:
    done = apply_process(farm)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err.decode()


def store_contents(farm: Path) -> dict[str, object]:
    """Every record's identity and verdicts; times, workers and logs differ run to run."""
    store = farm / ".reconciler/store"
    results = {}
    for path in sorted((store / "results").rglob("*.json")):
        record = json.loads(path.read_text())
        results[record["id"]] = (record["status"], [a["status"] for a in record["attempts"]])
    builds = {
        json.loads(p.read_text())["id"]: json.loads(p.read_text())["status"]
        for p in sorted((store / "builds").glob("*.json"))
    }
    return {"results": results, "builds": builds}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    quickstart_template: Path, tmp_path: Path
) -> None:
    import shutil

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    shutil.copytree(quickstart_template, reference, symlinks=True)
    shutil.copytree(quickstart_template, killed, symlinks=True)

    started = time.monotonic()
    run_to_completion(reference)
    full_run = time.monotonic() - started
    expected = store_contents(reference)
    assert len(expected["results"]) == 104 + 14 - 14  # the baseline's units are main's

    rng = random.Random(20261121)
    kills = 0
    while kills < KILLS:
        process = apply_process(killed)
        time.sleep(rng.uniform(0.05, max(0.2, full_run * 0.6)))
        if process.poll() is not None:
            assert process.returncode == 0, process.stderr.read().decode() if process.stderr else ""
            break  # it finished before the kill: the store is complete
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        # What a killed run left is always a consistent store, never a half-written file.
        assert not [
            p for p in (killed / ".reconciler/store").rglob("*.json") if p.stat().st_size == 0
        ]
    run_to_completion(killed)

    assert kills >= 10, f"only {kills} kills landed before the run finished"
    assert store_contents(killed) == expected
