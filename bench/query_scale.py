"""Query commands at bcachefs scale: `log` over 500 commits and `show` of a 13,000-test commit.

The store is bench/plan_scale.py's synthetic farm (10 branches x 50 commits x ~13,000 subtests
in ~170 test files; ~6M results in the index, the newest commits missing). The queries are
the code `reconciler log` / `reconciler show` run (`app.queries.StoreQueries`) over the desired
state `Planner.desired` builds from the in-memory git twin; the desired state is timed apart,
since every query shares it and it is the planner's figure, not the query's.

BASELINE, measured in the same run: what a store without the index's per-unit aggregates has to
do, i.e. walk a commit's results by reading their record files (`results/<2 hex>/<id>.json`,
written here for `--baseline-commits` commits of one branch, parsed with the record model) and
count statuses and durations. `log` over N commits costs N such walks; the figure for 50 and
500 commits is the measured per-commit walk times N (writing 6.5M files to measure it directly
would take longer than the rest of the benchmark together), and is labelled as such.

Targets on a 2-core machine: log of 500 commits <= 0.2 s, show of a 13,000-test commit <= 0.1 s.
Ingest rate is another benchmark's business (bench/ingest_scale.py, another engineer's).

Usage: python bench/query_scale.py [--full] [--keep DIR] [--repeat 5] [--baseline-commits 3]
(default: 2 branches x 50 commits, ~1.2M results; --full: 10 x 50, the figures README records)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from plan_scale import MISSING_NEWEST, farm, generate  # noqa: E402

from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache  # noqa: E402
from reconciler.adapters.store.files import ResultStore  # noqa: E402
from reconciler.app.planning import Planner  # noqa: E402
from reconciler.app.queries import StoreQueries  # noqa: E402
from reconciler.app.query_model import BranchLog, CommitResults, Counts  # noqa: E402
from reconciler.core.identity import ResultIdentities, result_preimage  # noqa: E402
from reconciler.model.desired import DesiredSlot  # noqa: E402
from reconciler.model.results import Attempt, ResultRecord, Status  # noqa: E402


def timed(action: Callable[[], object], *, repeat: int) -> tuple[float, float]:
    """(first run, median of the `repeat` runs after it) in seconds."""
    started = time.perf_counter()
    action()
    first = time.perf_counter() - started
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return first, statistics.median(runs)


def write_record_files(store: ResultStore, slot: DesiredSlot) -> int:
    """The record file of every result of `slot`, as the store lays them out (no fsync: this
    is the baseline's input, not a store under test)."""
    written = 0
    for unit in slot.units:
        identities = ResultIdentities(unit.preimage)
        for subtest in unit.subtests:
            record = ResultRecord(
                id=identities.of(subtest),
                unit=unit.unit,
                build=slot.build.id,
                test=unit.test,
                subtest=subtest,
                preimage=result_preimage(unit.preimage, subtest),
                status=Status.PASS,
                duration=1.5,
                attempts=[Attempt(status=Status.PASS, duration=1.5, worker="bench")],
            )
            path = store.layout.result_path(record.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(record.model_dump_json())
            written += 1
    return written


def scan_files(store: ResultStore, slot: DesiredSlot) -> Counts:
    """BASELINE: a commit's counts by reading each of its results' record files."""
    statuses: list[str] = []
    duration = 0.0
    for unit in slot.units:
        identities = ResultIdentities(unit.preimage)
        for subtest in unit.subtests:
            path = store.layout.result_path(identities.of(subtest))
            try:
                record = ResultRecord.model_validate_json(path.read_bytes())
            except FileNotFoundError:
                statuses.append("pending")
                continue
            statuses.append(record.status.value)
            duration += record.duration or 0.0
    return Counts.of(statuses, duration=duration)


def measure(store_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    git, specs = farm(branches=args.branches, commits=args.commits, files=args.files)
    figures: dict[str, float] = {}
    with ResultStore(store_dir) as store:
        started = time.perf_counter()
        desired = Planner(git=git, cache=MemoryEnumerationCache()).desired(specs)
        figures["desired_s"] = time.perf_counter() - started
        queries = StoreQueries(specs=specs, desired=desired, store=store)
        branches = sorted(specs.branches)

        def one() -> BranchLog:
            return queries.branch_log(branches[-1])

        def every() -> list[BranchLog]:
            return [queries.branch_log(name) for name in branches]

        figures["log_one_first_s"], figures["log_one_s"] = timed(one, repeat=args.repeat)
        figures["log_all_first_s"], figures["log_all_s"] = timed(every, repeat=args.repeat)
        figures["log_all_commits"] = sum(len(queries.branch_log(b).commits) for b in branches)
        figures["log_one_commits"] = len(one().commits)

        # A complete commit (the newest ones are missing from the store by construction).
        slots = [
            s
            for s in desired.slots
            if s.origin.name == branches[-1] and s.position >= MISSING_NEWEST + 1
        ]
        slots.sort(key=lambda s: s.position)
        target = slots[0]

        def show() -> CommitResults:
            return queries.commit_results(target.commit.commit[:10])

        figures["show_first_s"], figures["show_s"] = timed(show, repeat=args.repeat)
        shown = show()
        figures["show_tests"] = len(shown.tests)

        sampled = slots[: args.baseline_commits]
        started = time.perf_counter()
        figures["files_written"] = sum(write_record_files(store, slot) for slot in sampled)
        figures["files_write_s"] = time.perf_counter() - started
        started = time.perf_counter()
        scanned = [scan_files(store, slot) for slot in sampled]
        figures["scan_per_commit_s"] = (time.perf_counter() - started) / len(sampled)
        figures["scan_show_s"] = timed(functools.partial(scan_files, store, target), repeat=1)[1]
        # The two ways must agree, or the comparison means nothing.
        logged = {e.commit: e.counts for e in one().commits}
        agree = all(
            logged[slot.commit.commit].by_status == counts.by_status
            for slot, counts in zip(sampled, scanned, strict=True)
        )
        figures["agree"] = float(agree and shown.counts.by_status == scanned[0].by_status)
    return figures


def report(f: dict[str, float]) -> None:
    per_commit = f["scan_per_commit_s"]
    one, every = int(f["log_one_commits"]), int(f["log_all_commits"])
    rows = [
        ("desired state (git + enumeration)", f"{f['desired_s']:.3f} s  (shared by every query)"),
        (
            f"log, one branch ({one} commits)",
            f"{f['log_one_s'] * 1000:.1f} ms  (first {f['log_one_first_s'] * 1000:.1f} ms)",
        ),
        (
            f"log, every branch ({every} commits)",
            f"{f['log_all_s'] * 1000:.1f} ms  (first {f['log_all_first_s'] * 1000:.1f} ms)"
            "  target <= 200 ms",
        ),
        (
            f"show ({int(f['show_tests']):,} tests)",
            f"{f['show_s'] * 1000:.1f} ms  (first {f['show_first_s'] * 1000:.1f} ms)"
            "  target <= 100 ms",
        ),
        (
            "BASELINE: scan record files, 1 commit",
            f"{per_commit * 1000:.0f} ms  (show commit: {f['scan_show_s'] * 1000:.0f} ms; "
            f"{int(f['files_written']):,} files written in {f['files_write_s']:.1f} s)",
        ),
        (f"BASELINE: log of {one} commits", f"{per_commit * one:.1f} s  (extrapolated)"),
        (f"BASELINE: log of {every} commits", f"{per_commit * every:.1f} s  (extrapolated)"),
        ("log one branch vs baseline", f"{per_commit * one / f['log_one_s']:,.0f}x faster"),
        ("log every branch vs baseline", f"{per_commit * every / f['log_all_s']:,.0f}x faster"),
        ("show vs baseline", f"{f['scan_show_s'] / f['show_s']:,.0f}x faster"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if not f["agree"]:
        print("MISMATCH: the queries and the file scan disagree on a commit's counts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10 branches x 50 commits (~6M)")
    parser.add_argument("--branches", type=int, default=None)
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--files", type=int, default=170)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs after the first")
    parser.add_argument("--baseline-commits", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="reuse (or create) the store in this directory")
    args = parser.parse_args()
    if args.branches is None:
        args.branches = 10 if args.full else 2
    with tempfile.TemporaryDirectory(prefix="query-scale-") as scratch:
        store = args.keep or Path(scratch) / "store"
        if not (store / "index.sqlite").exists():
            made = generate(store, args)
            print(f"generated store: {int(made['stored']):,} results")
        report(measure(store, args))


if __name__ == "__main__":
    main()
