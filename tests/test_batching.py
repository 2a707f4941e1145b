"""Packing one unit's subtests into batches, and turning a plan into batches."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.batching import batch_id, pack_batches
from reconciler.core.identity import canonical_json, sha256_hex
from reconciler.core.work import BatchInputs, GroupInputs, batches_from_plan
from reconciler.model.desired import (
    DesiredBuild,
    DesiredSlot,
    DesiredState,
    DesiredUnit,
    Origin,
    OriginKind,
    ResolvedCommit,
)
from reconciler.model.execution import Batch, BuildJob, SourceCheckout
from reconciler.model.plan import Plan, PlannedUnit, Reason, Totals


def test_first_fit_decreasing_packs_longest_first_and_keeps_unit_order_inside() -> None:
    durations = {"a": 400.0, "b": 300.0, "c": 200.0, "d": 100.0, "e": 50.0}
    assert pack_batches(unit_subtests=["e", "d", "c", "b", "a"], durations=durations) == [
        (("c", "a"), 600.0),
        (("e", "d", "b"), 450.0),
    ]


def test_unknown_subtests_take_the_default_estimate() -> None:
    names = [f"s{i:02}" for i in range(25)]
    assert pack_batches(unit_subtests=names, durations={}) == [
        (tuple(names[:20]), 600.0),
        (tuple(names[20:]), 150.0),
    ]
    assert pack_batches(unit_subtests=names[:3], durations={"s01": 5.0}, default_seconds=10.0) == [
        (("s00", "s01", "s02"), 25.0)
    ]


def test_a_subtest_longer_than_the_budget_runs_alone() -> None:
    assert pack_batches(
        unit_subtests=["x", "big", "y"], durations={"big": 1000.0, "x": 10.0, "y": 590.0}
    ) == [(("big",), 1000.0), (("x", "y"), 600.0)]


def test_equal_durations_pack_in_unit_order() -> None:
    assert pack_batches(unit_subtests=["c", "a", "b"], durations={}, budget=60.0) == [
        (("c", "a"), 60.0),
        (("b",), 30.0),
    ]


def test_nothing_to_pack_and_a_budget_that_cannot_hold_anything() -> None:
    assert pack_batches(unit_subtests=[], durations={}) == []
    with pytest.raises(ValueError, match="budget must be positive"):
        pack_batches(unit_subtests=["a"], durations={}, budget=0)


def test_batch_id_is_the_hash_of_unit_and_ordered_subtests() -> None:
    expected = sha256_hex(canonical_json({"v": 1, "unit": "u1", "subtests": ["a", "b"]}))
    assert batch_id("u1", ("a", "b")) == expected
    assert batch_id("u1", ["a", "b"]) == expected
    assert batch_id("u1", ("b", "a")) != expected
    assert batch_id("u2", ("a", "b")) != expected


@given(
    durations=st.lists(st.floats(min_value=0, max_value=2000), max_size=60),
    budget=st.floats(min_value=1, max_value=1500),
)
def test_packing_covers_every_subtest_once_within_the_budget(
    durations: list[float], budget: float
) -> None:
    names = [f"s{i}" for i in range(len(durations))]
    known = dict(zip(names, durations, strict=True))
    batches = pack_batches(unit_subtests=names, durations=known, budget=budget)
    packed = [name for subtests, _ in batches for name in subtests]
    assert sorted(packed) == sorted(names)
    for subtests, estimate in batches:
        assert estimate == pytest.approx(sum(known[s] for s in subtests))
        assert estimate <= budget + 1e-9 or len(subtests) == 1
        assert list(subtests) == sorted(subtests, key=names.index)
    assert pack_batches(unit_subtests=names, durations=known, budget=budget) == batches


# -- batches_from_plan ---------------------------------------------------------------------

MAIN = Origin(OriginKind.BRANCH, "main")
NEXT = Origin(OriginKind.BRANCH, "next")
BASE = Origin(OriginKind.BASELINE, "v7.0")
BUILD_PREIMAGE = {
    "arch": "aarch64",
    "make_flags": ["LLVM=1"],
    "env": {"KCFLAGS": "-O2"},
    "source_tree": "tree1",
}
UNIT_PREIMAGE = {"build": "build1", "test": "t.ktest", "timeout": 120, "runtime": {"env": {"A": 1}}}


def _item(
    origin: Origin, *, committed_at: int, priority: int, to_run: tuple[str, ...]
) -> PlannedUnit:
    return PlannedUnit(
        origin=origin,
        commit=f"commit-{origin.name}",
        subject="s",
        committed_at=committed_at,
        profile="kasan",
        harness="ktest",
        group="core",
        test="t.ktest",
        unit="unit1",
        build="build1",
        reason=Reason.MISSING if to_run else Reason.REUSED,
        subtests_total=3,
        to_run=to_run,
        priority=priority,
        estimated_seconds=0.0,
    )


@pytest.fixture
def sched_desired() -> DesiredState:
    unit = DesiredUnit("unit1", "t.ktest", "core", ("a", "b", "c"), 0, UNIT_PREIMAGE)
    build = DesiredBuild("build1", BUILD_PREIMAGE)
    slots = tuple(
        DesiredSlot(
            origin,
            ResolvedCommit(f"commit-{origin.name}", "tree1", "s", 0),
            0,
            "kasan",
            "ktest",
            build,
            (unit,),
            0,
        )
        for origin in (MAIN, NEXT)
    )
    return DesiredState(slots)


def test_a_unit_two_branches_share_becomes_one_batch_set(sched_desired: DesiredState) -> None:
    everything = ("a", "b", "c")
    plan = Plan(
        totals=Totals(),
        items=(
            _item(NEXT, committed_at=200, priority=1, to_run=everything),
            _item(MAIN, committed_at=100, priority=7, to_run=everything),
        ),
        builds=(),
        origins=(),
    )
    harness = SourceCheckout("https://example.org/ktest.git", "h1", "htree")
    inputs = BatchInputs(
        source_urls={MAIN: "https://example.org/main.git", NEXT: "https://example.org/next.git"},
        tests_sources={"ktest": harness},
        groups={"core": GroupInputs(worker_tags=frozenset({"kvm"}), confirm_failures=2)},
    )
    batches = batches_from_plan(
        plan=plan,
        desired=sched_desired,
        inputs=inputs,
        durations={("t.ktest", "a"): 500.0, ("t.ktest", "b"): 200.0, ("other", "c"): 1.0},
    )
    build = BuildJob(
        build="build1",
        preimage=BUILD_PREIMAGE,
        source=SourceCheckout("https://example.org/next.git", "commit-next", "tree1"),
        harness="ktest",
        profile="kasan",
        arch="aarch64",
        build_env={"KCFLAGS": "-O2"},
        make_flags=("LLVM=1",),
    )

    def expected(subtests: tuple[str, ...], seconds: float) -> Batch:
        return Batch(
            id=batch_id("unit1", subtests),
            build=build,
            unit="unit1",
            unit_preimage=UNIT_PREIMAGE,
            test="t.ktest",
            group="core",
            subtests=subtests,
            timeout=120,
            estimated_seconds=seconds,
            committed_at=200,
            priority=7,
            origin=NEXT,
            tests_source=harness,
            runtime_env={"A": "1"},
            worker_tags=frozenset({"kvm"}),
            confirm_failures=2,
        )

    # "c" has no history for this test (the ("other", "c") entry is another test's): 30 s, and
    # first fit puts it beside "a".
    assert batches == [expected(("a", "c"), 530.0), expected(("b",), 200.0)]


def test_reused_units_make_no_batches_and_defaults_apply(sched_desired: DesiredState) -> None:
    plan = Plan(
        totals=Totals(),
        items=(
            _item(MAIN, committed_at=100, priority=0, to_run=()),
            _item(NEXT, committed_at=90, priority=0, to_run=("b",)),
        ),
        builds=(),
        origins=(),
    )
    inputs = BatchInputs(source_urls={NEXT: "u"})
    (batch,) = batches_from_plan(plan=plan, desired=sched_desired, inputs=inputs, durations={})
    assert (batch.subtests, batch.estimated_seconds, batch.origin) == (("b",), 30.0, NEXT)
    assert (batch.worker_tags, batch.confirm_failures, batch.tests_source) == (frozenset(), 0, None)
