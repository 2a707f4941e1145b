"""A 60-slot farm, simulated: the real Scheduler and batch packing against the bcachefs CI policy.

Workload (seeded): `--branches` branches x `--commits` commits each, every commit ~13,000
subtests in ~170 test files (as bcachefs's ktest suite), one profile; plus one baseline commit.
Branch heads are interleaved in time so age-major order crosses branches. True subtest
durations are long-tailed: most from a log-normal with a 10 s median (a few seconds to about a
minute), 0.4% uniform between 10 and 40 minutes. "Historical" durations, what the packer sees,
are the true ones times log-normal(0, 0.3) noise, and unknown for 10% of subtests.

Cost model: a batch occupies its slot for a 20 s VM boot plus the sum of its subtests' true
durations. Time is simulated: an event loop over a heap of completion times, no sleeping.

Policies, on the same workload in the same run:
- scheduler: `batches_from_plan` (first-fit-decreasing packing to 600 s from historical
  durations) and `Scheduler` (age-major, priority, longest first; window of 2,000 subtests);
- bcachefs-ci (the baseline): age-major, subtests packed in file order assuming a flat 30 s
  each up to 600 s (20 per batch), dispatched first-in-first-out under the same window.

Printed: makespan / floor, where floor = total true test time / slots (VM boots excluded, so no
policy can reach 1.00); VM boots; and the scheduler's CPU time per dispatched batch
(`time.process_time` around scheduler calls only). Targets: <= 1.10 x floor, fewer boots and a
shorter makespan than the baseline, <= 5 ms per batch. A benchmark: it reports, it asserts nothing.

Usage: python bench/farm_sim.py [--branches 10] [--commits 4] [--files 170] [--seed 1]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.core.identity import sha256_hex  # noqa: E402
from reconciler.core.scheduler import Scheduler  # noqa: E402
from reconciler.core.work import BatchInputs, batches_from_plan  # noqa: E402
from reconciler.model.desired import (  # noqa: E402
    DesiredBuild,
    DesiredSlot,
    DesiredState,
    DesiredUnit,
    Origin,
    OriginKind,
    ResolvedCommit,
)
from reconciler.model.execution import WorkerSlot  # noqa: E402
from reconciler.model.plan import Plan, PlannedUnit, Reason, Totals  # noqa: E402

SLOTS = 60
BOOT_SECONDS = 20.0
BUDGET = 600.0
FLAT_ESTIMATE = 30.0
WINDOW = 2000
T0 = 1_760_000_000
ARCH = "x86_64"

Durations = dict[tuple[str, str], float]


@dataclass(frozen=True)
class Workload:
    plan: Plan
    desired: DesiredState
    inputs: BatchInputs
    true_seconds: Durations
    history: Durations


def subtest_counts(files: int, rng: random.Random, total: int = 13_000) -> list[int]:
    """Uneven subtest counts per test file summing to about `total` (as real .ktest files)."""
    weights = [rng.paretovariate(1.2) for _ in range(files)]
    scale = (total - files) / sum(weights)
    return [1 + int(w * scale) for w in weights]


def true_duration(rng: random.Random) -> float:
    if rng.random() < 0.004:
        return rng.uniform(600.0, 2400.0)
    return min(540.0, max(1.0, rng.lognormvariate(math.log(10.0), 1.0)))


def workload(*, branches: int, commits: int, files: int, seed: int) -> Workload:
    rng = random.Random(seed)
    tests: list[tuple[str, tuple[str, ...]]] = []
    true_seconds: Durations = {}
    history: Durations = {}
    for index, count in enumerate(subtest_counts(files, rng)):
        test = f"fs/bcachefs/t{index:03}.ktest"
        subtests = tuple(f"{test}:s{j:03}" for j in range(count))
        tests.append((test, subtests))
        for name in subtests:
            seconds = true_seconds[(test, name)] = true_duration(rng)
            if rng.random() >= 0.10:
                history[(test, name)] = seconds * rng.lognormvariate(0.0, 0.3)

    requests = [
        (Origin(OriginKind.BRANCH, f"branch{b}"), T0 - (c * branches + b) * 1800, 0)
        for b in range(branches)
        for c in range(commits)
    ]
    requests.append((Origin(OriginKind.BASELINE, "v7.0"), T0 - 90 * 86_400, 0))
    slots: list[DesiredSlot] = []
    items: list[PlannedUnit] = []
    for origin, committed_at, priority in requests:
        commit = sha256_hex(f"{origin}{committed_at}")[:40]
        build = DesiredBuild(sha256_hex(f"build{commit}"), {"arch": ARCH, "source_tree": commit})
        units = tuple(
            DesiredUnit(
                unit=sha256_hex(f"unit{build.id}{test}"),
                test=test,
                group="bcachefs-core",
                subtests=subtests,
                priority=0,
                preimage={"build": build.id, "test": test, "timeout": 600},
            )
            for test, subtests in tests
        )
        resolved = ResolvedCommit(commit, commit, "subject", committed_at)
        slots.append(DesiredSlot(origin, resolved, 0, "default", "ktest", build, units, priority))
        items.extend(
            PlannedUnit(
                origin=origin,
                commit=commit,
                subject="subject",
                committed_at=committed_at,
                profile="default",
                harness="ktest",
                group=unit.group,
                test=unit.test,
                unit=unit.unit,
                build=build.id,
                reason=Reason.MISSING,
                subtests_total=len(unit.subtests),
                to_run=unit.subtests,
                priority=priority,
                estimated_seconds=0.0,
            )
            for unit in units
        )
    items.sort(key=lambda item: (-item.committed_at, -item.priority))
    plan = Plan(totals=Totals(), items=tuple(items), builds=(), origins=())
    inputs = BatchInputs(source_urls={origin: "memory://bcachefs" for origin, _, _ in requests})
    return Workload(plan, DesiredState(tuple(slots)), inputs, true_seconds, history)


@dataclass(frozen=True)
class Outcome:
    makespan: float
    boots: int
    cpu_seconds: float
    """Process time inside Scheduler calls (replace_work, dispatch, complete)."""
    packing_seconds: float = 0.0
    """Process time of batches_from_plan."""


def simulate(
    *,
    slots: Sequence[WorkerSlot],
    dispatch: Callable[[list[WorkerSlot], float], list[tuple[str, WorkerSlot, float]]],
    complete: Callable[[str, float], None],
) -> tuple[float, int]:
    """Run the farm until no work is left: (makespan, batches run). `dispatch` returns
    (batch id, slot, busy seconds) per batch it started."""
    free = list(slots)
    events: list[tuple[float, int, str, WorkerSlot]] = []
    now, started = 0.0, 0
    while True:
        for batch, slot, seconds in dispatch(free, now):
            free.remove(slot)
            started += 1
            heapq.heappush(events, (now + seconds, started, batch, slot))
        if not events:
            return now, started
        now, _, batch, slot = heapq.heappop(events)
        complete(batch, now)
        free.append(slot)


def run_scheduler(work: Workload, slots: Sequence[WorkerSlot]) -> Outcome:
    started = time.process_time()
    batches = batches_from_plan(
        plan=work.plan, desired=work.desired, inputs=work.inputs, durations=work.history
    )
    packing = time.process_time() - started
    scheduler = Scheduler(window=WINDOW)
    started = time.process_time()
    scheduler.replace_work(batches, now=0.0)
    cpu = time.process_time() - started
    busy = {
        b.id: BOOT_SECONDS + sum(work.true_seconds[(b.test, s)] for s in b.subtests)
        for b in batches
    }

    def dispatch(free: list[WorkerSlot], now: float) -> list[tuple[str, WorkerSlot, float]]:
        nonlocal cpu
        started = time.process_time()
        assignments = scheduler.dispatch(free_slots=free, now=now)
        cpu += time.process_time() - started
        return [(a.batch.id, a.slot, busy[a.batch.id]) for a in assignments]

    def complete(batch: str, now: float) -> None:
        nonlocal cpu
        started = time.process_time()
        scheduler.complete(batch, now=now)
        cpu += time.process_time() - started

    makespan, boots = simulate(slots=slots, dispatch=dispatch, complete=complete)
    assert scheduler.is_idle()
    return Outcome(makespan, boots, cpu, packing)


def run_bcachefs_ci(work: Workload, slots: Sequence[WorkerSlot]) -> Outcome:
    """The baseline policy: flat estimates, file-order chunks, FIFO in age-major order."""
    per_batch = int(BUDGET // FLAT_ESTIMATE)
    queue: list[tuple[int, float]] = []  # (subtests, busy seconds), in dispatch order
    seen: set[str] = set()
    for item in work.plan.items:  # already age-major
        if item.unit in seen:
            continue
        seen.add(item.unit)
        for start in range(0, len(item.to_run), per_batch):
            chunk = item.to_run[start : start + per_batch]
            seconds = BOOT_SECONDS + sum(work.true_seconds[(item.test, s)] for s in chunk)
            queue.append((len(chunk), seconds))
    position, in_window = 0, 0
    running: dict[str, int] = {}

    def dispatch(free: list[WorkerSlot], now: float) -> list[tuple[str, WorkerSlot, float]]:
        nonlocal position, in_window
        started = []
        for slot in free:
            if position == len(queue):
                break
            size, seconds = queue[position]
            if running and in_window + size > WINDOW:
                break
            running[str(position)] = size
            in_window += size
            started.append((str(position), slot, seconds))
            position += 1
        return started

    def complete(batch: str, now: float) -> None:
        nonlocal in_window
        in_window -= running.pop(batch)

    makespan, boots = simulate(slots=slots, dispatch=dispatch, complete=complete)
    return Outcome(makespan, boots, 0.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=10)
    parser.add_argument("--commits", type=int, default=4)
    parser.add_argument("--files", type=int, default=170)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    work = workload(branches=args.branches, commits=args.commits, files=args.files, seed=args.seed)
    slots = [WorkerSlot(f"farm{h}", s, ARCH) for h in range(SLOTS // 10) for s in range(10)]
    units = len({item.unit for item in work.plan.items})
    subtests = sum(len(item.to_run) for item in work.plan.items)
    test_seconds = sum(
        work.true_seconds[(item.test, s)] for item in work.plan.items for s in item.to_run
    )
    floor = test_seconds / len(slots)
    print(
        f"workload: {units} units, {subtests} subtests, {test_seconds / 3600:.0f} h of tests "
        f"on {len(slots)} slots; floor {floor / 3600:.2f} h (test time / slots, boots excluded)"
    )
    ours = run_scheduler(work, slots)
    theirs = run_bcachefs_ci(work, slots)
    print(f"{'policy':<14}{'makespan':>12}{'/ floor':>9}{'VM boots':>10}{'boot h':>8}")
    for name, outcome in (("scheduler", ours), ("bcachefs-ci", theirs)):
        print(
            f"{name:<14}{outcome.makespan / 3600:>10.2f} h{outcome.makespan / floor:>9.3f}"
            f"{outcome.boots:>10}{outcome.boots * BOOT_SECONDS / 3600:>8.1f}"
        )
    print(
        f"scheduler vs bcachefs-ci: makespan x{ours.makespan / theirs.makespan:.3f}, "
        f"boots x{ours.boots / theirs.boots:.3f}"
    )
    print(
        f"scheduler CPU (replace_work + dispatch + complete): "
        f"{ours.cpu_seconds * 1000 / ours.boots:.3f} ms per dispatched batch "
        f"({ours.cpu_seconds:.2f} s for {ours.boots} batches); "
        f"batches_from_plan {ours.packing_seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
