"""The scheduler's laws, driven with invented time: order, reserves, window, placement."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.batching import batch_id
from reconciler.core.scheduler import Scheduler
from reconciler.model.desired import Origin, OriginKind
from reconciler.model.execution import Assignment, Batch, BuildJob, SourceCheckout, WorkerSlot

X86 = "x86_64"
MAIN = Origin(OriginKind.BRANCH, "main")
NEXT = Origin(OriginKind.BRANCH, "next")
BASELINE = Origin(OriginKind.BASELINE, "v7.0")


def _batch(
    unit: str,
    *,
    committed_at: int = 1000,
    priority: int = 0,
    subtests: int = 1,
    estimated: float = 60.0,
    origin: Origin = MAIN,
    arch: str = X86,
    tags: frozenset[str] = frozenset(),
    build: str = "build1",
) -> Batch:
    names = tuple(f"s{i}" for i in range(subtests))
    job = BuildJob(build, {}, SourceCheckout("u", "c", "t"), "ktest", "default", arch)
    return Batch(
        id=batch_id(unit, names),
        build=job,
        unit=unit,
        unit_preimage={},
        test=f"{unit}.ktest",
        group="g",
        subtests=names,
        timeout=600,
        estimated_seconds=estimated,
        committed_at=committed_at,
        priority=priority,
        origin=origin,
        worker_tags=tags,
    )


def _slots(
    count: int, *, host: str = "h", arch: str = X86, tags: frozenset[str] = frozenset()
) -> list[WorkerSlot]:
    return [WorkerSlot(host, i, arch, tags) for i in range(count)]


def _units(assignments: list[Assignment]) -> list[str]:
    return [a.batch.unit for a in assignments]


def _drain_one_at_a_time(scheduler: Scheduler, *, now: float = 0.0) -> list[str]:
    slot = _slots(1)
    order = []
    while assignments := scheduler.dispatch(free_slots=slot, now=now):
        order.extend(_units(assignments))
        scheduler.complete(assignments[0].batch.id, now=now)
    return order


@pytest.fixture
def sched_mixed() -> list[Batch]:
    return [
        _batch("main-old", committed_at=100),
        _batch("next-mid", committed_at=150, origin=NEXT),
        _batch("main-new", committed_at=200),
        _batch("main-new-urgent", committed_at=200, priority=5),
        _batch("main-new-long", committed_at=200, estimated=500.0),
    ]


def test_newest_commit_first_across_branches_then_priority_then_longest(
    sched_mixed: list[Batch],
) -> None:
    scheduler = Scheduler()
    scheduler.replace_work(sched_mixed, now=0.0)
    expected = ["main-new-urgent", "main-new-long", "main-new", "next-mid", "main-old"]
    assert [b.unit for b in scheduler.queued()] == expected
    assert _drain_one_at_a_time(scheduler) == expected
    assert scheduler.is_idle()


def test_baseline_work_gets_its_share_of_the_slots() -> None:
    scheduler = Scheduler(baseline_share=0.2)
    branch = [_batch(f"b{i:02}", committed_at=1000 + i) for i in range(20)]
    baseline = [_batch(f"base{i}", committed_at=1, origin=BASELINE) for i in range(5)]
    scheduler.replace_work(branch + baseline, now=0.0)
    assignments = scheduler.dispatch(free_slots=_slots(10), now=0.0)
    # ceil(0.2 * 10) = 2 slots go to baselines first, the other 8 to the newest branch work.
    assert _units(assignments) == ["base0", "base1"] + [f"b{i:02}" for i in range(19, 11, -1)]


def test_baseline_work_gets_its_share_of_the_window() -> None:
    scheduler = Scheduler(window=100, baseline_share=0.2)
    branch = [_batch(f"b{i:02}", committed_at=1000 + i, subtests=10) for i in range(20)]
    baseline = _batch("base", committed_at=1, subtests=10, origin=BASELINE, arch="aarch64")
    scheduler.replace_work([*branch, baseline], now=0.0)
    # No free aarch64 slot yet: branch work may take only 100 - floor(0.2 * 100) = 80 subtests.
    assert len(scheduler.dispatch(free_slots=_slots(20), now=0.0)) == 8
    assert scheduler.in_flight_subtests == 80
    arm = _slots(1, host="arm", arch="aarch64")
    assert _units(scheduler.dispatch(free_slots=arm, now=1.0)) == ["base"]
    # With no baseline queued, branch work may use the whole window again.
    assert len(scheduler.dispatch(free_slots=_slots(20, host="more"), now=2.0)) == 1
    assert scheduler.in_flight_subtests == 100


def test_a_batch_waiting_past_the_starvation_limit_goes_first() -> None:
    scheduler = Scheduler(starvation_seconds=3600.0)
    old = _batch("old", committed_at=1)
    scheduler.replace_work([old], now=0.0)
    newer = [_batch(f"new{i}", committed_at=1000) for i in range(3)]
    scheduler.replace_work([old, *newer], now=3000.0)
    assert _units(scheduler.dispatch(free_slots=_slots(1), now=3600.0 - 1)) == ["new0"]
    assert _units(scheduler.dispatch(free_slots=_slots(1, host="b"), now=3600.0)) == ["old"]


def test_boosted_batches_are_capped_so_new_commits_keep_most_of_the_farm() -> None:
    scheduler = Scheduler(starvation_seconds=10.0, starvation_share=0.25)
    old = [_batch(f"old{i}", committed_at=1) for i in range(4)]
    scheduler.replace_work(old, now=0.0)
    new = [_batch(f"new{i}", committed_at=1000) for i in range(4)]
    scheduler.replace_work(old + new, now=100.0)
    # ceil(0.25 * 4) = 1 boosted slot; the other three follow age-major order.
    assert _units(scheduler.dispatch(free_slots=_slots(4), now=100.0)) == [
        "old0",
        "new0",
        "new1",
        "new2",
    ]


def test_replace_work_drops_queued_work_and_lets_running_work_finish() -> None:
    scheduler = Scheduler()
    a, b, c = _batch("a", committed_at=3), _batch("b", committed_at=2), _batch("c", committed_at=1)
    scheduler.replace_work([a, b, c], now=0.0)
    (running,) = scheduler.dispatch(free_slots=_slots(1), now=0.0)
    assert running.batch == a
    scheduler.replace_work([c], now=10.0)
    assert scheduler.queued() == [c]
    assert scheduler.in_flight() == [running]
    scheduler.complete(a.id, now=20.0)
    assert scheduler.in_flight() == []
    assert scheduler.queued() == [c]


def test_requeue_keeps_the_batch_s_waiting_time() -> None:
    scheduler = Scheduler(starvation_seconds=100.0)
    first = _batch("first", committed_at=1)
    scheduler.replace_work([first], now=0.0)
    scheduler.dispatch(free_slots=_slots(1), now=0.0)
    newer = _batch("newer", committed_at=50)
    scheduler.replace_work([first, newer], now=90.0)
    scheduler.requeue(first.id, now=95.0)
    assert scheduler.queued() == [newer, first]
    # Queued since 0, not since its requeue at 95: at 100 it has waited long enough to be boosted.
    assert _units(scheduler.dispatch(free_slots=_slots(1), now=100.0)) == ["first"]


def test_requeue_of_work_the_plan_no_longer_wants_drops_it() -> None:
    scheduler = Scheduler()
    gone, kept = _batch("gone", committed_at=2), _batch("kept", committed_at=1)
    scheduler.replace_work([gone, kept], now=0.0)
    scheduler.dispatch(free_slots=_slots(1), now=0.0)
    scheduler.replace_work([kept], now=1.0)
    scheduler.requeue(gone.id, now=2.0)
    assert scheduler.queued() == [kept]
    scheduler.requeue(gone.id, now=3.0)  # not running: ignored
    assert scheduler.queued() == [kept]


def test_a_late_completion_of_a_requeued_batch_takes_it_off_the_queue() -> None:
    scheduler = Scheduler()
    batch = _batch("a")
    scheduler.replace_work([batch], now=0.0)
    scheduler.dispatch(free_slots=_slots(1), now=0.0)
    scheduler.requeue(batch.id, now=1.0)
    scheduler.complete(batch.id, now=2.0)
    scheduler.complete(batch.id, now=3.0)
    assert scheduler.is_idle()


def test_slots_take_only_batches_of_their_arch_and_tags() -> None:
    scheduler = Scheduler()
    arm = _batch("arm", committed_at=4, arch="aarch64")
    nvme = _batch("nvme", committed_at=3, tags=frozenset({"nvme"}))
    riscv = _batch("riscv", committed_at=2, arch="riscv64")
    plain = _batch("plain", committed_at=1)
    scheduler.replace_work([arm, nvme, riscv, plain], now=0.0)
    assert _units(scheduler.dispatch(free_slots=_slots(1, host="x"), now=0.0)) == ["plain"]
    fast = _slots(2, host="fast", tags=frozenset({"nvme", "kvm"}))
    assert _units(scheduler.dispatch(free_slots=fast, now=0.0)) == ["nvme"]
    slots = [*_slots(1, host="x2"), *_slots(1, host="arm", arch="aarch64")]
    assert scheduler.unplaceable(slots) == [riscv]
    assert _units(scheduler.dispatch(free_slots=slots, now=0.0)) == ["arm"]
    assert scheduler.queued() == [riscv]


def test_a_batch_goes_to_a_host_that_already_built_it() -> None:
    scheduler = Scheduler()
    first = _batch("first", committed_at=2, build="k1")
    second = _batch("second", committed_at=1, build="k1")
    scheduler.replace_work([first, second], now=0.0)
    scheduler.dispatch(free_slots=[WorkerSlot("b", 0, X86)], now=0.0)
    (assignment,) = scheduler.dispatch(
        free_slots=[WorkerSlot("a", 0, X86), WorkerSlot("b", 1, X86)], now=1.0
    )
    assert assignment.slot == WorkerSlot("b", 1, X86)


def test_a_batch_larger_than_the_window_runs_alone() -> None:
    scheduler = Scheduler(window=10)
    huge = _batch("huge", committed_at=2, subtests=25)
    small = _batch("small", committed_at=1, subtests=2)
    scheduler.replace_work([huge, small], now=0.0)
    assert _units(scheduler.dispatch(free_slots=_slots(4), now=0.0)) == ["huge"]
    scheduler.complete(huge.id, now=1.0)
    assert _units(scheduler.dispatch(free_slots=_slots(4), now=1.0)) == ["small"]


def test_smaller_batches_backfill_the_window_while_a_large_one_waits() -> None:
    scheduler = Scheduler(window=100)
    first = _batch("first", committed_at=3, subtests=90)
    large = _batch("large", committed_at=2, subtests=80)
    small = _batch("small", committed_at=1, subtests=10)
    scheduler.replace_work([first, large, small], now=0.0)
    assert _units(scheduler.dispatch(free_slots=_slots(3), now=0.0)) == ["first", "small"]
    scheduler.complete(first.id, now=1.0)
    assert _units(scheduler.dispatch(free_slots=_slots(3), now=1.0)) == ["large"]


@st.composite
def _farm(draw: st.DrawFn) -> tuple[int, list[Batch], list[WorkerSlot]]:
    window = draw(st.integers(min_value=1, max_value=60))
    count = draw(st.integers(min_value=1, max_value=30))
    batches = [
        _batch(
            f"u{i}",
            committed_at=draw(st.integers(0, 5)),
            priority=draw(st.integers(0, 2)),
            subtests=draw(st.integers(1, 40)),
            origin=draw(st.sampled_from([MAIN, BASELINE])),
            arch=draw(st.sampled_from([X86, "aarch64"])),
            tags=draw(st.sampled_from([frozenset(), frozenset({"nvme"})])),
        )
        for i in range(count)
    ]
    slots = [
        WorkerSlot(
            f"h{i // 3}",
            i,
            draw(st.sampled_from([X86, "aarch64"])),
            draw(st.sampled_from([frozenset(), frozenset({"nvme"})])),
        )
        for i in range(draw(st.integers(min_value=1, max_value=8)))
    ]
    return window, batches, slots


@settings(max_examples=100, deadline=None)
@given(farm=_farm(), data=st.data())
def test_the_window_holds_and_every_batch_runs_exactly_once(
    farm: tuple[int, list[Batch], list[WorkerSlot]], data: st.DataObject
) -> None:
    window, batches, slots = farm
    scheduler = Scheduler(window=window, starvation_seconds=50.0)
    scheduler.replace_work(batches, now=0.0)
    placeable = {b.id for b in batches if any(s.accepts(b) for s in slots)}
    dispatched: list[str] = []
    completed: set[str] = set()
    now = 0.0
    for _ in range(10 * len(batches) + 10):
        busy = {a.slot.name for a in scheduler.in_flight()}
        for assignment in scheduler.dispatch(
            free_slots=[s for s in slots if s.name not in busy], now=now
        ):
            assert assignment.slot.accepts(assignment.batch)
            dispatched.append(assignment.batch.id)
        running = scheduler.in_flight()
        in_window = sum(len(a.batch.subtests) for a in running)
        assert in_window == scheduler.in_flight_subtests
        assert in_window <= window or (len(running) == 1 and in_window > window)
        if not running:
            break
        now += data.draw(st.floats(min_value=0, max_value=30))
        done = data.draw(st.sampled_from(running)).batch.id
        if data.draw(st.booleans(), label="requeue") and done not in completed:
            scheduler.requeue(done, now=now)
            dispatched.remove(done)
            continue
        scheduler.complete(done, now=now)
        completed.add(done)
    assert sorted(dispatched) == sorted(placeable)
    assert completed == placeable
    assert {b.id for b in scheduler.queued()} == {b.id for b in batches} - placeable
    assert scheduler.unplaceable(slots) == scheduler.queued()


def test_a_queued_batch_whose_priority_changed_moves_but_keeps_its_wait() -> None:
    scheduler = Scheduler(starvation_seconds=100.0)
    a, b = _batch("a", committed_at=5), _batch("b", committed_at=5)
    scheduler.replace_work([a, b], now=0.0)
    assert scheduler.queued() == [a, b]
    urgent_b = _batch("b", committed_at=5, priority=3)
    scheduler.replace_work([a, urgent_b], now=50.0)
    assert scheduler.queued() == [urgent_b, a]
    newest = _batch("newest", committed_at=9)
    scheduler.replace_work([a, urgent_b, newest], now=60.0)
    # "b" has waited since 0, not since its priority changed at 50: boosted at 100.
    assert _units(scheduler.dispatch(free_slots=_slots(1), now=100.0)) == ["b"]
