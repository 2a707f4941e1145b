"""The planner as a pure function: plans compared as values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.desired import SlotMemo
from reconciler.core.planner import PlanMemo, plan
from reconciler.model.desired import OriginKind, StoreSnapshot, UnitSummary
from reconciler.model.plan import Estimates, Reason, Totals
from reconciler.model.results import BuildStatus, Status

from .planning_fixtures import (
    baseline,
    branch,
    build_desired,
    commit,
    snapshot_holding,
    spec_set,
)


def test_empty_store_plans_every_subtest_and_build() -> None:
    specs = spec_set(
        branches=[branch("main", profiles=("default", "debug"))], profiles=("default", "debug")
    )
    desired = build_desired(specs, branch_commits={"main": [commit(2), commit(1)]})
    result = plan(
        desired, StoreSnapshot(), estimates=Estimates(subtest_seconds=10, build_seconds=100)
    )
    assert result.totals == Totals(
        builds_run=4,
        builds_reused=0,
        builds_blocked=0,
        results_run=4 * 4,  # 2 commits x 2 profiles x (3 + 1) subtests
        results_reused=0,
        results_reused_from_baselines=0,
        results_blocked=0,
        estimated_seconds=16 * 10 + 4 * 100,
    )
    assert {item.reason for item in result.items} == {Reason.MISSING}
    assert result.has_work


def test_items_are_newest_commit_first_across_branches_then_priority() -> None:
    specs = spec_set(branches=[branch("low"), branch("high", priority=5)])
    desired = build_desired(
        specs,
        branch_commits={
            "low": [commit(3, at=300), commit(1, at=100)],
            "high": [commit(2, at=200), commit(4, at=100)],
        },
    )
    result = plan(desired, StoreSnapshot())
    order = [(item.commit[-1], str(item.origin)) for item in result.items if item.test == "t/a"]
    assert order == [("3", "low"), ("2", "high"), ("4", "high"), ("1", "low")]


def test_partial_unit_runs_only_its_missing_subtests() -> None:
    specs = spec_set(branches=[branch("main")])
    desired = build_desired(specs, branch_commits={"main": [commit(1)]})
    unit_a = next(u for u in desired.slots[0].units if u.test == "t/a")
    snapshot = StoreSnapshot(
        units={unit_a.unit: UnitSummary(verdicts=1, errors=1)},
        subtests={unit_a.unit: {"a1": Status.FAIL, "a2": Status.ERROR}},
    )
    result = plan(desired, snapshot)
    by_test = {item.test: item for item in result.items}
    assert by_test["t/a"].reason is Reason.PARTIAL
    assert by_test["t/a"].to_run == ("a2", "a3")
    assert by_test["t/b"].reason is Reason.MISSING
    assert (result.totals.results_run, result.totals.results_reused) == (3, 1)


def test_only_errors_stored_is_an_error_retry() -> None:
    specs = spec_set(branches=[branch("main")])
    desired = build_desired(specs, branch_commits={"main": [commit(1)]})
    unit_b = next(u for u in desired.slots[0].units if u.test == "t/b")
    snapshot = StoreSnapshot(
        units={unit_b.unit: UnitSummary(verdicts=0, errors=1)},
        subtests={unit_b.unit: {"b1": Status.ERROR}},
    )
    by_test = {item.test: item for item in plan(desired, snapshot).items}
    assert (by_test["t/b"].reason, by_test["t/b"].to_run) == (Reason.ERROR_RETRY, ("b1",))


def test_failed_build_blocks_its_tests_and_is_not_rebuilt() -> None:
    specs = spec_set(branches=[branch("main")])
    desired = build_desired(specs, branch_commits={"main": [commit(1)]})
    snapshot = StoreSnapshot(builds={desired.slots[0].build.id: BuildStatus.FAIL})
    result = plan(desired, snapshot)
    assert {item.reason for item in result.items} == {Reason.BLOCKED}
    assert result.totals.results_blocked == 4
    assert (result.totals.builds_run, result.totals.builds_blocked) == (0, 1)
    assert not result.has_work


def test_build_error_is_retried() -> None:
    specs = spec_set(branches=[branch("main")])
    desired = build_desired(specs, branch_commits={"main": [commit(1)]})
    snapshot = StoreSnapshot(builds={desired.slots[0].build.id: BuildStatus.ERROR})
    result = plan(desired, snapshot)
    assert [b.reason for b in result.builds] == [Reason.ERROR_RETRY]
    assert result.totals.builds_run == 1


def test_baseline_results_are_reused_from_baseline_by_a_branch_at_the_same_tree() -> None:
    specs = spec_set(branches=[branch("main")], baselines=[baseline("v1.0")])
    tagged = commit(1)
    desired = build_desired(
        specs,
        branch_commits={"main": [commit(2), tagged]},
        baseline_commits={"v1.0": tagged},
    )
    baseline_units = {
        u.unit for s in desired.slots if s.origin.kind is OriginKind.BASELINE for u in s.units
    }
    result = plan(desired, snapshot_holding(desired, only_units=baseline_units))
    reasons = {(str(i.origin), i.commit[-1], i.test): i.reason for i in result.items}
    assert reasons == {
        ("main", "2", "t/a"): Reason.MISSING,
        ("main", "2", "t/b"): Reason.MISSING,
        ("main", "1", "t/a"): Reason.REUSED_FROM_BASELINE,
        ("main", "1", "t/b"): Reason.REUSED_FROM_BASELINE,
        ("baseline:v1.0", "1", "t/a"): Reason.REUSED_FROM_BASELINE,
        ("baseline:v1.0", "1", "t/b"): Reason.REUSED_FROM_BASELINE,
    }
    # The shared tree is counted once.
    assert (result.totals.results_reused, result.totals.results_reused_from_baselines) == (4, 4)
    assert result.totals.results_run == 4
    assert (result.totals.builds_run, result.totals.builds_reused) == (1, 1)


def test_two_branches_at_one_tree_share_work() -> None:
    specs = spec_set(branches=[branch("a"), branch("b")])
    same = commit(7)
    desired = build_desired(specs, branch_commits={"a": [same], "b": [commit(8, tree=same.tree)]})
    result = plan(desired, StoreSnapshot())
    assert (result.totals.results_run, result.totals.builds_run) == (4, 1)
    assert [(str(o.origin), o.results_run) for o in result.origins] == [("a", 4), ("b", 4)]


def test_suspended_branch_schedules_nothing_but_is_shown() -> None:
    specs = spec_set(branches=[branch("main", suspend=True)])
    desired = build_desired(specs, branch_commits={})
    result = plan(desired, StoreSnapshot())
    assert (result.items, result.suspended) == ((), ("main",))


def test_history_durations_drive_the_estimate() -> None:
    specs = spec_set(branches=[branch("main")])
    desired = build_desired(specs, branch_commits={"main": [commit(1)]})
    snapshot = StoreSnapshot(mean_subtest_seconds={"t/a": 2.0})
    result = plan(desired, snapshot, estimates=Estimates(subtest_seconds=30, build_seconds=0))
    assert result.totals.estimated_seconds == 3 * 2.0 + 1 * 30


def test_memo_reuses_units_and_gives_identical_desired_state() -> None:
    specs = spec_set(branches=[branch("main")])
    memo = SlotMemo()
    first = build_desired(specs, branch_commits={"main": [commit(2), commit(1)]}, memo=memo)
    second = build_desired(specs, branch_commits={"main": [commit(2), commit(1)]}, memo=memo)
    fresh = build_desired(specs, branch_commits={"main": [commit(2), commit(1)]})
    assert first == second == fresh
    assert second.slots[0].units is first.slots[0].units


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=6, unique=True),
    st.lists(st.integers(0, 20), min_size=0, max_size=4, unique=True),
    st.sampled_from([("default",), ("default", "debug")]),
)
def test_a_store_that_holds_everything_plans_nothing(
    main_commits: list[int], other_commits: list[int], profiles: tuple[str, ...]
) -> None:
    specs = spec_set(
        branches=[branch("main", profiles=profiles), branch("other", profiles=profiles)],
        baselines=[baseline("v1", profiles=profiles)],
        profiles=("default", "debug"),
    )
    desired = build_desired(
        specs,
        branch_commits={
            "main": [commit(n) for n in main_commits],
            "other": [commit(n) for n in other_commits],
        },
        baseline_commits={"v1": commit(main_commits[-1])},
    )
    snapshot = snapshot_holding(desired)
    snapshot = StoreSnapshot(
        units=snapshot.units,
        builds={slot.build.id: BuildStatus.PASS for slot in desired.slots},
    )
    result = plan(desired, snapshot)
    assert not result.has_work
    assert result.totals.results_run == 0
    assert all(item.to_run == () for item in result.items)
    distinct_subtests = {
        (u.unit, s) for slot in desired.slots for u in slot.units for s in u.subtests
    }
    assert result.totals.results_reused == len(distinct_subtests)


def test_plan_memo_gives_the_same_plan_as_planning_afresh() -> None:
    specs = spec_set(branches=[branch("main", max_commits=3), branch("other")])
    memo, plan_memo = SlotMemo(), PlanMemo()
    history = [commit(n) for n in range(5, 0, -1)]
    first = build_desired(
        specs, branch_commits={"main": history[1:], "other": history[3:]}, memo=memo
    )
    snapshot = StoreSnapshot(units=snapshot_holding(first).units, generation=7)
    plan(first, snapshot, memo=plan_memo)
    # The branch moves on by one commit; the store is unchanged (same generation).
    moved = build_desired(specs, branch_commits={"main": history, "other": history[3:]}, memo=memo)
    moved_snapshot = StoreSnapshot(units=snapshot.units, generation=7)
    assert plan(moved, moved_snapshot, memo=plan_memo) == plan(moved, moved_snapshot)
    assert plan(moved, moved_snapshot, memo=plan_memo).totals.results_run == 4
    # A new generation invalidates what the memo holds.
    emptied = StoreSnapshot(generation=8)
    assert plan(moved, emptied, memo=plan_memo) == plan(moved, emptied)


def test_tests_that_match_a_runtime_input_apply_only_to_profiles_with_it() -> None:
    from reconciler.model.desired import EnumeratedTest
    from reconciler.model.specs import Runtime

    specs = spec_set(branches=[branch("main", profiles=("xfs", "ext4"))], profiles=("xfs", "ext4"))
    for name in ("xfs", "ext4"):
        specs.profiles[name] = specs.profiles[name].model_copy(
            update={"runtime": Runtime(fstype=name)}
        )
    tests = (
        EnumeratedTest("generic/001", ("generic/001",)),
        EnumeratedTest("xfs/001", ("xfs/001",), runtime_match=(("fstype", "xfs"),)),
    )
    desired = build_desired(specs, branch_commits={"main": [commit(1)]}, tests=tests)
    assert {(s.profile, u.test) for s in desired.slots for u in s.units} == {
        ("xfs", "generic/001"),
        ("xfs", "xfs/001"),
        ("ext4", "generic/001"),
    }
