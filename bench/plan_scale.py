"""Planning at bcachefs scale: 10 branches x 50 commits x ~13,000 subtests in ~170 test files.

That is ~6.5M desired results, against a real SQLite store index holding ~6M of them. History comes
from the git seam's in-memory twin (no git processes); enumeration from the test group's explicit
subtest lists (no harness processes); everything else is the code `reconciler plan` runs:
resolution, desired state, the index snapshot and the planner.

Printed, all measured in this run:
- cold plan: a fresh planner in a fresh process (time and peak RSS);
- incremental plan: the same planner after one new commit on one branch;
- naive baseline: the per-subtest set difference (every desired result identity hashed and
  checked against every stored identity), and the ratio to the cold plan.

Targets on a 2-core machine: cold <= 2 s, incremental <= 0.1 s, peak RSS <= 1 GiB, >= 20x faster
than the naive baseline. This is a benchmark, not a test: it reports, it does not assert.

Usage: python bench/plan_scale.py [--branches 10] [--commits 50] [--files 170] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.adapters.git_memory import MemoryGit  # noqa: E402
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache  # noqa: E402
from reconciler.adapters.store.files import ResultStore  # noqa: E402
from reconciler.app.planning import IncrementalSnapshots, Planner  # noqa: E402
from reconciler.core.identity import ResultIdentities  # noqa: E402
from reconciler.model.specs import Branch, Harness, Profile, Repo, TestGroup  # noqa: E402
from reconciler.model.specset import SpecSet  # noqa: E402

SOURCE_URL = "memory://bcachefs"
KTEST_URL = "memory://ktest"
T0 = 1_760_000_000
MISSING_NEWEST = 4
"""The newest commits of each branch the store does not hold (the work a plan finds)."""


def subtest_counts(files: int, total: int = 13_000) -> list[int]:
    """Uneven subtest counts per test file (as real .ktest files are), summing to `total`."""
    weights = [1 + (i * 37 % 97) for i in range(files)]
    scale = (total - files) / sum(weights)
    counts = [1 + int(w * scale) for w in weights]  # at least one subtest per file
    for i in range(total - sum(counts)):  # hand out what rounding down left over
        counts[i % files] += 1
    return counts


def farm(*, branches: int, commits: int, files: int) -> tuple[MemoryGit, SpecSet]:
    git = MemoryGit()
    tests = {
        f"tests/fs/bcachefs/t{i:03}.ktest": [f"subtest_{i}_{j}" for j in range(n)]
        for i, n in enumerate(subtest_counts(files))
    }
    git.commit(
        url=KTEST_URL,
        branch="master",
        subject="ktest",
        committed_at=T0,
        files={path: b"#!/bin/bash\n" + path.encode() for path in tests},
    )
    for b in range(branches):
        for c in range(commits):
            git.commit(
                url=SOURCE_URL,
                branch=f"branch-{b}",
                subject=f"branch {b} commit {c}",
                committed_at=T0 + c * 600 + b,
                files={"fs/bcachefs/super.c": f"/* branch {b} commit {c} */".encode()},
            )
    specs = SpecSet(
        spec_dir=Path("bench"),
        repos={"bcachefs": Repo(kind="Repo", name="bcachefs", url=SOURCE_URL)},
        harnesses={
            "ktest": Harness(
                kind="Harness",
                name="ktest",
                type="command",
                url=KTEST_URL,
                ref="master",
                run="build-test-kernel run {test} {subtests}",
            )
        },
        test_groups={
            "bcachefs": TestGroup(
                kind="TestGroup",
                name="bcachefs",
                harness="ktest",
                tests=["tests/fs/bcachefs/*.ktest"],
                subtests=tests,
            )
        },
        profiles={"default": Profile(kind="Profile", name="default", kconfig=["BCACHEFS_FS=y"])},
        branches={
            f"branch-{b}": Branch(
                kind="Branch",
                name=f"branch-{b}",
                repo="bcachefs",
                ref=f"branch-{b}",
                max_commits=commits,
                test_groups=["bcachefs"],
                profiles=["default"],
            )
            for b in range(branches)
        },
    )
    return git, specs


def generate(store_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    """Fill the store index with every result but the newest commits' (and half of one)."""
    git, specs = farm(branches=args.branches, commits=args.commits, files=args.files)
    started = time.perf_counter()
    planner = Planner(git=git, cache=MemoryEnumerationCache())
    desired = planner.desired(specs)
    rows = []
    for slot in desired.slots:
        if slot.position < MISSING_NEWEST:
            continue
        half = slot.position == MISSING_NEWEST and slot.origin.name == "branch-0"
        for unit in slot.units:
            identities = ResultIdentities(unit.preimage)
            subtests = unit.subtests[: len(unit.subtests) // 2] if half else unit.subtests
            rows += [
                (identities.of(s), unit.unit, slot.build.id, unit.test, s, "pass", 1.5)
                for s in subtests
            ]
    hashed = time.perf_counter()
    with ResultStore(store_dir) as store:
        store.index.bulk_insert_results(rows)
    return {
        "stored": len(rows),
        "hash_s": hashed - started,
        "insert_s": time.perf_counter() - hashed,
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(store_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    git, specs = farm(branches=args.branches, commits=args.commits, files=args.files)
    figures: dict[str, float] = {"setup_rss_mib": peak_rss_mib()}
    with ResultStore(store_dir) as store:
        planner = Planner(git=git, cache=MemoryEnumerationCache())
        snapshots = IncrementalSnapshots(store.index)

        started = time.perf_counter()
        desired = planner.desired(specs)
        t_desired = time.perf_counter()
        snapshot = snapshots.snapshot(desired)
        t_snapshot = time.perf_counter()
        cold = planner.plan(desired, snapshot)
        t_plan = time.perf_counter()
        figures |= {
            "cold_s": t_plan - started,
            "cold_desired_s": t_desired - started,
            "cold_snapshot_s": t_snapshot - t_desired,
            "cold_planner_s": t_plan - t_snapshot,
            "desired_results": sum(len(u.subtests) for s in desired.slots for u in s.units),
            "units": sum(len(s.units) for s in desired.slots),
            "results_run": cold.totals.results_run,
            "results_reused": cold.totals.results_reused,
        }

        git.commit(
            url=SOURCE_URL,
            branch="branch-0",
            subject="one more",
            committed_at=T0 + 10**6,
            files={"fs/bcachefs/super.c": b"/* the newest commit */"},
        )
        started = time.perf_counter()
        desired = planner.desired(specs)
        incremental = planner.plan(desired, snapshots.snapshot(desired))
        figures["incremental_s"] = time.perf_counter() - started
        figures["incremental_results_run"] = incremental.totals.results_run
        figures["plan_rss_mib"] = peak_rss_mib()

        # The naive way: a set of every stored identity, a set of every desired one, subtract.
        started = time.perf_counter()
        connection = sqlite3.connect(store.layout.index_path)
        stored = {row[0] for row in connection.execute("SELECT id FROM results")}
        connection.close()
        wanted = {
            ResultIdentities(unit.preimage).of(subtest)
            for slot in desired.slots
            for unit in slot.units
            for subtest in unit.subtests
        }
        missing = wanted - stored
        figures["naive_s"] = time.perf_counter() - started
        figures["naive_results_run"] = len(missing)
        figures["naive_rss_mib"] = peak_rss_mib()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=10)
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--files", type=int, default=170)
    parser.add_argument("--keep", type=Path, help="reuse (or create) the store in this directory")
    parser.add_argument("--phase", choices=("generate", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "generate":
        print(json.dumps(generate(args.store, args)))
        return
    if args.phase == "measure":
        print(json.dumps(measure(args.store, args)))
        return

    scale = [
        "--branches",
        str(args.branches),
        "--commits",
        str(args.commits),
        "--files",
        str(args.files),
    ]
    with tempfile.TemporaryDirectory(prefix="plan-scale-") as scratch:
        store = args.keep or Path(scratch) / "store"
        # Each phase in its own process, so the plan's peak RSS is not the generator's.
        if not (store / "index.sqlite").exists():
            made = json.loads(_phase("generate", store, scale))
            print(
                f"generated store: {made['stored']:,} results "
                f"(hashing {made['hash_s']:.1f} s, SQLite insert {made['insert_s']:.1f} s)"
            )
        figures = json.loads(_phase("measure", store, scale))
    report(figures)


def _phase(phase: str, store: Path, scale: list[str]) -> str:
    return subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--store", str(store), *scale],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout


def report(f: dict[str, float]) -> None:
    ratio = f["naive_s"] / f["cold_s"]
    rows = [
        ("desired results", f"{int(f['desired_results']):,} in {int(f['units']):,} units"),
        ("plan: to run / reused", f"{int(f['results_run']):,} / {int(f['results_reused']):,}"),
        (
            "cold plan",
            f"{f['cold_s']:.3f} s  (desired {f['cold_desired_s']:.3f}, "
            f"snapshot {f['cold_snapshot_s']:.3f}, planner {f['cold_planner_s']:.3f})"
            "  target <= 2 s",
        ),
        ("peak RSS after planning", f"{f['plan_rss_mib']:.0f} MiB  target <= 1024 MiB"),
        (
            "incremental plan (1 new commit)",
            f"{f['incremental_s'] * 1000:.1f} ms  target <= 100 ms"
            f"  ({int(f['incremental_results_run']):,} to run)",
        ),
        (
            "naive set difference",
            f"{f['naive_s']:.2f} s, peak RSS {f['naive_rss_mib']:.0f} MiB"
            f"  ({int(f['naive_results_run']):,} to run)",
        ),
        ("cold plan vs naive", f"{ratio:.1f}x faster  target >= 20x"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if f["naive_results_run"] != f["incremental_results_run"]:
        print("MISMATCH: the planner and the naive difference disagree on the work to run")


if __name__ == "__main__":
    main()
