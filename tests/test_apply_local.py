"""`reconciler apply` on the local executor: a hanging harness, failed builds, flaky tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .farms import git

HANG_SCRIPT = """\
#!/bin/sh
# `before` passes, `hang` never returns (marker {marker}), `after` passes.
ALL="before hang after"
if [ "$1" = --list ]; then for t in $ALL; do echo "$t"; done; exit 0; fi
[ $# -gt 0 ] || set -- $ALL
echo "TAP version 13"
echo "1..$#"
i=0
for t in "$@"; do
    i=$((i + 1))
    case "$t" in
    hang) sh -c 'sleep 1000' {marker} ;;
    *) echo "ok $i - $t" ;;
    esac
done
"""

FLAKY_SCRIPT = """\
#!/bin/sh
# `flaky` fails on its first run in this farm and passes afterwards.
ALL="steady flaky"
if [ "$1" = --list ]; then for t in $ALL; do echo "$t"; done; exit 0; fi
[ $# -gt 0 ] || set -- $ALL
echo "1..$#"
i=0
for t in "$@"; do
    i=$((i + 1))
    if [ "$t" = flaky ] && [ ! -e {state} ]; then
        touch {state}
        echo "not ok $i - $t"
    else
        echo "ok $i - $t"
    fi
done
"""

SPECS = """\
kind: Repo
name: project
url: {repo}
---
kind: Harness
name: tap
type: command
build: {build}
list: sh {{test}} --list
run: sh {{test}} {{subtests}}
---
kind: TestGroup
name: all
harness: tap
tests: ["tests/*.t"]
timeout: 2
confirm_failures: {confirm}
---
kind: Profile
name: default
---
kind: Branch
name: main
repo: project
ref: main
max_commits: 5
test_groups: [all]
profiles: [default]
"""


def make_farm(
    farm: Path, *, scripts: dict[str, str], build: str | None = None, confirm: int = 0
) -> Path:
    """A farm of shell test scripts; with no `build`, the harness has none (nothing to make)."""
    repo = farm / "repo"
    (repo / "tests").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for name, text in scripts.items():
        (repo / "tests" / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tests")
    (farm / "specs").mkdir()
    text = SPECS.format(repo=repo, build=json.dumps(build), confirm=confirm)
    if build is None:
        text = text.replace("build: null\n", "")
    (farm / "specs/farm.yaml").write_text(text)
    return farm


def apply(farm: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--specs", str(farm / "specs")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def results(farm: Path) -> dict[str, dict[str, object]]:
    found = {}
    for path in (farm / ".reconciler/store").glob("results/*/*.json"):
        record = json.loads(path.read_text())
        found[record["subtest"]] = record
    return found


def test_a_hanging_subtest_is_stopped_by_its_timeout_and_recorded_as_timeout(
    tmp_path: Path,
) -> None:
    marker = f"hang-marker-{tmp_path.name}"
    farm = make_farm(tmp_path / "farm", scripts={"h.t": HANG_SCRIPT.format(marker=marker)})
    done = apply(farm)
    assert done.returncode == 0, done.stderr
    stored = results(farm)
    assert {name: r["status"] for name, r in stored.items()} == {
        "before": "pass",
        "hang": "timeout",
        "after": "pass",  # never reached in the first batch: run in a fresh one
    }
    assert "timeout" in str(stored["hang"]["attempts"][0]["message"])  # type: ignore[index]
    # The hanging process was killed with its process group, not left behind.
    leftover = subprocess.run(["pgrep", "-f", marker], capture_output=True, check=False)
    assert leftover.stdout == b""


def test_a_failed_build_blocks_its_tests_and_is_not_retried(tmp_path: Path) -> None:
    farm = make_farm(
        tmp_path / "farm",
        scripts={"t.t": FLAKY_SCRIPT.format(state=tmp_path / "state")},
        build="echo compile error >&2; exit 2",
    )
    first = apply(farm)
    assert first.returncode == 0, first.stderr
    assert results(farm) == {}
    (build,) = [
        json.loads(p.read_text()) for p in (farm / ".reconciler/store").glob("builds/*.json")
    ]
    assert build["status"] == "fail"
    plan = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "plan",
            "--specs",
            str(farm / "specs"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(plan.stdout)["results"]["blocked"] == 2
    assert json.loads(plan.stdout)["builds"] == {"run": 0, "reused": 0, "blocked": 1}


def test_confirm_failures_records_every_attempt_so_flaky_is_never_passed(
    tmp_path: Path,
) -> None:
    farm = make_farm(
        tmp_path / "farm",
        scripts={"t.t": FLAKY_SCRIPT.format(state=tmp_path / "state")},
        confirm=2,
    )
    done = apply(farm)
    assert done.returncode == 0, done.stderr
    stored = results(farm)
    flaky = stored["flaky"]
    assert flaky["status"] == "fail"  # the first verdict stands
    assert [a["status"] for a in flaky["attempts"]] == ["fail", "pass", "pass"]  # type: ignore[index]
    assert [a["status"] for a in stored["steady"]["attempts"]] == ["pass"]  # type: ignore[index]


GHOST_SCRIPT = """\
#!/bin/sh
# Lists `ghost` but never reports it, as a harness that crashes before it would.
if [ "$1" = --list ]; then echo real; echo ghost; exit 0; fi
echo "1..2"
echo "ok 1 - real"
"""


def test_a_subtest_never_reported_becomes_an_error_after_three_batches_and_cools_down(
    tmp_path: Path,
) -> None:
    farm = make_farm(tmp_path / "farm", scripts={"g.t": GHOST_SCRIPT})
    done = apply(farm)
    assert done.returncode == 2, done.stderr  # results incomplete: ghost needs a retry later
    stored = results(farm)
    assert stored["real"]["status"] == "pass"
    ghost = stored["ghost"]
    assert ghost["status"] == "error"
    assert [a["status"] for a in ghost["attempts"]] == ["error"]  # type: ignore[index]
    # A second apply at once runs nothing: the unit cools down instead of looping.
    again = apply(farm)
    assert again.returncode == 2
    assert "cooling down" in again.stdout
    assert [a["status"] for a in results(farm)["ghost"]["attempts"]] == ["error"]  # type: ignore[index]
